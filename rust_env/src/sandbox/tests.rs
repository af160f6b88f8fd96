//! Unit tests of the sandbox (they start real sandboxes; the attack suite is tests/shell/test_sandbox_attacks.py).

use super::*;
use std::ffi::CString;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sbx-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Start a sandbox, or None (the test is skipped) when this kernel refuses user namespaces.
fn spawn(ws: &Path, limits: Limits) -> Option<Sandbox> {
    match Sandbox::spawn(ws, limits, &[]) {
        Ok(sb) => Some(sb),
        Err(SandboxError::Unavailable(m)) if m.contains("user namespaces are unavailable") => {
            eprintln!("skipped: {m}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn sh(sb: &mut Sandbox, cmd: &str) -> ExecResult {
    sb.run(&["/bin/sh".into(), "-c".into(), cmd.into()], None, None)
        .unwrap()
}

#[test]
fn runs_commands_in_the_workspace_and_keeps_state_across_commands() {
    let ws = tmpdir("basic");
    std::fs::write(ws.join("hello.txt"), "hi\n").unwrap();
    let Some(mut sb) = spawn(&ws, Limits::default()) else {
        return;
    };
    let r = sh(
        &mut sb,
        "pwd; cat hello.txt; id -u; hostname; echo err >&2; exit 3",
    );
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "/workspace\nhi\n1000\nsandbox\n"
    );
    assert_eq!(r.stderr, b"err\n");
    assert!(!r.timed_out && !r.truncated && r.signal.is_none());
    assert_eq!(sh(&mut sb, "echo new > made.txt").exit_code, Some(0));
    assert_eq!(
        std::fs::read_to_string(ws.join("made.txt")).unwrap(),
        "new\n"
    );
    let r = sb.run(&["cat".into()], Some(b"from stdin"), None).unwrap();
    assert_eq!(r.stdout, b"from stdin");
    let r = sb.run(&["no-such-tool".into()], None, None).unwrap();
    assert_eq!(r.exit_code, Some(127));
    sb.close();
    assert!(sb.run(&["true".into()], None, None).is_err());
    std::fs::remove_dir_all(ws).unwrap();
}

#[test]
fn timeout_kills_the_tree_and_output_is_capped() {
    let ws = tmpdir("timeout");
    let limits = Limits {
        max_output_bytes: 1000,
        ..Limits::default()
    };
    let Some(mut sb) = spawn(&ws, limits) else {
        return;
    };
    let r = sb
        .run(
            &["/bin/sh".into(), "-c".into(), "sleep 30 & sleep 30".into()],
            None,
            Some(300),
        )
        .unwrap();
    assert!(r.timed_out);
    assert_eq!(r.signal, Some(libc::SIGKILL));
    assert!(r.wall_ms < 10_000.0);
    let r = sh(&mut sb, "head -c 100000 /dev/zero | tr '\\0' a");
    assert!(r.truncated);
    assert!(r.stdout.starts_with(&[b'a'; 1000]));
    assert!(String::from_utf8_lossy(&r.stdout).contains("truncated"));
    // The namespace holds nothing but its init between commands.
    let r = sb.run(&["ls".into(), "/proc".into()], None, None).unwrap();
    let pids = String::from_utf8_lossy(&r.stdout)
        .split_whitespace()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .count();
    assert_eq!(pids, 2, "only the init and `ls` itself");
    std::fs::remove_dir_all(ws).unwrap();
}

#[test]
fn bad_input_is_refused() {
    assert!(matches!(
        Sandbox::spawn(Path::new("/nonexistent/ws"), Limits::default(), &[]),
        Err(SandboxError::Invalid(_))
    ));
    assert!(matches!(
        Sandbox::spawn(Path::new("/"), Limits::default(), &[]),
        Err(SandboxError::Invalid(_))
    ));
    let bad = Limits {
        cpu_s: 0,
        ..Limits::default()
    };
    assert!(bad.validate().is_err());
    assert!(build_env(&[("A=B".into(), "x".into())]).is_err());
}

#[test]
fn batch_runs_fresh_sandboxes_in_parallel() {
    let ws = tmpdir("batch");
    if spawn(&ws, Limits::default()).is_none() {
        return;
    }
    let jobs: Vec<Job<'_>> = (0..8)
        .map(|i| {
            (
                Target::Fresh(ws.as_path()),
                vec!["echo".to_string(), i.to_string()],
                None,
            )
        })
        .collect();
    let res = run_batch(&jobs, &Limits::default(), &[], 4);
    for (i, r) in res.into_iter().enumerate() {
        assert_eq!(r.unwrap().stdout, format!("{i}\n").into_bytes());
    }
    std::fs::remove_dir_all(ws).unwrap();
}

/// As root, the sandbox also works for an unprivileged user (where unprivileged user namespaces are enabled):
/// a forked child drops to `nobody` and starts a sandbox around a directory it owns.
#[test]
fn works_for_an_unprivileged_user() {
    if unsafe { libc::geteuid() } != 0 {
        // Already unprivileged: the other tests cover it.
        return;
    }
    let ws = tmpdir("unpriv");
    if spawn(&ws, Limits::default()).is_none() {
        return;
    }
    let c = CString::new(ws.as_os_str().as_encoded_bytes()).unwrap();
    unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = unsafe {
            let groups: [libc::gid_t; 0] = [];
            if libc::setgroups(0, groups.as_ptr()) != 0
                || libc::setresgid(65534, 65534, 65534) != 0
                || libc::setresuid(65534, 65534, 65534) != 0
            {
                libc::_exit(10);
            }
            match Sandbox::spawn(&ws, Limits::default(), &[]) {
                Ok(mut sb) => {
                    let r = sb.run(
                        &[
                            "/bin/sh".into(),
                            "-c".into(),
                            "id -u; echo x > f; cat f".into(),
                        ],
                        None,
                        None,
                    );
                    match r {
                        Ok(r) if r.stdout == b"1000\nx\n" => 0,
                        _ => 12,
                    }
                }
                Err(SandboxError::Unavailable(m)) => {
                    // Unprivileged user namespaces disabled here (or another refusal: show it).
                    let m = format!("unprivileged sandbox refused: {m}\n");
                    libc::write(2, m.as_ptr() as *const libc::c_void, m.len());
                    11
                }
                Err(_) => 13,
            }
        };
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    unsafe { libc::waitpid(pid, &mut st, 0) };
    let code = libc::WEXITSTATUS(st);
    let _ = std::fs::remove_dir_all(&ws);
    let user_ns_ok = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim() != "0")
        .unwrap_or(false);
    if user_ns_ok && code == 11 {
        panic!("unprivileged sandbox refused although user.max_user_namespaces > 0");
    }
    assert!(
        code == 0 || code == 11,
        "unprivileged sandbox child exited {code}"
    );
}

#[test]
fn big_host_mappings_skip_the_sandbox_fork_and_stay_forkable() {
    const LEN: usize = 80 << 20;
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut u8;
        assert!(p as *mut libc::c_void != libc::MAP_FAILED);
        *p.add(LEN - 1) = 42;
        let found = super::forkmem::big_mappings(&[]);
        assert!(found
            .iter()
            .any(|&(s, l)| s <= p as usize && p as usize + LEN <= s + l));
        let kept = super::forkmem::big_mappings(&[p as usize + 7]);
        assert!(!kept
            .iter()
            .any(|&(s, l)| s <= p as usize && p as usize + 7 < s + l));
        // The sandbox-style fork leaves the mapping out of the child...
        let pid = super::forkmem::fork_with(&[], true);
        if pid == 0 {
            let mut v: libc::c_uchar = 0;
            let r = libc::mincore(p as *mut libc::c_void, 4096, &mut v);
            libc::_exit(if r == 0 { 1 } else { 0 }); // ENOMEM: not mapped in the child
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        assert_eq!(
            libc::WEXITSTATUS(st),
            0,
            "the mapping was copied into the child"
        );
        // ...and any later fork copies it again.
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(*p.add(LEN - 1) as i32);
        }
        libc::waitpid(pid, &mut st, 0);
        assert_eq!(libc::WEXITSTATUS(st), 42);
        libc::munmap(p as *mut libc::c_void, LEN);
    }
}
