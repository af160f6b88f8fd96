//! Kernel-side policies applied inside the sandbox: a seccomp-BPF syscall filter and a Landlock ruleset.
//!
//! Both are applied once in the sandbox's init process (after `no_new_privs`) and inherited by every command.

use libc::{c_int, c_long, c_void};
use std::ffi::CStr;

// ---- seccomp -------------------------------------------------------------------------------------------

#[repr(C)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}
const fn ret_errno(e: c_int) -> u32 {
    0x0005_0000 | (e as u32 & 0xffff)
}

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Syscalls a sandboxed command never gets (EPERM): namespace, mount and module control, tracing, kernel
/// keyrings, BPF, perf, io_uring (which would bypass this filter), clock and host administration.
pub(crate) const DENIED_SYSCALLS: &[c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_quotactl,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_vhangup,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_move_pages,
    libc::SYS_migrate_pages,
    libc::SYS_fanotify_init,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

const NS_CLONE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | 0x80/* CLONE_NEWTIME */) as u32;

/// The BPF program: kill on a foreign architecture (e.g. the i386 `int 0x80` entry), EPERM for
/// [`DENIED_SYSCALLS`] and x32 numbers, `socket()` only for AF_UNIX, `clone()` without namespace flags,
/// `clone3()` answered ENOSYS (so libc falls back to `clone()`, whose flags the filter can read), no TIOCSTI.
fn program() -> Vec<SockFilter> {
    let arch = if cfg!(target_arch = "aarch64") {
        AUDIT_ARCH_AARCH64
    } else {
        AUDIT_ARCH_X86_64
    };
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, arch, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, 0x4000_0000, 0, 1),
        stmt(RET_K, ret_errno(libc::EPERM)),
    ];
    for &nr in DENIED_SYSCALLS {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET_K, ret_errno(libc::EPERM)));
    }
    // socket(domain, ...): AF_UNIX only.
    p.push(jump(JEQ_K, libc::SYS_socket as u32, 0, 4));
    p.push(stmt(LD_W_ABS, off_arg(0)));
    p.push(jump(JEQ_K, libc::AF_UNIX as u32, 0, 1));
    p.push(stmt(RET_K, RET_ALLOW));
    p.push(stmt(RET_K, ret_errno(libc::EAFNOSUPPORT)));
    // clone(flags, ...): no new namespaces.
    p.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 4));
    p.push(stmt(LD_W_ABS, off_arg(0)));
    p.push(jump(JSET_K, NS_CLONE_FLAGS, 0, 1));
    p.push(stmt(RET_K, ret_errno(libc::EPERM)));
    p.push(stmt(RET_K, RET_ALLOW));
    p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(stmt(RET_K, ret_errno(libc::ENOSYS)));
    // ioctl(fd, TIOCSTI / TIOCLINUX): no injecting input into a terminal.
    p.push(jump(JEQ_K, libc::SYS_ioctl as u32, 0, 5));
    p.push(stmt(LD_W_ABS, off_arg(1)));
    p.push(jump(JEQ_K, libc::TIOCSTI as u32, 2, 0));
    p.push(jump(JEQ_K, libc::TIOCLINUX as u32, 1, 0));
    p.push(stmt(RET_K, RET_ALLOW));
    p.push(stmt(RET_K, ret_errno(libc::EPERM)));
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

/// Install the filter on the calling thread (requires `no_new_privs`).
pub(crate) fn apply_seccomp() -> Result<(), String> {
    let prog = program();
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const SockFprog as libc::c_ulong,
        )
    };
    if r != 0 {
        return Err(format!(
            "seccomp filter (prctl(PR_SET_SECCOMP)): {} (kernel built without CONFIG_SECCOMP_FILTER?)",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

// ---- Landlock ------------------------------------------------------------------------------------------

const SYS_LANDLOCK_CREATE_RULESET: c_long = 444;
const SYS_LANDLOCK_ADD_RULE: c_long = 445;
const SYS_LANDLOCK_RESTRICT_SELF: c_long = 446;
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: c_int = 1;

pub(crate) const FS_EXECUTE: u64 = 1 << 0;
pub(crate) const FS_WRITE_FILE: u64 = 1 << 1;
pub(crate) const FS_READ_FILE: u64 = 1 << 2;
pub(crate) const FS_READ_DIR: u64 = 1 << 3;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;
const NET_BIND_TCP: u64 = 1;
const NET_CONNECT_TCP: u64 = 2;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
const SCOPE_SIGNAL: u64 = 2;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of the running kernel (0: not supported or disabled at boot).
pub fn landlock_abi() -> u32 {
    let r = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            std::ptr::null::<c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as u32
    }
}

fn fs_rights(abi: u32) -> u64 {
    let mut all = (1u64 << 13) - 1; // ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2 {
        all |= FS_REFER;
    }
    if abi >= 3 {
        all |= FS_TRUNCATE;
    }
    if abi >= 5 {
        all |= FS_IOCTL_DEV;
    }
    all
}

/// Restrict the calling process: read/execute everywhere, write only beneath `writable` paths, read+write
/// (no create) beneath `/dev` and `/proc`; from ABI 4 no TCP bind/connect; from ABI 6 no signals or abstract
/// unix sockets leaving the sandbox. Returns the ABI in force (0 when the kernel lacks Landlock).
pub(crate) fn apply_landlock(writable: &[&CStr]) -> Result<u32, String> {
    let abi = landlock_abi();
    if abi == 0 {
        return Ok(0);
    }
    let all = fs_rights(abi);
    let attr = RulesetAttr {
        handled_access_fs: all,
        handled_access_net: if abi >= 4 {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    let size = match abi {
        1..=3 => 8usize,
        4 | 5 => 16,
        _ => 24,
    };
    let rs = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if rs < 0 {
        return Err(format!(
            "landlock_create_ruleset: {}",
            std::io::Error::last_os_error()
        ));
    }
    let rs = rs as c_int;
    let read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR;
    let dev = (FS_READ_FILE | FS_WRITE_FILE | FS_READ_DIR | FS_TRUNCATE | FS_IOCTL_DEV) & all;
    let proc_ = FS_READ_FILE | FS_WRITE_FILE | FS_READ_DIR;
    let mut rules: Vec<(&CStr, u64)> = vec![(c"/", read), (c"/dev", dev), (c"/proc", proc_)];
    for w in writable {
        rules.push((w, all));
    }
    let result = (|| {
        for (path, access) in rules {
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(format!(
                    "landlock rule for {}: open: {}",
                    path.to_string_lossy(),
                    std::io::Error::last_os_error()
                ));
            }
            let rule = PathBeneathAttr {
                allowed_access: access,
                parent_fd: fd,
            };
            let r = unsafe {
                libc::syscall(
                    SYS_LANDLOCK_ADD_RULE,
                    rs,
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                )
            };
            let err = std::io::Error::last_os_error();
            unsafe { libc::close(fd) };
            if r != 0 {
                return Err(format!(
                    "landlock_add_rule({}): {err}",
                    path.to_string_lossy()
                ));
            }
        }
        let r = unsafe { libc::syscall(SYS_LANDLOCK_RESTRICT_SELF, rs, 0u32) };
        if r != 0 {
            return Err(format!(
                "landlock_restrict_self: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(abi)
    })();
    unsafe { libc::close(rs) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seccomp_program_jumps_stay_in_bounds() {
        let p = program();
        assert!(p.len() < 4096);
        for (i, ins) in p.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                assert!(i + 1 + (ins.jt as usize) < p.len());
                assert!(i + 1 + (ins.jf as usize) < p.len());
            }
        }
        assert_eq!(p.last().unwrap().code, RET_K);
    }

    #[test]
    fn landlock_rights_grow_with_abi() {
        assert_eq!(fs_rights(1), (1 << 13) - 1);
        assert!(fs_rights(3) & FS_TRUNCATE != 0);
        assert!(fs_rights(2) & FS_TRUNCATE == 0);
        assert!(fs_rights(5) & FS_IOCTL_DEV != 0);
    }
}
