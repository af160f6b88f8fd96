//! PyO3 layer of the sandbox: `SandboxProcess`, `sandbox_run_batch`, `sandbox_check_support`.
//! The Python API (dataclasses, `SandboxUnavailable`) is `dspy_rl/shell/sandbox.py`.

use super::{ExecResult, Limits, Sandbox, SandboxError, Target};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Mutex;

pyo3::create_exception!(
    _rust_env,
    SandboxUnavailableError,
    PyRuntimeError,
    "The kernel or the caller's privileges do not allow the sandbox; the message names what is missing."
);

/// (exit_code, signal, stdout, stderr, truncated, timed_out, wall_ms, reason)
type PyExec = (
    Option<i32>,
    Option<i32>,
    String,
    String,
    bool,
    bool,
    f64,
    Option<String>,
);

fn to_py(r: ExecResult) -> PyExec {
    (
        r.exit_code,
        r.signal,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
        r.truncated,
        r.timed_out,
        r.wall_ms,
        r.reason,
    )
}

fn to_pyerr(e: SandboxError) -> PyErr {
    match e {
        SandboxError::Unavailable(_) => SandboxUnavailableError::new_err(e.to_string()),
        SandboxError::Invalid(m) => PyValueError::new_err(m),
        SandboxError::Closed(m) => PyRuntimeError::new_err(m),
    }
}

/// (timeout_ms, cpu_s, mem_bytes, max_procs, max_file_bytes, max_open_files, max_output_bytes, tmp_bytes)
type PyLimits = (u64, u64, u64, u64, u64, u64, u64, u64);

fn limits_from(l: Option<PyLimits>) -> Limits {
    match l {
        None => Limits::default(),
        Some((a, b, c, d, e, f, g, h)) => Limits {
            timeout_ms: a,
            cpu_s: b,
            mem_bytes: c,
            max_procs: d,
            max_file_bytes: e,
            max_open_files: f,
            max_output_bytes: g,
            tmp_bytes: h,
        },
    }
}

/// One episode's namespace sandbox around a workspace directory; commands run in it one at a time.
#[pyclass(frozen, module = "dspy_rl._rust_env")]
pub struct SandboxProcess {
    inner: Mutex<Option<Sandbox>>,
    workspace: String,
    landlock: u32,
    pid: i32,
}

#[pymethods]
impl SandboxProcess {
    #[new]
    #[pyo3(signature = (workspace, limits=None, env=None))]
    fn new(
        py: Python<'_>,
        workspace: PathBuf,
        limits: Option<PyLimits>,
        env: Option<Vec<(String, String)>>,
    ) -> PyResult<Self> {
        let limits = limits_from(limits);
        let env = env.unwrap_or_default();
        let sb = py
            .detach(|| Sandbox::spawn(&workspace, limits, &env))
            .map_err(to_pyerr)?;
        Ok(SandboxProcess {
            workspace: sb.workspace().display().to_string(),
            landlock: sb.landlock_abi(),
            pid: sb.pid(),
            inner: Mutex::new(Some(sb)),
        })
    }

    /// Run argv in /workspace; returns (exit_code, signal, stdout, stderr, truncated, timed_out, wall_ms, reason).
    #[pyo3(signature = (argv, stdin=None, timeout_ms=None))]
    fn run(
        &self,
        py: Python<'_>,
        argv: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u64>,
    ) -> PyResult<PyExec> {
        py.detach(|| {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            match g.as_mut() {
                Some(sb) => sb.run(&argv, stdin.as_deref(), timeout_ms),
                None => Err(SandboxError::Closed(format!(
                    "the sandbox of {} is closed; create a new one",
                    self.workspace
                ))),
            }
        })
        .map(to_py)
        .map_err(to_pyerr)
    }

    /// Kill everything in the sandbox and tear it down (idempotent).
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(mut sb) = g.take() {
                sb.close();
            }
        })
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .map(|g| g.as_ref().is_none_or(|s| s.is_closed()))
            .unwrap_or(true)
    }

    #[getter]
    fn workspace(&self) -> String {
        self.workspace.clone()
    }

    /// Landlock ABI in force (0 when the kernel has none).
    #[getter]
    fn landlock_abi(&self) -> u32 {
        self.landlock
    }

    /// Host pid of the sandbox's outer process.
    #[getter]
    fn pid(&self) -> i32 {
        self.pid
    }
}

/// (target, argv, stdin) as passed from Python.
type PyJob<'py> = (Bound<'py, PyAny>, Vec<String>, Option<Vec<u8>>);

/// Run (target, argv, stdin) jobs on a Rust thread pool; a target is a workspace path (fresh sandbox per job)
/// or a SandboxProcess (a command in that episode's sandbox). Raises on the first failing job.
#[pyfunction]
#[pyo3(signature = (jobs, limits=None, env=None, workers=0))]
pub fn sandbox_run_batch(
    py: Python<'_>,
    jobs: Vec<PyJob<'_>>,
    limits: Option<PyLimits>,
    env: Option<Vec<(String, String)>>,
    workers: usize,
) -> PyResult<Vec<PyExec>> {
    enum T {
        Fresh(PathBuf),
        Existing(Py<SandboxProcess>),
    }
    let mut owned: Vec<(T, Vec<String>, Option<Vec<u8>>)> = Vec::with_capacity(jobs.len());
    for (i, (target, argv, stdin)) in jobs.into_iter().enumerate() {
        let t = if let Ok(sb) = target.cast::<SandboxProcess>() {
            T::Existing(sb.clone().unbind())
        } else {
            T::Fresh(target.extract::<PathBuf>().map_err(|_| {
                PyValueError::new_err(format!(
                    "job {i}: target must be a workspace path or a SandboxProcess"
                ))
            })?)
        };
        owned.push((t, argv, stdin));
    }
    let limits = limits_from(limits);
    let env = env.unwrap_or_default();
    let results = py.detach(|| {
        let jobs: Vec<super::Job<'_>> = owned
            .iter()
            .map(|(t, a, s)| {
                let t = match t {
                    T::Fresh(p) => Target::Fresh(p.as_path()),
                    T::Existing(sb) => Target::Existing(&sb.get().inner),
                };
                (t, a.clone(), s.clone())
            })
            .collect();
        super::run_batch(&jobs, &limits, &env, workers)
    });
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.map(to_py).map_err(|e| {
                let e = to_pyerr(e);
                let msg = format!("job {i}: {}", e.value(py));
                if e.is_instance_of::<SandboxUnavailableError>(py) {
                    SandboxUnavailableError::new_err(msg)
                } else if e.is_instance_of::<PyValueError>(py) {
                    PyValueError::new_err(msg)
                } else {
                    PyRuntimeError::new_err(msg)
                }
            })
        })
        .collect()
}

/// Start a sandbox and run `true` in it: the Landlock ABI in force (0 = none), or SandboxUnavailableError.
#[pyfunction]
pub fn sandbox_check_support(py: Python<'_>) -> PyResult<u32> {
    py.detach(super::check_support).map_err(to_pyerr)
}

/// Register the sandbox classes and functions on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SandboxProcess>()?;
    m.add_function(pyo3::wrap_pyfunction!(sandbox_run_batch, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(sandbox_check_support, m)?)?;
    m.add(
        "SandboxUnavailableError",
        m.py().get_type::<SandboxUnavailableError>(),
    )?;
    Ok(())
}
