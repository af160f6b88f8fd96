//! What runs inside the sandbox: the outer child (creates the namespaces), the sandbox init (pid 1 of the new
//! pid namespace: builds the root filesystem, drops privileges, then forks one child per command), and the
//! command child (fds, rlimits, exec).
//!
//! Everything here runs in a freshly forked, single-threaded process and ends in `_exit` or `exec`.

use super::filter;
use super::proto::{self, Request};
use libc::{c_int, c_ulong, c_void};
use std::ffi::{CStr, CString};
use std::path::Path;

/// Fd number of the control socket in the sandbox processes.
pub(crate) const SOCK_FD: c_int = 3;
/// User/group id of the command inside the sandbox (mapped to the caller's uid/gid outside).
pub(crate) const SANDBOX_ID: u32 = 1000;

/// Everything the children need, prepared before fork.
pub(crate) struct Plan {
    pub workspace: CString,
    pub uid: u32,
    pub gid: u32,
    pub tmp_bytes: u64,
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn send_str(tag: u8, msg: &str) {
    let mut data = Vec::with_capacity(msg.len() + 1);
    data.push(tag);
    data.extend_from_slice(msg.as_bytes());
    proto::send_with_fds(SOCK_FD, &data, &[]);
}

/// Report a setup failure to the host and exit.
fn fail(msg: String) -> ! {
    send_str(b'E', &msg);
    unsafe { libc::_exit(1) }
}

fn close_from(lowfd: c_int) {
    let r = unsafe { libc::syscall(libc::SYS_close_range, lowfd as u32, u32::MAX, 0u32) };
    if r != 0 {
        for fd in lowfd..4096 {
            unsafe { libc::close(fd) };
        }
    }
}

fn write_file(path: &CStr, data: &[u8]) -> std::io::Result<()> {
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return Err(errno());
        }
        let r = libc::write(fd, data.as_ptr() as *const c_void, data.len());
        let e = errno();
        libc::close(fd);
        if r as usize != data.len() {
            return Err(e);
        }
    }
    Ok(())
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in sandbox paths")
}

/// First child of the host process: reset signals, keep only the control socket, create the user, mount,
/// pid, net, ipc and uts namespaces, map the caller's uid/gid to [`SANDBOX_ID`], fork the sandbox init and
/// wait for it.
pub(crate) fn outer_child(sock: c_int, plan: &Plan) -> ! {
    unsafe {
        if sock != SOCK_FD {
            if libc::dup2(sock, SOCK_FD) < 0 {
                libc::_exit(1);
            }
        } else {
            libc::fcntl(SOCK_FD, libc::F_SETFD, 0);
        }
        close_from(SOCK_FD + 1);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS;
        if libc::unshare(flags) != 0 {
            fail(format!(
                "unshare(CLONE_NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS) failed: {} — user namespaces are \
                 unavailable to this user (check sysctl user.max_user_namespaces, \
                 kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, or a \
                 container seccomp profile)",
                errno()
            ));
        }
        // A process that changed uid (e.g. root dropping to a user) is non-dumpable, which makes its
        // /proc/self/*_map files root-owned and unwritable; the maps need it dumpable.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        let _ = write_file(c"/proc/self/setgroups", b"deny");
        if let Err(e) = write_file(
            c"/proc/self/uid_map",
            format!("{SANDBOX_ID} {} 1\n", plan.uid).as_bytes(),
        ) {
            fail(format!("writing /proc/self/uid_map: {e}"));
        }
        if let Err(e) = write_file(
            c"/proc/self/gid_map",
            format!("{SANDBOX_ID} {} 1\n", plan.gid).as_bytes(),
        ) {
            fail(format!("writing /proc/self/gid_map: {e}"));
        }
        // The init shares this process's memory (CLONE_VM) instead of copying the host's page tables a
        // second time: this process only waits from here on, so the init is the memory's only user.
        const INIT_STACK: usize = 8 << 20;
        let stack = libc::mmap(
            std::ptr::null_mut(),
            INIT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            fail(format!("mmap of the init stack: {}", errno()));
        }
        libc::mprotect(stack, 4096, libc::PROT_NONE); // guard page
        let top = (stack as usize + INIT_STACK) & !15usize;
        let pid = libc::clone(
            init_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            plan as *const Plan as *mut c_void,
        );
        if pid < 0 {
            fail(format!("clone of the sandbox init: {}", errno()));
        }
        libc::close(SOCK_FD);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 && *libc::__errno_location() == libc::EINTR {}
        libc::_exit(0)
    }
}

fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> Result<(), String> {
    let p = |o: Option<&CStr>| o.map_or(std::ptr::null(), |s| s.as_ptr());
    let r = unsafe {
        libc::mount(
            p(src),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data) as *const c_void,
        )
    };
    if r != 0 {
        return Err(format!(
            "mount {} on {}: {}",
            src.map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            target.to_string_lossy(),
            errno()
        ));
    }
    Ok(())
}

/// Bind `src` onto `dst` (not recursively), then remount it with `extra` flags (plus read-only when `ro`),
/// keeping the flags the source mount is locked to.
fn bind(src: &CStr, dst: &CStr, ro: bool, extra: c_ulong) -> Result<(), String> {
    mount(Some(src), dst, None, libc::MS_BIND, None)?;
    let mut keep: c_ulong = 0;
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(dst.as_ptr(), &mut st) == 0 {
            for (st_flag, ms) in [
                (libc::ST_NOSUID, libc::MS_NOSUID),
                (libc::ST_NODEV, libc::MS_NODEV),
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ] {
                if st.f_flag & st_flag != 0 {
                    keep |= ms;
                }
            }
        }
    }
    let ro_flag = if ro { libc::MS_RDONLY } else { 0 };
    mount(
        None,
        dst,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | keep | extra | ro_flag,
        None,
    )
}

fn mkdir(path: &CStr, mode: u32) -> Result<(), String> {
    if unsafe { libc::mkdir(path.as_ptr(), mode) } != 0
        && errno().raw_os_error() != Some(libc::EEXIST)
    {
        return Err(format!("mkdir {}: {}", path.to_string_lossy(), errno()));
    }
    Ok(())
}

fn touch(path: &CStr) -> Result<(), String> {
    write_file(path, b"").map_err(|e| format!("create {}: {e}", path.to_string_lossy()))
}

/// Mirror host `/<name>` at `/tmp/<name>` (the new root before the pivot) read-only: a symlink is copied, a directory or file
/// bind-mounted. Absent entries are skipped.
fn mirror(name: &str, extra: c_ulong) -> Result<(), String> {
    let src = cstr(&format!("/{name}"));
    let dst = cstr(&format!("/tmp/{name}"));
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::lstat(src.as_ptr(), &mut st) } != 0 {
        return Ok(());
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => {
            let mut buf = vec![0u8; 4096];
            let n = unsafe {
                libc::readlink(
                    src.as_ptr(),
                    buf.as_mut_ptr() as *mut libc::c_char,
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(format!("readlink {name}: {}", errno()));
            }
            buf.truncate(n as usize);
            let target = CString::new(buf).map_err(|_| format!("bad symlink {name}"))?;
            if unsafe { libc::symlink(target.as_ptr(), dst.as_ptr()) } != 0 {
                return Err(format!("symlink {name}: {}", errno()));
            }
            Ok(())
        }
        libc::S_IFDIR => {
            mkdir(&dst, 0o755)?;
            bind(&src, &dst, true, extra)
        }
        libc::S_IFREG => {
            touch(&dst)?;
            bind(&src, &dst, true, extra)
        }
        _ => Ok(()),
    }
}

/// Copy a host file, symlink or small directory tree (depth <= 2) into the sandbox's tmpfs.
fn copy_entry(src: &Path, dst: &Path, depth: u32) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(src) else {
        return Ok(());
    };
    let ctx = |e: std::io::Error| format!("copy {} into the sandbox: {e}", src.display());
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(ctx)?;
        std::os::unix::fs::symlink(target, dst).map_err(ctx)?;
    } else if ft.is_file() {
        if meta.len() > (4 << 20) {
            return Ok(());
        }
        std::fs::copy(src, dst).map_err(ctx)?;
    } else if ft.is_dir() && depth < 2 {
        std::fs::create_dir(dst).map_err(ctx)?;
        for entry in std::fs::read_dir(src).map_err(ctx)? {
            let entry = entry.map_err(ctx)?;
            copy_entry(&entry.path(), &dst.join(entry.file_name()), depth + 1)?;
        }
    }
    Ok(())
}

const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
sandbox:x:1000:1000:sandbox:/tmp:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n";
const HOSTS: &str = "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n";
const NSSWITCH: &str =
    "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n";
/// Host `/etc` entries the tools need (dynamic linker, time zone, Python's and git's system config), copied
/// into the sandbox's `/etc` (small files: cheaper than a bind mount each). Absent entries are skipped.
const ETC_COPY: &[&str] = &[
    "ld.so.cache",
    "localtime",
    "os-release",
    "debian_version",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
];
/// Host `/etc` directories bound read-only (`alternatives`: hundreds of symlinks, e.g. awk, editor).
const ETC_BIND: &[&str] = &["alternatives"];
/// Host top-level directories mirrored read-only (symlinks such as `/bin -> usr/bin` copied).
const ROOT_ENTRIES: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Build the sandbox root: a tmpfs with read-only system directories, a generated `/etc`, fresh `/proc`,
/// minimal `/dev`, private `/tmp`, the workspace at `/workspace`; then pivot into it and drop the host tree.
fn build_root(plan: &Plan) -> Result<(), String> {
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    // The workspace, opened before the new root's tmpfs covers /tmp (the workspace may live there); it is
    // bound through /proc/self/fd. The fd is opened in this mount namespace, so the bind is allowed.
    let ws_fd = unsafe {
        libc::open(
            plan.workspace.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if ws_fd < 0 {
        return Err(format!(
            "open workspace {}: {}",
            plan.workspace.to_string_lossy(),
            errno()
        ));
    }
    // The new root: a tmpfs mounted over /tmp of this (private) mount namespace; the host tree stays at "/"
    // until the pivot, so every source below is a plain host path.
    mount(
        Some(c"tmpfs"),
        c"/tmp",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0755,size=1m"),
    )?;
    for name in ROOT_ENTRIES {
        mirror(name, libc::MS_NOSUID | libc::MS_NODEV)?;
    }
    // /etc: generated identity files plus read-only binds of what the tools need.
    mkdir(c"/tmp/etc", 0o755)?;
    for (name, body) in [
        ("passwd", PASSWD),
        ("group", GROUP),
        ("hosts", HOSTS),
        ("hostname", "sandbox\n"),
        ("resolv.conf", ""),
        ("nsswitch.conf", NSSWITCH),
    ] {
        write_file(&cstr(&format!("/tmp/etc/{name}")), body.as_bytes())
            .map_err(|e| format!("write /etc/{name}: {e}"))?;
    }
    for name in ETC_COPY {
        copy_entry(
            Path::new("/etc").join(name).as_path(),
            Path::new("/tmp/etc").join(name).as_path(),
            0,
        )?;
    }
    for name in ETC_BIND {
        mirror(&format!("etc/{name}"), libc::MS_NOSUID | libc::MS_NODEV)?;
    }
    // /dev: a few device nodes bound from the host, the usual symlinks, a private /dev/shm.
    mkdir(c"/tmp/dev", 0o755)?;
    mount(
        Some(c"tmpfs"),
        c"/tmp/dev",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(c"mode=0755,size=64k"),
    )?;
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = cstr(&format!("/tmp/dev/{dev}"));
        touch(&dst)?;
        // A plain bind (no remount): the nodes carry no suid/exec meaning, and the host's /dev is not writable
        // through them (only the device is).
        mount(
            Some(&cstr(&format!("/dev/{dev}"))),
            &dst,
            None,
            libc::MS_BIND,
            None,
        )?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let (l, t) = (cstr(&format!("/tmp/dev/{link}")), cstr(target));
        if unsafe { libc::symlink(t.as_ptr(), l.as_ptr()) } != 0 {
            return Err(format!("symlink /dev/{link}: {}", errno()));
        }
    }
    mkdir(c"/tmp/dev/shm", 0o1777)?;
    mkdir(c"/tmp/dev/pts", 0o755)?;
    mount(
        Some(c"tmpfs"),
        c"/tmp/dev/shm",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=1777,size=16m"),
    )?;
    // /proc for the new pid namespace; kernel knobs read-only, leaky files masked.
    mkdir(c"/tmp/proc", 0o555)?;
    mount(
        Some(c"proc"),
        c"/tmp/proc",
        Some(c"proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    for name in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        let p = cstr(&format!("/tmp/proc/{name}"));
        if unsafe { libc::access(p.as_ptr(), libc::F_OK) } == 0 {
            bind(
                &p,
                &p,
                true,
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            )?;
        }
    }
    for name in ["kcore", "keys", "timer_list", "sched_debug", "kallsyms"] {
        let p = cstr(&format!("/tmp/proc/{name}"));
        if unsafe { libc::access(p.as_ptr(), libc::F_OK) } == 0 {
            mount(Some(c"/tmp/dev/null"), &p, None, libc::MS_BIND, None)?;
        }
    }
    // Private /tmp and the workspace, the only writable paths.
    mkdir(c"/tmp/tmp", 0o1777)?;
    let tmp_opts = cstr(&format!("mode=1777,size={}", plan.tmp_bytes.max(1 << 20)));
    mount(
        Some(c"tmpfs"),
        c"/tmp/tmp",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&tmp_opts),
    )?;
    mkdir(c"/tmp/workspace", 0o755)?;
    let ws_src = cstr(&format!("/proc/self/fd/{ws_fd}"));
    bind(
        &ws_src,
        c"/tmp/workspace",
        false,
        libc::MS_NOSUID | libc::MS_NODEV,
    )
    .map_err(|e| format!("workspace: {e}"))?;
    unsafe { libc::close(ws_fd) };
    mount(
        None,
        c"/tmp",
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    mount(
        None,
        c"/tmp/dev",
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
        None,
    )?;
    // Enter the new root and detach the host tree.
    unsafe {
        if libc::chdir(c"/tmp".as_ptr()) != 0 {
            return Err(format!("chdir to the new root: {}", errno()));
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return Err(format!("pivot_root: {}", errno()));
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(format!("detach old root: {}", errno()));
        }
        if libc::chdir(c"/workspace".as_ptr()) != 0 {
            return Err(format!("chdir /workspace: {}", errno()));
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `no_new_privs`, empty bounding/ambient/effective/permitted/inheritable capability sets.
fn drop_privileges() -> Result<(), String> {
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!("prctl(PR_SET_NO_NEW_PRIVS): {}", errno()));
        }
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        let hdr = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) != 0 {
            return Err(format!("capset: {}", errno()));
        }
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    Ok(())
}

extern "C" fn init_main(arg: *mut c_void) -> c_int {
    let plan = unsafe { &*(arg as *const Plan) };
    sandbox_init(plan)
}

/// Pid 1 of the sandbox's pid namespace: build the root, lock down, report ready, then serve commands.
fn sandbox_init(plan: &Plan) -> ! {
    unsafe {
        // (getppid() is 0 here: the parent lives outside this pid namespace.)
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if let Err(e) = build_root(plan) {
        fail(format!("building the sandbox root: {e}"));
    }
    unsafe { libc::sethostname(c"sandbox".as_ptr(), 7) };
    if let Err(e) = drop_privileges() {
        fail(e);
    }
    let abi = match filter::apply_landlock(&[c"/workspace", c"/tmp", c"/dev/shm"]) {
        Ok(abi) => abi,
        Err(e) => fail(e),
    };
    if let Err(e) = filter::apply_seccomp() {
        fail(e);
    }
    let mut ready = vec![b'R'];
    ready.extend_from_slice(&abi.to_le_bytes());
    if !proto::send_with_fds(SOCK_FD, &ready, &[]) {
        unsafe { libc::_exit(1) };
    }
    serve()
}

fn kill_all_and_reap() {
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        let mut st = 0;
        loop {
            let r = libc::waitpid(-1, &mut st, libc::__WALL);
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                break;
            }
        }
    }
}

fn now_ms() -> u64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The init's loop: one request -> fork the command, wait for it (or its timeout), kill every other
/// process in the namespace, reap, reply. EOF on the control socket (the host closed the sandbox or died)
/// ends the sandbox.
fn serve() -> ! {
    let mut buf = vec![0u8; proto::MAX_REQUEST + 1024];
    let mut stack = vec![0u8; 256 * 1024];
    loop {
        let Some((n, fds)) = proto::recv_with_fds(SOCK_FD, &mut buf) else {
            kill_all_and_reap();
            unsafe { libc::_exit(0) };
        };
        let req = Request::decode(&buf[..n]);
        let (req, fds) = match (req, fds.len()) {
            (Some(r), 3) if !r.argv.is_empty() => (r, fds),
            _ => {
                for fd in fds {
                    unsafe { libc::close(fd) };
                }
                send_str(b'F', "malformed request");
                continue;
            }
        };
        let pid = spawn_command(&req, [fds[0], fds[1], fds[2]], &mut stack);
        for fd in fds {
            unsafe { libc::close(fd) };
        }
        if pid < 0 {
            send_str(b'F', &format!("fork: {}", errno()));
            continue;
        }
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as c_int;
        let deadline = now_ms() + req.timeout_ms;
        let mut timed_out = false;
        let mut host_gone = false;
        loop {
            let left = deadline.saturating_sub(now_ms());
            if left == 0 {
                timed_out = true;
                break;
            }
            let mut pfd = [
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: SOCK_FD,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let r = unsafe { libc::poll(pfd.as_mut_ptr(), 2, left.min(1000) as c_int) };
            if r < 0 {
                continue;
            }
            if pfd[0].revents != 0 {
                break;
            }
            if pfd[1].revents != 0 {
                // The host never sends while a command runs: readable means it closed the socket or died.
                host_gone = true;
                break;
            }
        }
        let mut status = 0;
        unsafe {
            if timed_out || host_gone {
                libc::kill(-1, libc::SIGKILL);
            }
            while libc::waitpid(pid, &mut status, 0) < 0 && *libc::__errno_location() == libc::EINTR
            {
            }
            if pidfd >= 0 {
                libc::close(pidfd);
            }
        }
        kill_all_and_reap();
        if host_gone {
            unsafe { libc::_exit(0) };
        }
        let (kind, code) = if libc::WIFSIGNALED(status) {
            (1u8, libc::WTERMSIG(status))
        } else {
            (0u8, libc::WEXITSTATUS(status))
        };
        let mut reply = vec![b'X', kind];
        reply.extend_from_slice(&code.to_le_bytes());
        reply.push(timed_out as u8);
        if !proto::send_with_fds(SOCK_FD, &reply, &[]) {
            unsafe { libc::_exit(0) };
        }
    }
}

/// Everything the command child needs, prepared by the init so that the child (which shares the init's
/// memory until it execs) neither allocates nor formats.
struct Spawn {
    fds: [c_int; 3],
    limits: [(libc::__rlimit_resource_t, u64, u64); 6],
    candidates: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    msg_not_found: Vec<u8>,
    msg_denied: Vec<u8>,
}

extern "C" fn command_main(arg: *mut c_void) -> c_int {
    unsafe {
        let s = &*(arg as *const Spawn);
        libc::setsid();
        for (i, fd) in s.fds.iter().enumerate() {
            libc::dup2(*fd, i as c_int);
        }
        close_from(3);
        for (res, soft, hard) in s.limits {
            let rl = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            libc::setrlimit(res, &rl);
        }
        let mut denied = false;
        for c in &s.candidates {
            libc::execve(c.as_ptr(), s.argv.as_ptr(), s.envp.as_ptr());
            let e = *libc::__errno_location();
            if e == libc::EACCES {
                denied = true;
            } else if e != libc::ENOENT && e != libc::ENOTDIR {
                denied = true;
                break;
            }
        }
        let msg = if denied {
            &s.msg_denied
        } else {
            &s.msg_not_found
        };
        libc::write(2, msg.as_ptr() as *const c_void, msg.len());
        libc::_exit(if denied { 126 } else { 127 })
    }
}

/// Start the command: a child sharing the init's memory until it execs (CLONE_VM|CLONE_VFORK, like
/// posix_spawn), so a command costs no page-table copy however large the host process was.
fn spawn_command(req: &Request, fds: [c_int; 3], stack: &mut [u8]) -> libc::pid_t {
    let to_c = |a: &Vec<u8>| CString::new(a.clone()).unwrap_or_default();
    let argv: Vec<CString> = req.argv.iter().map(to_c).collect();
    let env: Vec<CString> = req.env.iter().map(to_c).collect();
    let name = &req.argv[0];
    let candidates: Vec<CString> = if name.contains(&b'/') {
        vec![argv[0].clone()]
    } else {
        let path = req
            .env
            .iter()
            .find_map(|e| e.strip_prefix(b"PATH="))
            .unwrap_or(super::DEFAULT_PATH.as_bytes());
        path.split(|b| *b == b':')
            .map(|d| {
                let d = if d.is_empty() { &b"."[..] } else { d };
                let mut full = d.to_vec();
                full.push(b'/');
                full.extend_from_slice(name);
                CString::new(full).unwrap_or_default()
            })
            .collect()
    };
    let shown = String::from_utf8_lossy(name);
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let spawn = Spawn {
        fds,
        limits: [
            (libc::RLIMIT_CPU, req.cpu_s, req.cpu_s + 1),
            (libc::RLIMIT_AS, req.as_bytes, req.as_bytes),
            (libc::RLIMIT_NPROC, req.nproc, req.nproc),
            (libc::RLIMIT_FSIZE, req.fsize, req.fsize),
            (libc::RLIMIT_NOFILE, req.nofile, req.nofile),
            (libc::RLIMIT_CORE, 0, 0),
        ],
        candidates,
        argv: argv_p,
        envp,
        msg_not_found: format!("sandbox: {shown}: command not found\n").into_bytes(),
        msg_denied: format!(
            "sandbox: {shown}: cannot execute (permission denied or not an executable)\n"
        )
        .into_bytes(),
    };
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15usize;
    unsafe {
        libc::clone(
            command_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &spawn as *const Spawn as *mut c_void,
        )
    }
}
