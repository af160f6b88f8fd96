//! `dspy_rl._rust_env`: the Rust backend of ToolEnv (see ENV_CONTRACT.md and envs/README.md).
//!
//! Core logic lives in plain Rust modules (`rng`, `suite`, `env`); this file is the PyO3 layer: argument
//! validation, numpy buffers allocated once and written in place, GIL release and rayon parallelism.

pub mod env;
pub mod rng;
pub mod sandbox;
pub mod suite;

use env::{Dynamics, EnvState, InvalidAction, Outputs};
use numpy::PyArrayDescrMethods;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Batches at least this large are stepped in parallel (when the env has more than one thread).
const PAR_THRESHOLD: usize = 1024;
/// Smallest number of envs one rayon task steps.
const MIN_CHUNK: usize = 256;

fn suites_dir_from_package(py: Python<'_>) -> PyResult<PathBuf> {
    let dir = py.import("dspy_rl")?.call_method0("envs_dir")?;
    Ok(PathBuf::from(dir.str()?.to_string()).join("suites"))
}

fn available_suites(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Resolve a suite name (in `suites_dir`) or a path to a suite file. `suite` is a `str` (a name, or a path when
/// it ends in `.json` or contains a path separator) or an `os.PathLike` (always a path).
fn resolve_suite(
    py: Python<'_>,
    suite: &Bound<'_, PyAny>,
    suites_dir: Option<PathBuf>,
) -> PyResult<PathBuf> {
    let is_str = suite.is_instance_of::<pyo3::types::PyString>();
    let suite: PathBuf = suite.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "suite must be a suite name or a path (str or os.PathLike), got {}",
            suite
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let suite = suite.to_string_lossy().into_owned();
    if !is_str || suite.ends_with(".json") || suite.contains('/') || suite.contains('\\') {
        let p = PathBuf::from(&suite);
        if !p.is_file() {
            return Err(PyValueError::new_err(format!(
                "suite file {suite} does not exist"
            )));
        }
        return Ok(p);
    }
    let dir = match suites_dir {
        Some(d) => d,
        None => suites_dir_from_package(py)?,
    };
    let p = dir.join(format!("{suite}.json"));
    if !p.is_file() {
        let names = available_suites(&dir);
        return Err(PyValueError::new_err(format!(
            "unknown suite {suite:?}; available suites: {} (or pass a path to a suite .json file)",
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    Ok(p)
}

fn parse_seed(seed: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let Some(seed) = seed else { return Ok(0) };
    if seed.is_instance_of::<PyBool>() {
        return Err(PyValueError::new_err(format!(
            "seed must be an integer in [0, 2**64), got {seed}"
        )));
    }
    seed.extract::<u64>().map_err(|_| {
        PyValueError::new_err(format!("seed must be an integer in [0, 2**64), got {seed}"))
    })
}

/// Copy an int32/int64 numpy array of shape (n,) into `buf`.
fn read_actions(values: &Bound<'_, PyAny>, n: usize, name: &str, buf: &mut [i64]) -> PyResult<()> {
    let Ok(arr) = values.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a numpy array of int32 or int64 with shape ({n},), got {}",
            values.get_type().name()?
        )));
    };
    if let Ok(a) = arr.cast::<PyArray1<i64>>() {
        check_shape(arr, n, name)?;
        let ro = a
            .try_readonly()
            .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        for (b, v) in buf.iter_mut().zip(ro.as_array().iter()) {
            *b = *v;
        }
        return Ok(());
    }
    if let Ok(a) = arr.cast::<PyArray1<i32>>() {
        check_shape(arr, n, name)?;
        let ro = a
            .try_readonly()
            .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        for (b, v) in buf.iter_mut().zip(ro.as_array().iter()) {
            *b = i64::from(*v);
        }
        return Ok(());
    }
    if arr.ndim() != 1 {
        check_shape(arr, n, name)?;
    }
    Err(PyTypeError::new_err(format!(
        "{name} must have dtype int32 or int64, got {}",
        arr.dtype()
    )))
}

/// A shape as Python prints it: `(5,)`, `(4, 1)`.
fn py_shape(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn check_shape(arr: &Bound<'_, PyUntypedArray>, n: usize, name: &str) -> PyResult<()> {
    if arr.shape() != [n] {
        return Err(PyValueError::new_err(format!(
            "{name} must have shape ({n},), got {}",
            py_shape(arr.shape())
        )));
    }
    Ok(())
}

/// Step every env, in parallel chunks on `pool` when given and the batch is large enough.
fn step_all(
    d: &Dynamics,
    states: &mut [EnvState],
    tools: &[i64],
    args: &[i64],
    out: Outputs<'_>,
    pool: Option<&rayon::ThreadPool>,
) {
    let n = states.len();
    match pool {
        Some(pool) if n >= PAR_THRESHOLD => {
            let threads = pool.current_num_threads().max(1);
            let chunk = n.div_ceil(threads * 4).max(MIN_CHUNK);
            let mut parts = Vec::with_capacity(n.div_ceil(chunk));
            let (mut st, mut tl, mut ar, mut rest) = (states, tools, args, out);
            while !st.is_empty() {
                let k = chunk.min(st.len());
                let (s1, s2) = st.split_at_mut(k);
                let (t1, t2) = tl.split_at(k);
                let (a1, a2) = ar.split_at(k);
                let (o1, o2) = rest.split_at(k, &d.layout);
                parts.push((s1, t1, a1, o1));
                (st, tl, ar, rest) = (s2, t2, a2, o2);
            }
            pool.install(|| {
                parts
                    .into_par_iter()
                    .for_each(|(s, t, a, mut o)| d.step_range(s, t, a, &mut o));
            });
        }
        _ => {
            let mut out = out;
            d.step_range(states, tools, args, &mut out);
        }
    }
}

/// Batched ToolEnv (Rust backend). See ENV_CONTRACT.md for the API and envs/README.md for the dynamics.
#[pyclass(module = "dspy_rl._rust_env")]
struct VecToolEnv {
    dynamics: Dynamics,
    states: Vec<EnvState>,
    tools_buf: Vec<i64>,
    args_buf: Vec<i64>,
    pool: Option<rayon::ThreadPool>,
    #[pyo3(get)]
    obs: Py<PyArray2<f32>>,
    #[pyo3(get)]
    tool_mask: Py<PyArray2<bool>>,
    #[pyo3(get)]
    arg_mask: Py<PyArray2<bool>>,
    #[pyo3(get)]
    phase: Py<PyArray1<u8>>,
    #[pyo3(get)]
    rewards: Py<PyArray1<f32>>,
    #[pyo3(get)]
    terminated: Py<PyArray1<bool>>,
    #[pyo3(get)]
    truncated: Py<PyArray1<bool>>,
    #[pyo3(get)]
    results: Py<PyArray1<u8>>,
    #[pyo3(get)]
    episode_return: Py<PyArray1<f32>>,
    #[pyo3(get)]
    episode_length: Py<PyArray1<i32>>,
    #[pyo3(get)]
    episode_success: Py<PyArray1<bool>>,
    #[pyo3(get)]
    num_envs: usize,
    #[pyo3(get)]
    obs_dim: usize,
    #[pyo3(get)]
    num_tools: usize,
    #[pyo3(get)]
    num_args: usize,
    #[pyo3(get)]
    episode_len: u32,
    #[pyo3(get)]
    tool_names: Vec<String>,
    #[pyo3(get)]
    suite_name: String,
    #[pyo3(get)]
    num_tasks: usize,
    #[pyo3(get)]
    invalid_action: String,
    #[pyo3(get)]
    num_threads: usize,
}

/// View every output buffer as a mutable slice for the duration of `body` (the GIL may be released inside).
///
/// SAFETY (of the `unsafe` block): the arrays are allocated by this object in `new`, C-contiguous, and never
/// reallocated (numpy refuses to resize an array that is referenced elsewhere, and this object holds a
/// reference). `&mut self` guarantees no other Rust view of them is alive; no other Rust code borrows them.
/// Python code can only race on their *values* while `step` releases the GIL, as with any numpy buffer handed
/// to a GIL-releasing extension. This skips rust-numpy's dynamic borrow tracking, which costs more than a
/// whole small-batch step.
macro_rules! with_outputs {
    ($self:ident, $py:ident, |$out:ident| $body:expr) => {{
        let sl = |e: numpy::AsSliceError| {
            PyValueError::new_err(format!("output buffer is not contiguous: {e}"))
        };
        let (obs, tool_mask, arg_mask) = (
            $self.obs.bind($py),
            $self.tool_mask.bind($py),
            $self.arg_mask.bind($py),
        );
        let (phase, rewards, terminated, truncated) = (
            $self.phase.bind($py),
            $self.rewards.bind($py),
            $self.terminated.bind($py),
            $self.truncated.bind($py),
        );
        let (results, episode_return, episode_length, episode_success) = (
            $self.results.bind($py),
            $self.episode_return.bind($py),
            $self.episode_length.bind($py),
            $self.episode_success.bind($py),
        );
        // Python can resize (refcheck=False), reshape or retype the arrays in place; slicing them as this object
        // created them would then index out of bounds. Check shape, dtype and layout first: a ValueError, not a
        // panic.
        let n = $self.num_envs;
        check_output(obs, "obs", &[n, $self.obs_dim])?;
        check_output(tool_mask, "tool_mask", &[n, $self.num_tools])?;
        check_output(arg_mask, "arg_mask", &[n, $self.num_args])?;
        check_output(phase, "phase", &[n])?;
        check_output(rewards, "rewards", &[n])?;
        check_output(terminated, "terminated", &[n])?;
        check_output(truncated, "truncated", &[n])?;
        check_output(results, "results", &[n])?;
        check_output(episode_return, "episode_return", &[n])?;
        check_output(episode_length, "episode_length", &[n])?;
        check_output(episode_success, "episode_success", &[n])?;
        let $out = unsafe {
            Outputs {
                obs: obs.as_slice_mut().map_err(sl)?,
                tool_mask: tool_mask.as_slice_mut().map_err(sl)?,
                arg_mask: arg_mask.as_slice_mut().map_err(sl)?,
                phase: phase.as_slice_mut().map_err(sl)?,
                rewards: rewards.as_slice_mut().map_err(sl)?,
                terminated: terminated.as_slice_mut().map_err(sl)?,
                truncated: truncated.as_slice_mut().map_err(sl)?,
                results: results.as_slice_mut().map_err(sl)?,
                episode_return: episode_return.as_slice_mut().map_err(sl)?,
                episode_length: episode_length.as_slice_mut().map_err(sl)?,
                episode_success: episode_success.as_slice_mut().map_err(sl)?,
            }
        };
        $body
    }};
}

/// ValueError unless the output array `name` still has the shape, dtype and C layout this object gave it.
fn check_output<T: numpy::Element, D: numpy::ndarray::Dimension>(
    arr: &Bound<'_, numpy::PyArray<T, D>>,
    name: &str,
    shape: &[usize],
) -> PyResult<()> {
    let py = arr.py();
    let want = numpy::dtype::<T>(py);
    let dtype = arr.dtype();
    if arr.shape() != shape || !dtype.is_equiv_to(&want) || !arr.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "the env's output array `{name}` was changed in place (now shape {:?}, dtype {dtype}{}; it must stay \
             shape {shape:?}, dtype {want}): the env writes into its own arrays, so copy them \
             (np.array(env.{name})) instead of resizing, reshaping or retyping them",
            arr.shape(),
            if arr.is_c_contiguous() { "" } else { ", not C-contiguous" },
        )));
    }
    Ok(())
}

/// Most envs one VecToolEnv holds (the Python config and reference backend use the same bound).
pub const MAX_NUM_ENVS: i64 = 1 << 20;
/// Most threads one VecToolEnv starts.
pub const MAX_THREADS: i64 = 1024;

/// Bytes of memory the kernel reports as available (`MemAvailable`), if it says.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A Vec of `n` copies of `value`, or a MemoryError naming the size, never an abort.
fn try_vec<T: Clone>(n: usize, value: T, what: &str) -> PyResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        PyMemoryError::new_err(format!(
            "cannot allocate {what} for {n} envs ({} bytes)",
            n.saturating_mul(std::mem::size_of::<T>())
        ))
    })?;
    v.resize(n, value);
    Ok(v)
}

impl VecToolEnv {
    fn check_index(&self, i: i64) -> PyResult<usize> {
        if i < 0 || i as usize >= self.num_envs {
            return Err(PyIndexError::new_err(format!(
                "env index must be an integer in [0, {}), got {i}",
                self.num_envs
            )));
        }
        Ok(i as usize)
    }
}

#[pymethods]
impl VecToolEnv {
    #[new]
    #[pyo3(signature = (num_envs, suite=None, seed=None, num_threads=0, invalid_action="error", episode_len=None, suites_dir=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        num_envs: i64,
        suite: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        num_threads: i64,
        invalid_action: &str,
        episode_len: Option<i64>,
        suites_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        if !(1..=MAX_NUM_ENVS).contains(&num_envs) {
            return Err(PyValueError::new_err(format!(
                "num_envs must be an integer in [1, {MAX_NUM_ENVS}], got {num_envs}"
            )));
        }
        if !(0..=MAX_THREADS).contains(&num_threads) {
            return Err(PyValueError::new_err(format!(
                "num_threads must be an integer in [0, {MAX_THREADS}] (0 = all cores), got {num_threads}"
            )));
        }
        let mode = match invalid_action {
            "error" => InvalidAction::Error,
            "penalty" => InvalidAction::Penalty,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid_action must be one of ('error', 'penalty'), got {other:?}"
                )))
            }
        };
        let seed = parse_seed(seed)?;
        let default_suite = pyo3::types::PyString::new(py, "default");
        let path = resolve_suite(py, suite.unwrap_or(default_suite.as_any()), suites_dir)?;
        let compiled = suite::load_suite(&path).map_err(|e| PyValueError::new_err(e.0))?;
        let episode_len = match episode_len {
            None => compiled.episode_len,
            Some(l) if (1..=i64::from(suite::MAX_EPISODE_LEN)).contains(&l) => l as u32,
            Some(l) => {
                return Err(PyValueError::new_err(format!(
                    "episode_len must be an integer in [1, {}] or None, got {l}",
                    suite::MAX_EPISODE_LEN
                )))
            }
        };
        let threads = if num_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            num_threads as usize
        };
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("toolenv-{i}"))
                    .build()
                    .map_err(|e| {
                        PyValueError::new_err(format!("cannot start {threads} threads: {e}"))
                    })?,
            )
        } else {
            None
        };
        let n = num_envs as usize;
        let dynamics = Dynamics::new(compiled, episode_len, mode);
        let l = dynamics.layout;
        // State, action buffers and output arrays: refuse what the machine cannot hold before allocating it.
        let per_env = std::mem::size_of::<EnvState>()
            + 2 * std::mem::size_of::<i64>()
            + 4 * l.obs_dim
            + l.num_tools
            + l.num_args
            + 4 * 3
            + 5;
        let need = (n as u64).saturating_mul(per_env as u64);
        if let Some(avail) = available_memory() {
            if need > avail {
                return Err(PyMemoryError::new_err(format!(
                    "num_envs={n} needs {need} bytes ({:.1} GiB) for its state and output arrays, but only {avail} \
                     bytes ({:.1} GiB) are available; use fewer envs",
                    need as f64 / (1u64 << 30) as f64,
                    avail as f64 / (1u64 << 30) as f64
                )));
            }
        }
        let states = try_vec(n, EnvState::default(), "env states")?;
        let tools_buf = try_vec(n, 0i64, "action buffers")?;
        let args_buf = try_vec(n, 0i64, "action buffers")?;
        let tool_names = dynamics
            .suite
            .tools
            .iter()
            .map(|t| t.name.clone())
            .collect();
        let suite_name = dynamics.suite.name.clone();
        let num_tasks = dynamics.suite.tasks.len();
        let mut env = VecToolEnv {
            states,
            tools_buf,
            args_buf,
            pool,
            obs: PyArray2::zeros(py, [n, l.obs_dim], false).unbind(),
            tool_mask: PyArray2::zeros(py, [n, l.num_tools], false).unbind(),
            arg_mask: PyArray2::zeros(py, [n, l.num_args], false).unbind(),
            phase: PyArray1::zeros(py, n, false).unbind(),
            rewards: PyArray1::zeros(py, n, false).unbind(),
            terminated: PyArray1::zeros(py, n, false).unbind(),
            truncated: PyArray1::zeros(py, n, false).unbind(),
            results: PyArray1::zeros(py, n, false).unbind(),
            episode_return: PyArray1::zeros(py, n, false).unbind(),
            episode_length: PyArray1::zeros(py, n, false).unbind(),
            episode_success: PyArray1::zeros(py, n, false).unbind(),
            num_envs: n,
            obs_dim: l.obs_dim,
            num_tools: l.num_tools,
            num_args: l.num_args,
            episode_len,
            tool_names,
            suite_name,
            num_tasks,
            invalid_action: invalid_action.to_string(),
            num_threads: threads,
            dynamics,
        };
        env.reset_impl(py, Some(seed))?;
        Ok(env)
    }

    /// Start a new episode in every env; with `seed`, first reseed every env's stream from it.
    #[pyo3(signature = (seed=None))]
    fn reset(&mut self, py: Python<'_>, seed: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let seed = match seed {
            None => None,
            Some(s) if s.is_none() => None,
            Some(s) => Some(parse_seed(Some(s))?),
        };
        self.reset_impl(py, seed)
    }

    /// Apply one (tool, argument) per env: int32/int64 arrays of shape (num_envs,). Writes every buffer in place.
    fn step(
        &mut self,
        py: Python<'_>,
        tools: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let n = self.num_envs;
        read_actions(tools, n, "tools", &mut self.tools_buf)?;
        read_actions(args, n, "args", &mut self.args_buf)?;
        let d = &self.dynamics;
        if d.invalid_action == InvalidAction::Error {
            if let Some(i) = d.first_invalid(&self.states, &self.tools_buf, &self.args_buf) {
                return Err(PyValueError::new_err(d.invalid_message(
                    i,
                    &self.states[i],
                    self.tools_buf[i],
                    self.args_buf[i],
                )));
            }
        }
        let states = &mut self.states;
        let (tb, ab) = (&self.tools_buf, &self.args_buf);
        let pool = self.pool.as_ref();
        with_outputs!(self, py, |out| {
            py.detach(|| step_all(d, states, tb, ab, out, pool));
        });
        Ok(())
    }

    /// Full state of env `i` (RNG included) as bytes.
    fn snapshot<'py>(&self, py: Python<'py>, i: i64) -> PyResult<Bound<'py, PyBytes>> {
        let i = self.check_index(i)?;
        Ok(PyBytes::new(py, &self.dynamics.snapshot(&self.states[i])))
    }

    /// Make env `i` continue exactly as after `snapshot`; refreshes its obs, masks and outputs.
    fn restore(&mut self, py: Python<'_>, i: i64, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.check_index(i)?;
        let bytes: Vec<u8> = if let Ok(b) = state.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else if let Ok(b) = state.cast::<PyByteArray>() {
            b.to_vec()
        } else {
            return Err(PyTypeError::new_err(format!(
                "state must be bytes from snapshot(), got {}",
                state.get_type().name()?
            )));
        };
        let s = self
            .dynamics
            .parse_snapshot(&bytes)
            .map_err(PyValueError::new_err)?;
        self.states[i] = s;
        let d = &self.dynamics;
        with_outputs!(self, py, |out| {
            let (_, rest) = out.split_at(i, &d.layout);
            let (mut one, _) = rest.split_at(1, &d.layout);
            d.write_view(&s, &mut one, 0);
            d.clear_outputs(&s, &mut one, 0);
        });
        Ok(())
    }

    /// The scripted oracle's (tools, args) for the current states (int64 arrays).
    fn oracle_actions<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>) {
        let (tools, args): (Vec<i64>, Vec<i64>) =
            self.states.iter().map(|s| self.dynamics.oracle(s)).unzip();
        (PyArray1::from_vec(py, tools), PyArray1::from_vec(py, args))
    }

    fn __repr__(&self) -> String {
        format!(
            "VecToolEnv(num_envs={}, suite={:?}, episode_len={}, num_threads={}, invalid_action={:?}, backend='rust')",
            self.num_envs, self.suite_name, self.episode_len, self.num_threads, self.invalid_action
        )
    }
}

impl VecToolEnv {
    fn reset_impl(&mut self, py: Python<'_>, seed: Option<u64>) -> PyResult<()> {
        let d = &self.dynamics;
        let states = &mut self.states;
        with_outputs!(self, py, |out| {
            let mut out = out;
            d.reset_range(states, 0, seed, &mut out);
        });
        Ok(())
    }
}

/// Rust backend of ToolEnv.
#[pymodule]
fn _rust_env(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<VecToolEnv>()?;
    m.add("SNAPSHOT_LEN", env::SNAPSHOT_LEN)?;
    m.add("PAR_THRESHOLD", PAR_THRESHOLD)?;
    sandbox::py::register(m)?;
    Ok(())
}
