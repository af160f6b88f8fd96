//! Namespace sandbox for running real commands (ShellEnv, `dspy-rl shell exec`).
//!
//! A [`Sandbox`] is one set of fresh Linux namespaces (user, mount, pid, net, ipc, uts) around one workspace
//! directory, kept alive by a small init process (pid 1 of the pid namespace) that forks each command. Inside:
//! read-only `/usr` `/bin` `/lib*`, a generated `/etc`, fresh `/proc`, minimal `/dev`, private `/tmp`, the
//! workspace at `/workspace` (the only writable host path), no network; `no_new_privs`, no capabilities,
//! a seccomp filter, Landlock where the kernel has it, and per-command rlimits and a wall-clock timeout. After
//! every command the init kills every process left in the namespace, so nothing outlives a command.
//! If the kernel refuses any of that, [`Sandbox::spawn`] fails with [`SandboxError::Unavailable`] naming what is
//! missing; nothing ever runs unsandboxed.

pub mod filter;
mod forkmem;
mod init;
pub mod proto;
pub mod py;

use libc::{c_int, c_void, pid_t};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// PATH inside the sandbox unless the caller sets one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
/// Extra time the host grants the sandbox init beyond a command's timeout before it kills the sandbox.
const HOST_GRACE: Duration = Duration::from_secs(3);
/// Output read (and discarded) past the cap before the host closes the pipe (the writer then gets SIGPIPE).
const DRAIN_AFTER_CAP: usize = 4 << 20;

/// Resource limits of each command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit of a command, ms; the whole process tree is killed when it passes.
    pub timeout_ms: u64,
    /// RLIMIT_CPU, seconds of CPU per process.
    pub cpu_s: u64,
    /// RLIMIT_AS, bytes of address space per process.
    pub mem_bytes: u64,
    /// RLIMIT_NPROC, processes of the sandbox user (counted per sandbox: each has its own user namespace).
    pub max_procs: u64,
    /// RLIMIT_FSIZE, largest file a command may write, bytes.
    pub max_file_bytes: u64,
    /// RLIMIT_NOFILE, open files per process.
    pub max_open_files: u64,
    /// Bytes of stdout and of stderr kept each; beyond, the output is cut with a truncation marker.
    pub max_output_bytes: u64,
    /// Size of the private `/tmp` tmpfs, bytes.
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 10_000,
            cpu_s: 10,
            mem_bytes: 1024 << 20,
            max_procs: 64,
            max_file_bytes: 64 << 20,
            max_open_files: 256,
            max_output_bytes: 65_536,
            tmp_bytes: 64 << 20,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), SandboxError> {
        let checks: [(&str, u64); 8] = [
            ("timeout_ms", self.timeout_ms),
            ("cpu_s", self.cpu_s),
            ("mem_bytes", self.mem_bytes),
            ("max_procs", self.max_procs),
            ("max_file_bytes", self.max_file_bytes),
            ("max_open_files", self.max_open_files),
            ("max_output_bytes", self.max_output_bytes),
            ("tmp_bytes", self.tmp_bytes),
        ];
        for (name, v) in checks {
            if v == 0 {
                return Err(SandboxError::Invalid(format!(
                    "sandbox limit {name} must be > 0"
                )));
            }
        }
        if self.mem_bytes < (16 << 20) {
            return Err(SandboxError::Invalid(
                "sandbox limit mem must be at least 16 MiB (the dynamic loader alone needs a few)"
                    .into(),
            ));
        }
        if self.max_open_files < 16 {
            return Err(SandboxError::Invalid(
                "sandbox limit max_open_files must be at least 16".into(),
            ));
        }
        Ok(())
    }
}

/// What one command did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecResult {
    /// Exit status when the command exited (None when killed by a signal).
    pub exit_code: Option<i32>,
    /// Signal that killed the command (SIGKILL on timeout).
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// stdout or stderr was cut at `max_output_bytes`.
    pub truncated: bool,
    /// The wall-clock timeout killed the command.
    pub timed_out: bool,
    pub wall_ms: f64,
    /// Why the command ended abnormally (timeout, CPU/file-size limit, output limit, sandbox failure).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SandboxError {
    /// The kernel (or the caller's privileges) does not allow the sandbox; the message names what is missing.
    Unavailable(String),
    /// Bad input (missing workspace, empty argv, bad limits).
    Invalid(String),
    /// The sandbox was closed or its init died.
    Closed(String),
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxError::Unavailable(m) => write!(f, "sandbox unavailable: {m}"),
            SandboxError::Invalid(m) | SandboxError::Closed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SandboxError {}

fn os_err(what: &str) -> SandboxError {
    SandboxError::Unavailable(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// Canonical absolute path of an existing directory other than `/`.
pub fn check_workspace(workspace: &Path) -> Result<PathBuf, SandboxError> {
    let ws = workspace.canonicalize().map_err(|e| {
        SandboxError::Invalid(format!(
            "workspace {} does not exist or is unreadable ({e}); pass an existing directory",
            workspace.display()
        ))
    })?;
    if !ws.is_dir() {
        return Err(SandboxError::Invalid(format!(
            "workspace {} is not a directory",
            workspace.display()
        )));
    }
    if ws == Path::new("/") {
        return Err(SandboxError::Invalid(
            "workspace must not be / (it becomes the sandbox's only writable path)".into(),
        ));
    }
    Ok(ws)
}

/// Build the environment of commands: defaults, then `extra` (which may override them).
pub fn build_env(extra: &[(String, String)]) -> Result<Vec<Vec<u8>>, SandboxError> {
    let mut vars: Vec<(String, String)> = [
        ("PATH", DEFAULT_PATH),
        ("HOME", "/tmp"),
        ("USER", "sandbox"),
        ("LOGNAME", "sandbox"),
        ("SHELL", "/bin/sh"),
        ("TMPDIR", "/tmp"),
        ("PWD", "/workspace"),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(SandboxError::Invalid(format!(
                "bad environment variable {k:?}: names must be non-empty without '=' or NUL, values without NUL"
            )));
        }
        if let Some(slot) = vars.iter_mut().find(|(kk, _)| kk == k) {
            slot.1 = v.clone();
        } else {
            vars.push((k.clone(), v.clone()));
        }
    }
    Ok(vars
        .into_iter()
        .map(|(k, v)| format!("{k}={v}").into_bytes())
        .collect())
}

/// One episode's sandbox: namespaces and mounts built once, commands run in it one at a time.
pub struct Sandbox {
    sock: c_int,
    pid: pid_t,
    env: Vec<Vec<u8>>,
    limits: Limits,
    workspace: PathBuf,
    landlock_abi: u32,
    closed: bool,
}

fn set_cloexec_pipe() -> Result<[c_int; 2], SandboxError> {
    let mut p = [0 as c_int; 2];
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err("pipe2"));
    }
    Ok(p)
}

fn close(fd: &mut c_int) {
    if *fd >= 0 {
        unsafe { libc::close(*fd) };
        *fd = -1;
    }
}

impl Sandbox {
    /// Create the namespaces, the root filesystem and the init, with `workspace` at `/workspace`.
    pub fn spawn(
        workspace: &Path,
        limits: Limits,
        env: &[(String, String)],
    ) -> Result<Sandbox, SandboxError> {
        limits.validate()?;
        let ws = check_workspace(workspace)?;
        let env = build_env(env)?;
        let plan = init::Plan {
            workspace: CString::new(ws.as_os_str().as_encoded_bytes())
                .map_err(|_| SandboxError::Invalid("workspace path contains NUL".into()))?,
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
            tmp_bytes: limits.tmp_bytes,
        };
        let mut sv = [0 as c_int; 2];
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        } != 0
        {
            return Err(os_err("socketpair"));
        }
        let bufsize: c_int = (proto::MAX_REQUEST + 4096) as c_int;
        for fd in sv {
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    &bufsize as *const c_int as *const c_void,
                    4,
                );
            }
        }
        let pid = forkmem::fork(&[
            &plan as *const init::Plan as usize,
            plan.workspace.as_ptr() as usize,
        ]);
        if pid < 0 {
            unsafe {
                libc::close(sv[0]);
                libc::close(sv[1]);
            }
            return Err(os_err("fork"));
        }
        if pid == 0 {
            init::outer_child(sv[1], &plan);
        }
        unsafe { libc::close(sv[1]) };
        let mut sb = Sandbox {
            sock: sv[0],
            pid,
            env,
            limits,
            workspace: ws,
            landlock_abi: 0,
            closed: false,
        };
        // Wait for "ready" (or the reason setup failed).
        let mut buf = [0u8; 4096];
        let mut pfd = libc::pollfd {
            fd: sb.sock,
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = unsafe { libc::poll(&mut pfd, 1, 20_000) };
        let got = if ready > 0 {
            proto::recv_with_fds(sb.sock, &mut buf)
        } else {
            None
        };
        match got {
            Some((n, _)) if n == 5 && buf[0] == b'R' => {
                sb.landlock_abi = u32::from_le_bytes(buf[1..5].try_into().unwrap());
                Ok(sb)
            }
            Some((n, _)) if n > 0 && buf[0] == b'E' => {
                let msg = String::from_utf8_lossy(&buf[1..n]).into_owned();
                sb.close();
                Err(SandboxError::Unavailable(msg))
            }
            _ => {
                sb.close();
                Err(SandboxError::Unavailable(
                    "the sandbox init exited during setup without a reason".into(),
                ))
            }
        }
    }

    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Host pid of the sandbox's outer process (its init is that process's only child).
    pub fn pid(&self) -> pid_t {
        self.pid
    }

    /// Landlock ABI in force (0: the kernel has no Landlock; seccomp and namespaces still apply).
    pub fn landlock_abi(&self) -> u32 {
        self.landlock_abi
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Run `argv` (PATH-searched) in `/workspace` with `stdin`; `timeout_ms` overrides the limit for this call.
    pub fn run(
        &mut self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout_ms: Option<u64>,
    ) -> Result<ExecResult, SandboxError> {
        if self.closed {
            return Err(SandboxError::Closed(format!(
                "the sandbox of {} is closed; create a new one",
                self.workspace.display()
            )));
        }
        if argv.is_empty() || argv[0].is_empty() {
            return Err(SandboxError::Invalid("empty command".into()));
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(SandboxError::Invalid(
                "command arguments must not contain NUL bytes".into(),
            ));
        }
        let timeout_ms = timeout_ms.unwrap_or(self.limits.timeout_ms);
        if timeout_ms == 0 {
            return Err(SandboxError::Invalid("timeout must be > 0".into()));
        }
        let req = proto::Request {
            timeout_ms,
            cpu_s: self.limits.cpu_s,
            as_bytes: self.limits.mem_bytes,
            nproc: self.limits.max_procs,
            fsize: self.limits.max_file_bytes,
            nofile: self.limits.max_open_files,
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            env: self.env.clone(),
        }
        .encode();
        if req.len() > proto::MAX_REQUEST {
            return Err(SandboxError::Invalid(format!(
                "command and environment take {} bytes; at most {} (pass large data on stdin)",
                req.len(),
                proto::MAX_REQUEST
            )));
        }
        let start = Instant::now();
        let inp = set_cloexec_pipe()?;
        let out = set_cloexec_pipe()?;
        let err = set_cloexec_pipe()?;
        let sent = proto::send_with_fds(self.sock, &req, &[inp[0], out[1], err[1]]);
        let (mut in_r, mut out_w, mut err_w) = (inp[0], out[1], err[1]);
        close(&mut in_r);
        close(&mut out_w);
        close(&mut err_w);
        let (mut in_w, mut out_r, mut err_r) = (inp[1], out[0], err[0]);
        if !sent {
            for fd in [&mut in_w, &mut out_r, &mut err_r] {
                close(fd);
            }
            self.kill();
            return Err(SandboxError::Closed(
                "the sandbox init is gone (could not send the command)".into(),
            ));
        }
        let stdin = stdin.unwrap_or(&[]);
        let mut in_pos = 0usize;
        if stdin.is_empty() {
            close(&mut in_w);
        } else {
            unsafe { libc::fcntl(in_w, libc::F_SETFL, libc::O_NONBLOCK) };
        }
        let cap = self.limits.max_output_bytes as usize;
        let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut seen = [0usize; 2];
        let mut reply: Option<Vec<u8>> = None;
        let mut init_gone = false;
        let mut killed_by_host = false;
        let host_deadline = start + Duration::from_millis(timeout_ms) + HOST_GRACE;
        let mut chunk = vec![0u8; 65536];
        loop {
            let streams_open = out_r >= 0 || err_r >= 0;
            if reply.is_some() && !streams_open {
                break;
            }
            if (init_gone || killed_by_host) && !streams_open {
                break;
            }
            let now = Instant::now();
            if now >= host_deadline && !killed_by_host {
                // The init did not answer in time: kill the whole sandbox (its pid namespace dies with it).
                self.kill();
                killed_by_host = true;
            }
            let wait_ms = if killed_by_host {
                200
            } else {
                (host_deadline - now).as_millis().min(1000) as c_int + 1
            };
            let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(4);
            let mut ids: Vec<u8> = Vec::with_capacity(4);
            for (id, fd, ev) in [
                (0u8, out_r, libc::POLLIN),
                (1u8, err_r, libc::POLLIN),
                (2u8, in_w, libc::POLLOUT),
                (
                    3u8,
                    if reply.is_none() && !init_gone && !killed_by_host {
                        self.sock
                    } else {
                        -1
                    },
                    libc::POLLIN,
                ),
            ] {
                if fd >= 0 {
                    pfds.push(libc::pollfd {
                        fd,
                        events: ev,
                        revents: 0,
                    });
                    ids.push(id);
                }
            }
            if pfds.is_empty() {
                break;
            }
            let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait_ms) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break;
            }
            if r == 0 && killed_by_host {
                // Killed and still no EOF after the grace poll: give up on the pipes.
                break;
            }
            for (pfd, id) in pfds.iter().zip(ids.iter()) {
                if pfd.revents == 0 {
                    continue;
                }
                match id {
                    0 | 1 => {
                        let i = *id as usize;
                        let fd = if i == 0 { &mut out_r } else { &mut err_r };
                        let n = unsafe {
                            libc::read(*fd, chunk.as_mut_ptr() as *mut c_void, chunk.len())
                        };
                        if n <= 0 {
                            if n < 0
                                && std::io::Error::last_os_error().raw_os_error()
                                    == Some(libc::EINTR)
                            {
                                continue;
                            }
                            close(fd);
                            continue;
                        }
                        let n = n as usize;
                        let keep = cap.saturating_sub(bufs[i].len()).min(n);
                        bufs[i].extend_from_slice(&chunk[..keep]);
                        seen[i] += n;
                        if seen[i] > cap + DRAIN_AFTER_CAP {
                            close(fd);
                        }
                    }
                    2 => {
                        let n = unsafe {
                            libc::write(
                                in_w,
                                stdin[in_pos..].as_ptr() as *const c_void,
                                (stdin.len() - in_pos).min(65536),
                            )
                        };
                        if n > 0 {
                            in_pos += n as usize;
                        }
                        if n < 0 || in_pos >= stdin.len() {
                            let e = std::io::Error::last_os_error().raw_os_error();
                            if n >= 0 || e != Some(libc::EAGAIN) {
                                close(&mut in_w);
                            }
                        }
                    }
                    _ => {
                        let mut buf = [0u8; 4096];
                        match proto::recv_with_fds(self.sock, &mut buf) {
                            Some((n, _)) if n > 0 => reply = Some(buf[..n].to_vec()),
                            _ => init_gone = true,
                        }
                        close(&mut in_w);
                    }
                }
            }
        }
        for fd in [&mut in_w, &mut out_r, &mut err_r] {
            close(fd);
        }
        let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
        let truncated = seen[0] > cap || seen[1] > cap;
        let mut res = ExecResult {
            exit_code: None,
            signal: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated,
            timed_out: false,
            wall_ms,
            reason: None,
        };
        for (i, b) in bufs.into_iter().enumerate() {
            let mut b = b;
            if seen[i] > cap {
                b.extend_from_slice(
                    format!("\n[output truncated: kept the first {cap} bytes]\n").as_bytes(),
                );
            }
            if i == 0 {
                res.stdout = b;
            } else {
                res.stderr = b;
            }
        }
        match reply {
            Some(r) if r.len() == 7 && r[0] == b'X' => {
                let code = i32::from_le_bytes(r[2..6].try_into().unwrap());
                res.timed_out = r[6] != 0;
                if r[1] == 0 {
                    res.exit_code = Some(code);
                } else {
                    res.signal = Some(code);
                }
                res.reason = explain(&res, timeout_ms);
            }
            Some(r) if !r.is_empty() && r[0] == b'F' => {
                return Err(SandboxError::Closed(format!(
                    "the sandbox could not start the command: {}",
                    String::from_utf8_lossy(&r[1..])
                )));
            }
            _ => {
                self.kill();
                res.timed_out = killed_by_host;
                res.signal = Some(libc::SIGKILL);
                res.reason = Some(if killed_by_host {
                    format!("the sandbox did not finish within {timeout_ms} ms plus grace; it was killed")
                } else {
                    "the sandbox init died; the sandbox was torn down".into()
                });
            }
        }
        Ok(res)
    }

    /// Kill the sandbox now (its pid namespace, hence every process in it, dies) and reap it.
    fn kill(&mut self) {
        if self.closed {
            return;
        }
        close(&mut self.sock);
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut st = 0;
            while libc::waitpid(self.pid, &mut st, 0) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
        }
        self.closed = true;
    }

    /// Close the sandbox: its init kills every process in it and exits; the outer process is reaped.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        close(&mut self.sock);
        // The init sees EOF, kills everything in the namespace and exits; then the outer process exits.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) } as c_int;
        let mut st = 0;
        let exited = if pidfd >= 0 {
            let mut pfd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            let r = loop {
                let r = unsafe { libc::poll(&mut pfd, 1, 2000) };
                if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break r;
                }
            };
            unsafe { libc::close(pidfd) };
            r > 0
        } else {
            false
        };
        if !exited {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        unsafe {
            while libc::waitpid(self.pid, &mut st, 0) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
        }
        self.closed = true;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.close();
    }
}

fn explain(res: &ExecResult, timeout_ms: u64) -> Option<String> {
    if res.timed_out {
        return Some(format!(
            "wall-clock timeout of {:.3} s exceeded; every process of the command was killed",
            timeout_ms as f64 / 1000.0
        ));
    }
    match res.signal {
        Some(libc::SIGXCPU) => Some("CPU time limit (RLIMIT_CPU) exceeded".into()),
        Some(libc::SIGXFSZ) => Some("file size limit (RLIMIT_FSIZE) exceeded".into()),
        Some(libc::SIGPIPE) if res.truncated => {
            Some("output limit exceeded; the output pipe was closed".into())
        }
        Some(libc::SIGKILL) if !res.timed_out => {
            Some("killed by SIGKILL (CPU time hard limit, or out of memory)".into())
        }
        Some(s) => Some(format!("killed by signal {s}")),
        None if res.truncated => Some("output truncated at the output limit".into()),
        None => None,
    }
}

/// One job of [`run_batch`]: a fresh sandbox around `workspace`, or a command in an existing sandbox.
pub enum Target<'a> {
    Fresh(&'a Path),
    Existing(&'a std::sync::Mutex<Option<Sandbox>>),
}

/// A [`Target`], the argv, and the stdin bytes.
pub type Job<'a> = (Target<'a>, Vec<String>, Option<Vec<u8>>);

/// Run `jobs` on `workers` threads (0: one per CPU, at least 2); results in job order.
pub fn run_batch(
    jobs: &[Job<'_>],
    limits: &Limits,
    env: &[(String, String)],
    workers: usize,
) -> Vec<Result<ExecResult, SandboxError>> {
    let n = jobs.len();
    let workers = if workers == 0 {
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(2)
            .max(2)
    } else {
        workers
    }
    .min(n.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<ExecResult, SandboxError>>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    let run_one = |i: usize| -> Result<ExecResult, SandboxError> {
        let (target, argv, stdin) = &jobs[i];
        match target {
            Target::Fresh(ws) => {
                let mut sb = Sandbox::spawn(ws, limits.clone(), env)?;
                let r = sb.run(argv, stdin.as_deref(), None);
                sb.close();
                r
            }
            Target::Existing(m) => {
                let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
                match g.as_mut() {
                    Some(sb) => sb.run(argv, stdin.as_deref(), None),
                    None => Err(SandboxError::Closed("the sandbox is closed".into())),
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = run_one(i);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every job ran"))
        .collect()
}

/// Start a sandbox around an empty temporary directory and run `true` in it: Ok(landlock ABI) when the
/// kernel allows everything the sandbox needs, else the reason.
pub fn check_support() -> Result<u32, SandboxError> {
    let dir = std::env::temp_dir().join(format!(
        "dspy-rl-sandbox-check-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| SandboxError::Unavailable(format!("create {}: {e}", dir.display())))?;
    let result = (|| {
        let mut sb = Sandbox::spawn(&dir, Limits::default(), &[])?;
        let r = sb.run(&["true".to_string()], None, Some(5000))?;
        sb.close();
        if r.exit_code != Some(0) {
            return Err(SandboxError::Unavailable(format!(
                "`true` failed inside the sandbox: exit {:?} signal {:?}: {}",
                r.exit_code,
                r.signal,
                String::from_utf8_lossy(&r.stderr)
            )));
        }
        Ok(sb.landlock_abi())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests;
