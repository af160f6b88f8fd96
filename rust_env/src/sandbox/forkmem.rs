//! Fork the host without its big private anonymous mappings (model weights, tensors, arrays).
//!
//! A sandbox's first process is a `fork` of the host, and `fork` copies the page tables of every private
//! mapping (and the child's exit tears them down again): a 2 GiB host made each fresh sandbox cost ~120 ms of
//! CPU. The sandbox processes never read the host's data, so mappings that are surely not the allocator's
//! (anonymous, private, larger than any glibc malloc arena heap, not the current stack) are marked `MADV_DONTFORK` around the fork and unmarked right after. Only hosts whose
//! resident set passes [`MIN_RSS`] scan their mappings; small hosts fork as before.
//!
//! While mappings are marked, a `fork` by any other thread of the host (Python's `os.fork`, multiprocessing)
//! must still copy them: a `pthread_atfork` prepare handler unmarks every marked mapping and holds the lock
//! until that fork is done. `vfork`/`posix_spawn` (subprocess) share the memory and are unaffected.
//! Limit: a big mapping that something else had marked `MADV_DONTFORK` itself loses that mark after a
//! sandbox start (`/proc/self/maps` does not show the flag; `smaps` would, at the cost of the page walk).

use libc::{c_void, pid_t};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Mappings strictly larger than a glibc malloc arena heap (64 MiB on 64-bit) are skipped.
const MIN_SKIP: usize = (64 << 20) + 4096;
/// Hosts with a smaller resident set fork as before (the scan would cost more than it saves).
pub const MIN_RSS: usize = 256 << 20;
const SLOTS: usize = 64;

struct Marked {
    lock: AtomicBool,
    n: AtomicUsize,
    /// (start, len, refcount) of each marked mapping; touched only with `lock` held.
    slots: UnsafeCell<[(usize, usize, usize); SLOTS]>,
}

// SAFETY: `slots` is only read or written while `lock` is held.
unsafe impl Sync for Marked {}

static MARKED: Marked = Marked {
    lock: AtomicBool::new(false),
    n: AtomicUsize::new(0),
    slots: UnsafeCell::new([(0, 0, 0); SLOTS]),
};
static ATFORK: Once = Once::new();

thread_local! {
    /// This thread is forking a sandbox: its own fork keeps the marks.
    static IN_SPAWN: Cell<bool> = const { Cell::new(false) };
}

fn lock() {
    while MARKED
        .lock
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        unsafe { libc::sched_yield() };
    }
}

fn unlock() {
    MARKED.lock.store(false, Ordering::Release);
}

/// Unmark every marked mapping (lock held).
fn unmark_all() {
    let slots = unsafe { &mut *MARKED.slots.get() };
    for s in slots.iter_mut().take(MARKED.n.load(Ordering::Relaxed)) {
        unsafe { libc::madvise(s.0 as *mut c_void, s.1, libc::MADV_DOFORK) };
    }
    MARKED.n.store(0, Ordering::Relaxed);
}

extern "C" fn prepare() {
    if IN_SPAWN.with(|f| f.get()) {
        return;
    }
    lock();
    unmark_all();
}

extern "C" fn after() {
    if !IN_SPAWN.with(|f| f.get()) {
        unlock();
    }
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |p| p * 4096)
}

/// Big private anonymous mappings not containing any of `keep`. (`/proc/self/maps`, not `smaps`: `smaps` walks
/// the page tables of every mapping, which for a large host costs about what the fork does.)
pub(super) fn big_mappings(keep: &[usize]) -> Vec<(usize, usize)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let (_off, _dev, inode, path) = (f.next(), f.next(), f.next(), f.next());
        if !perms.ends_with('p') || inode != Some("0") || path.is_some() {
            continue;
        }
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let (Ok(s), Ok(e)) = (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16)) else {
            continue;
        };
        if e - s >= MIN_SKIP && !keep.iter().any(|a| (s..e).contains(a)) {
            out.push((s, e - s));
        }
    }
    out
}

/// `fork()`, leaving the host's big private anonymous mappings out of the child when the host is large.
/// `keep`: addresses the child reads (its arguments); their mappings are always copied.
pub fn fork(keep: &[usize]) -> pid_t {
    fork_with(keep, rss_bytes() >= MIN_RSS)
}

/// [`fork`], scanning the mappings when `scan` (tests force it on a small process).
pub(super) fn fork_with(keep: &[usize], scan: bool) -> pid_t {
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(Some(prepare), Some(after), Some(after));
    });
    let here = 0u8;
    let mut keep = keep.to_vec();
    keep.push(&here as *const u8 as usize);
    let big = if scan {
        big_mappings(&keep)
    } else {
        Vec::new()
    };
    let mut mine: Vec<(usize, usize)> = Vec::new();
    if !big.is_empty() {
        lock();
        let slots = unsafe { &mut *MARKED.slots.get() };
        for (s, l) in big {
            let n = MARKED.n.load(Ordering::Relaxed);
            if let Some(slot) = slots[..n].iter_mut().find(|x| x.0 == s && x.1 == l) {
                slot.2 += 1;
                mine.push((s, l));
            } else if n < SLOTS
                && unsafe { libc::madvise(s as *mut c_void, l, libc::MADV_DONTFORK) } == 0
            {
                slots[n] = (s, l, 1);
                MARKED.n.store(n + 1, Ordering::Relaxed);
                mine.push((s, l));
            }
        }
        unlock();
    }
    IN_SPAWN.with(|f| f.set(true));
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        return 0;
    }
    IN_SPAWN.with(|f| f.set(false));
    if !mine.is_empty() {
        lock();
        let slots = unsafe { &mut *MARKED.slots.get() };
        for (s, l) in mine {
            let n = MARKED.n.load(Ordering::Relaxed);
            if let Some(i) = slots[..n].iter().position(|x| x.0 == s && x.1 == l) {
                slots[i].2 -= 1;
                if slots[i].2 == 0 {
                    unsafe { libc::madvise(s as *mut c_void, l, libc::MADV_DOFORK) };
                    slots[i] = slots[n - 1];
                    MARKED.n.store(n - 1, Ordering::Relaxed);
                }
            }
        }
        unlock();
    }
    pid
}
