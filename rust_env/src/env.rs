//! ToolEnv core: per-env state, reset, step, oracle and snapshots, writing into caller-provided buffers.
//!
//! Plain Rust (no Python): `lib.rs` wraps it for PyO3. The dynamics are specified by
//! `dspy_rl/envs/reference.py` and documented in `envs/README.md`; this file must match them bit for bit.

use crate::rng;
use crate::suite::{Suite, NUM_RESULTS};

pub const RESULT_NONE: u8 = 0;
pub const RESULT_SUCCESS: u8 = 1;
pub const RESULT_FAILURE: u8 = 2;
pub const RESULT_EMPTY: u8 = 3;
pub const RESULT_INVALID: u8 = 4;

/// `b"TEV1"`, then little-endian u32 num_tools, num_tasks, episode_len; u64 rng, facts; u32 task, target, t,
/// last_tool; u8 last_result; f64 running return (same layout as the Python reference's struct format).
pub const SNAPSHOT_MAGIC: &[u8; 4] = b"TEV1";
pub const SNAPSHOT_LEN: usize = 4 + 4 * 3 + 8 * 2 + 4 * 4 + 1 + 8;

/// What happens to masked or out-of-range actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidAction {
    /// Reject the whole batch before any env changes.
    Error,
    /// Penalty reward, result "invalid", no state change (the step still counts).
    Penalty,
}

/// State of one env (one episode in progress).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EnvState {
    pub rng: u64,
    pub facts: u64,
    pub task: u32,
    pub target: u32,
    pub t: u32,
    /// 0 = none (episode start or invalid action), else 1 + tool index.
    pub last_tool: u32,
    pub last_result: u8,
    pub ret: f64,
}

/// Mutable views of the output buffers for a contiguous range of envs (row-major, one row per env).
pub struct Outputs<'a> {
    pub obs: &'a mut [f32],
    pub tool_mask: &'a mut [bool],
    pub arg_mask: &'a mut [bool],
    pub phase: &'a mut [u8],
    pub rewards: &'a mut [f32],
    pub terminated: &'a mut [bool],
    pub truncated: &'a mut [bool],
    pub results: &'a mut [u8],
    pub episode_return: &'a mut [f32],
    pub episode_length: &'a mut [i32],
    pub episode_success: &'a mut [bool],
}

impl<'a> Outputs<'a> {
    /// Split into envs `[0, k)` and `[k, len)`.
    pub fn split_at(self, k: usize, layout: &Layout) -> (Outputs<'a>, Outputs<'a>) {
        let (o1, o2) = self.obs.split_at_mut(k * layout.obs_dim);
        let (t1, t2) = self.tool_mask.split_at_mut(k * layout.num_tools);
        let (a1, a2) = self.arg_mask.split_at_mut(k * layout.num_args);
        let (p1, p2) = self.phase.split_at_mut(k);
        let (r1, r2) = self.rewards.split_at_mut(k);
        let (te1, te2) = self.terminated.split_at_mut(k);
        let (tr1, tr2) = self.truncated.split_at_mut(k);
        let (re1, re2) = self.results.split_at_mut(k);
        let (er1, er2) = self.episode_return.split_at_mut(k);
        let (el1, el2) = self.episode_length.split_at_mut(k);
        let (es1, es2) = self.episode_success.split_at_mut(k);
        (
            Outputs {
                obs: o1,
                tool_mask: t1,
                arg_mask: a1,
                phase: p1,
                rewards: r1,
                terminated: te1,
                truncated: tr1,
                results: re1,
                episode_return: er1,
                episode_length: el1,
                episode_success: es1,
            },
            Outputs {
                obs: o2,
                tool_mask: t2,
                arg_mask: a2,
                phase: p2,
                rewards: r2,
                terminated: te2,
                truncated: tr2,
                results: re2,
                episode_return: er2,
                episode_length: el2,
                episode_success: es2,
            },
        )
    }

    /// Number of envs these buffers cover.
    pub fn len(&self) -> usize {
        self.phase.len()
    }

    /// Whether the buffers cover no env.
    pub fn is_empty(&self) -> bool {
        self.phase.is_empty()
    }
}

/// Sizes and observation offsets shared by all envs of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub num_facts: usize,
    pub num_tools: usize,
    pub num_args: usize,
    pub obs_dim: usize,
    pub off_goal: usize,
    pub off_tool: usize,
    pub off_result: usize,
    pub off_target: usize,
    pub off_step: usize,
}

impl Layout {
    pub fn new(suite: &Suite) -> Self {
        let num_facts = suite.facts.len();
        let num_tools = suite.tools.len();
        let num_args = suite.num_args as usize;
        let off_tool = 2 * num_facts;
        let off_result = off_tool + num_tools + 1;
        let off_target = off_result + NUM_RESULTS;
        let off_step = off_target + num_args;
        Layout {
            num_facts,
            num_tools,
            num_args,
            obs_dim: off_step + 1,
            off_goal: num_facts,
            off_tool,
            off_result,
            off_target,
            off_step,
        }
    }
}

/// Immutable per-suite tables used by the hot loop.
#[derive(Debug, Clone)]
pub struct Dynamics {
    pub suite: Suite,
    pub layout: Layout,
    pub episode_len: u32,
    pub invalid_action: InvalidAction,
}

impl Dynamics {
    pub fn new(suite: Suite, episode_len: u32, invalid_action: InvalidAction) -> Self {
        let layout = Layout::new(&suite);
        Dynamics {
            suite,
            layout,
            episode_len,
            invalid_action,
        }
    }

    /// Start a new episode: task then target drawn from the env's stream.
    #[inline]
    pub fn begin_episode(&self, s: &mut EnvState) {
        let num_tasks = self.suite.tasks.len() as u64;
        let task = (rng::next_u64(&mut s.rng) % num_tasks) as u32;
        let k = self.suite.tasks[task as usize].num_candidates as u64;
        s.task = task;
        s.target = (rng::next_u64(&mut s.rng) % k) as u32;
        s.facts = self.suite.tasks[task as usize].start;
        s.t = 0;
        s.last_tool = 0;
        s.last_result = RESULT_NONE;
        s.ret = 0.0;
    }

    /// Whether (tool, arg) is in range and unmasked for this env.
    #[inline]
    pub fn is_valid(&self, s: &EnvState, tool: i64, arg: i64) -> bool {
        let task = &self.suite.tasks[s.task as usize];
        if tool < 0
            || tool as usize >= self.layout.num_tools
            || arg < 0
            || arg >= task.num_candidates as i64
        {
            return false;
        }
        let req = self.suite.tools[tool as usize].requires;
        s.facts & req == req
    }

    /// Message for an invalid action of env `i` (for `InvalidAction::Error`).
    pub fn invalid_message(&self, i: usize, s: &EnvState, tool: i64, arg: i64) -> String {
        let k = self.suite.tasks[s.task as usize].num_candidates;
        let n = self.layout.num_tools;
        if tool < 0 || tool as usize >= n {
            format!("env {i}: tool {tool} is out of range [0, {n})")
        } else if arg < 0 || arg >= k as i64 {
            format!("env {i}: arg {arg} is not a valid candidate (arg_mask allows [0, {k}))")
        } else {
            format!(
                "env {i}: tool {tool} ({}) is masked: its preconditions do not hold (see tool_mask)",
                self.suite.tools[tool as usize].name
            )
        }
    }

    /// Write env `j`'s obs row, masks and phase (index `j` into `out`).
    #[inline]
    pub fn write_view(&self, s: &EnvState, out: &mut Outputs<'_>, j: usize) {
        let l = &self.layout;
        let task = &self.suite.tasks[s.task as usize];
        let row = &mut out.obs[j * l.obs_dim..(j + 1) * l.obs_dim];
        row.fill(0.0);
        let mut bits = s.facts;
        while bits != 0 {
            row[bits.trailing_zeros() as usize] = 1.0;
            bits &= bits - 1;
        }
        let mut bits = task.goal;
        while bits != 0 {
            row[l.off_goal + bits.trailing_zeros() as usize] = 1.0;
            bits &= bits - 1;
        }
        row[l.off_tool + s.last_tool as usize] = 1.0;
        row[l.off_result + s.last_result as usize] = 1.0;
        if s.facts & self.suite.target_fact != 0 {
            row[l.off_target + s.target as usize] = 1.0;
        }
        row[l.off_step] = (s.t as f64 / self.episode_len as f64) as f32;
        let mask = &mut out.tool_mask[j * l.num_tools..(j + 1) * l.num_tools];
        for (m, tool) in mask.iter_mut().zip(&self.suite.tools) {
            *m = s.facts & tool.requires == tool.requires;
        }
        let k = task.num_candidates as usize;
        let amask = &mut out.arg_mask[j * l.num_args..(j + 1) * l.num_args];
        amask[..k].fill(true);
        amask[k..].fill(false);
        out.phase[j] = u8::from(s.t != 0);
    }

    /// Zero the per-step outputs of env `j` (after reset/restore).
    #[inline]
    pub fn clear_outputs(&self, s: &EnvState, out: &mut Outputs<'_>, j: usize) {
        out.rewards[j] = 0.0;
        out.terminated[j] = false;
        out.truncated[j] = false;
        out.results[j] = s.last_result;
        out.episode_return[j] = s.ret as f32;
        out.episode_length[j] = s.t as i32;
        out.episode_success[j] = false;
    }

    /// One step of one env (index `j` into `out`); auto-resets when the episode ends.
    #[inline]
    pub fn step_one(&self, s: &mut EnvState, tool: i64, arg: i64, out: &mut Outputs<'_>, j: usize) {
        let rw = &self.suite.rewards;
        let task = &self.suite.tasks[s.task as usize];
        let (old_facts, old_tool, old_result) = (s.facts, s.last_tool, s.last_result);
        let mut facts = s.facts;
        let mut reward = -rw.step_cost;
        let result;
        if !self.is_valid(s, tool, arg) {
            result = RESULT_INVALID;
            reward += rw.invalid;
            s.last_tool = 0;
        } else {
            let spec = &self.suite.tools[tool as usize];
            s.last_tool = tool as u32 + 1;
            let adds = spec.adds & task.relevant;
            if (spec.takes_arg && arg != s.target as i64) || adds & !facts == 0 {
                result = RESULT_EMPTY;
                reward += rw.empty;
            } else if rng::uniform(&mut s.rng) < spec.success_prob {
                result = RESULT_SUCCESS;
                let new_facts = facts | adds;
                let gained = (new_facts & task.relevant).count_ones() as i64
                    - (facts & task.relevant).count_ones() as i64;
                reward += rw.success;
                reward += rw.shaping * gained as f64 / task.relevant.count_ones() as f64;
                facts = new_facts;
            } else {
                result = RESULT_FAILURE;
                reward += rw.failure;
            }
        }
        s.facts = facts;
        s.t += 1;
        s.last_result = result;
        let terminated = facts & task.goal == task.goal;
        let truncated = !terminated && s.t >= self.episode_len;
        if terminated {
            reward += rw.completion;
        }
        s.ret += reward;

        out.rewards[j] = reward as f32;
        out.terminated[j] = terminated;
        out.truncated[j] = truncated;
        out.results[j] = result;
        out.episode_return[j] = s.ret as f32;
        out.episode_length[j] = s.t as i32;
        out.episode_success[j] = terminated;
        if terminated || truncated {
            self.begin_episode(s);
            self.write_view(s, out, j);
        } else {
            self.update_view(s, old_facts, old_tool, old_result, out, j);
        }
    }

    /// Within an episode, bring env `j`'s view from the previous state to `s` by touching only what changed
    /// (facts only ever grow in an episode; goal bits and the argument mask are fixed). Same result as
    /// `write_view`, which the parity tests check on every step.
    #[inline]
    fn update_view(
        &self,
        s: &EnvState,
        old_facts: u64,
        old_tool: u32,
        old_result: u8,
        out: &mut Outputs<'_>,
        j: usize,
    ) {
        let l = &self.layout;
        let row = &mut out.obs[j * l.obs_dim..(j + 1) * l.obs_dim];
        let gained = s.facts & !old_facts;
        if gained != 0 {
            let mut bits = gained;
            while bits != 0 {
                row[bits.trailing_zeros() as usize] = 1.0;
                bits &= bits - 1;
            }
            if gained & self.suite.target_fact != 0 {
                row[l.off_target + s.target as usize] = 1.0;
            }
            let mask = &mut out.tool_mask[j * l.num_tools..(j + 1) * l.num_tools];
            for (m, tool) in mask.iter_mut().zip(&self.suite.tools) {
                *m = s.facts & tool.requires == tool.requires;
            }
        }
        row[l.off_tool + old_tool as usize] = 0.0;
        row[l.off_tool + s.last_tool as usize] = 1.0;
        row[l.off_result + old_result as usize] = 0.0;
        row[l.off_result + s.last_result as usize] = 1.0;
        row[l.off_step] = (s.t as f64 / self.episode_len as f64) as f32;
        out.phase[j] = 1;
    }

    /// Step a contiguous range of envs serially.
    pub fn step_range(
        &self,
        states: &mut [EnvState],
        tools: &[i64],
        args: &[i64],
        out: &mut Outputs<'_>,
    ) {
        for (j, s) in states.iter_mut().enumerate() {
            self.step_one(s, tools[j], args[j], out, j);
        }
    }

    /// Index of the first env whose action is invalid, if any.
    pub fn first_invalid(&self, states: &[EnvState], tools: &[i64], args: &[i64]) -> Option<usize> {
        (0..states.len()).find(|&i| !self.is_valid(&states[i], tools[i], args[i]))
    }

    /// Reseed (when `seed` is given) and start a new episode in every env of the range `first..`.
    pub fn reset_range(
        &self,
        states: &mut [EnvState],
        first: usize,
        seed: Option<u64>,
        out: &mut Outputs<'_>,
    ) {
        for (j, s) in states.iter_mut().enumerate() {
            if let Some(seed) = seed {
                s.rng = rng::seed_stream(seed, (first + j) as u64);
            }
            self.begin_episode(s);
            self.write_view(s, out, j);
            self.clear_outputs(s, out, j);
        }
    }

    /// The scripted oracle's action: the first plan tool whose relevant effects are not all held yet, with the
    /// target as argument (0 for tools without an argument).
    #[inline]
    pub fn oracle(&self, s: &EnvState) -> (i64, i64) {
        let task = &self.suite.tasks[s.task as usize];
        for &t in &task.plan {
            let spec = &self.suite.tools[t as usize];
            if spec.adds & task.relevant & !s.facts != 0 {
                return (t as i64, if spec.takes_arg { s.target as i64 } else { 0 });
            }
        }
        (0, 0)
    }

    /// Serialize one env's state.
    pub fn snapshot(&self, s: &EnvState) -> Vec<u8> {
        let mut b = Vec::with_capacity(SNAPSHOT_LEN);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.extend_from_slice(&(self.layout.num_tools as u32).to_le_bytes());
        b.extend_from_slice(&(self.suite.tasks.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.episode_len.to_le_bytes());
        b.extend_from_slice(&s.rng.to_le_bytes());
        b.extend_from_slice(&s.facts.to_le_bytes());
        b.extend_from_slice(&s.task.to_le_bytes());
        b.extend_from_slice(&s.target.to_le_bytes());
        b.extend_from_slice(&s.t.to_le_bytes());
        b.extend_from_slice(&s.last_tool.to_le_bytes());
        b.push(s.last_result);
        b.extend_from_slice(&s.ret.to_le_bytes());
        b
    }

    /// Parse and validate a snapshot for this env configuration.
    pub fn parse_snapshot(&self, b: &[u8]) -> Result<EnvState, String> {
        if b.len() != SNAPSHOT_LEN {
            return Err(format!(
                "state must be {SNAPSHOT_LEN} bytes from snapshot(), got {}",
                b.len()
            ));
        }
        if &b[0..4] != SNAPSHOT_MAGIC {
            return Err("state is not a ToolEnv snapshot (bad magic)".into());
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let (n_tools, n_tasks, ep_len) = (u32_at(4), u32_at(8), u32_at(12));
        let my = (
            self.layout.num_tools as u32,
            self.suite.tasks.len() as u32,
            self.episode_len,
        );
        if (n_tools, n_tasks, ep_len) != my {
            return Err(format!(
                "snapshot is from another env configuration (tools={n_tools}, tasks={n_tasks}, episode_len={ep_len}); \
                 this env has tools={}, tasks={}, episode_len={}",
                my.0, my.1, my.2
            ));
        }
        let s = EnvState {
            rng: u64_at(16),
            facts: u64_at(24),
            task: u32_at(32),
            target: u32_at(36),
            t: u32_at(40),
            last_tool: u32_at(44),
            last_result: b[48],
            ret: f64::from_le_bytes(b[49..57].try_into().expect("8 bytes")),
        };
        let nf = self.layout.num_facts;
        let consistent = s.task < n_tasks
            && s.target < self.suite.tasks[s.task as usize].num_candidates
            && s.t < ep_len
            && s.last_tool <= n_tools
            && (s.last_result as usize) < NUM_RESULTS
            && (nf >= 64 || s.facts >> nf == 0)
            && s.facts & self.suite.tasks[s.task as usize].goal
                != self.suite.tasks[s.task as usize].goal
            && s.ret.abs() <= f64::from(f32::MAX); // also rejects NaN
        if !consistent {
            return Err("snapshot holds an inconsistent state (corrupted bytes?)".into());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::tests::unit_suite;

    /// Owned buffers for `n` envs, for tests.
    struct Buffers {
        obs: Vec<f32>,
        tool_mask: Vec<bool>,
        arg_mask: Vec<bool>,
        phase: Vec<u8>,
        rewards: Vec<f32>,
        terminated: Vec<bool>,
        truncated: Vec<bool>,
        results: Vec<u8>,
        episode_return: Vec<f32>,
        episode_length: Vec<i32>,
        episode_success: Vec<bool>,
    }

    impl Buffers {
        fn new(n: usize, l: &Layout) -> Self {
            Buffers {
                obs: vec![0.0; n * l.obs_dim],
                tool_mask: vec![false; n * l.num_tools],
                arg_mask: vec![false; n * l.num_args],
                phase: vec![0; n],
                rewards: vec![0.0; n],
                terminated: vec![false; n],
                truncated: vec![false; n],
                results: vec![0; n],
                episode_return: vec![0.0; n],
                episode_length: vec![0; n],
                episode_success: vec![false; n],
            }
        }
        fn out(&mut self) -> Outputs<'_> {
            Outputs {
                obs: &mut self.obs,
                tool_mask: &mut self.tool_mask,
                arg_mask: &mut self.arg_mask,
                phase: &mut self.phase,
                rewards: &mut self.rewards,
                terminated: &mut self.terminated,
                truncated: &mut self.truncated,
                results: &mut self.results,
                episode_return: &mut self.episode_return,
                episode_length: &mut self.episode_length,
                episode_success: &mut self.episode_success,
            }
        }
    }

    fn dyn_unit() -> Dynamics {
        Dynamics::new(unit_suite(12), 12, InvalidAction::Penalty)
    }

    /// Random valid actions from the masks, drawn from a test-only stream.
    fn random_actions(d: &Dynamics, b: &Buffers, r: &mut u64) -> (Vec<i64>, Vec<i64>) {
        let l = d.layout;
        let n = b.phase.len();
        let mut tools = vec![0; n];
        let mut args = vec![0; n];
        for i in 0..n {
            let valid: Vec<usize> = (0..l.num_tools)
                .filter(|&t| b.tool_mask[i * l.num_tools + t])
                .collect();
            tools[i] = valid[(rng::next_u64(r) % valid.len() as u64) as usize] as i64;
            let k = (0..l.num_args)
                .filter(|&a| b.arg_mask[i * l.num_args + a])
                .count();
            args[i] = (rng::next_u64(r) % k as u64) as i64;
        }
        (tools, args)
    }

    /// A trajectory fingerprint: rewards, results and dones of `steps` random-policy steps.
    fn trajectory(seed: u64, n: usize, steps: usize) -> Vec<(u32, u8, bool, bool)> {
        let d = dyn_unit();
        let mut b = Buffers::new(n, &d.layout);
        let mut states = vec![EnvState::default(); n];
        d.reset_range(&mut states, 0, Some(seed), &mut b.out());
        let mut r = 99u64;
        let mut trace = Vec::new();
        for _ in 0..steps {
            let (t, a) = random_actions(&d, &b, &mut r);
            d.step_range(&mut states, &t, &a, &mut b.out());
            for i in 0..n {
                trace.push((
                    b.rewards[i].to_bits(),
                    b.results[i],
                    b.terminated[i],
                    b.truncated[i],
                ));
            }
        }
        trace
    }

    #[test]
    fn same_seed_same_trajectory_different_seed_different() {
        assert_eq!(trajectory(3, 8, 200), trajectory(3, 8, 200));
        assert_ne!(trajectory(3, 8, 200), trajectory(4, 8, 200));
    }

    #[test]
    fn masks_follow_preconditions() {
        let d = dyn_unit();
        let mut b = Buffers::new(1, &d.layout);
        let mut s = [EnvState::default()];
        d.reset_range(&mut s, 0, Some(0), &mut b.out());
        let task = &d.suite.tasks[s[0].task as usize];
        for (t, tool) in d.suite.tools.iter().enumerate() {
            assert_eq!(b.tool_mask[t], task.start & tool.requires == tool.requires);
        }
        let k = task.num_candidates as usize;
        assert!(b.arg_mask[..k].iter().all(|&m| m) && b.arg_mask[k..].iter().all(|&m| !m));
        assert_eq!(b.phase[0], 0);
        // Penalty mode: a masked tool changes nothing but the step count.
        let before = s[0];
        let masked = (0..d.layout.num_tools).find(|&t| !b.tool_mask[t]).unwrap() as i64;
        d.step_range(&mut s, &[masked], &[0], &mut b.out());
        assert_eq!(b.results[0], RESULT_INVALID);
        assert_eq!(s[0].facts, before.facts);
        assert_eq!(s[0].rng, before.rng);
        assert_eq!(b.rewards[0], (-0.05f64 - 1.0) as f32);
        assert_eq!(b.phase[0], 1);
    }

    #[test]
    fn oracle_always_succeeds_without_flaky_failures_and_retries_otherwise() {
        let d = dyn_unit();
        let n = 64;
        let mut b = Buffers::new(n, &d.layout);
        let mut states = vec![EnvState::default(); n];
        d.reset_range(&mut states, 0, Some(1), &mut b.out());
        let (mut done, mut success) = (0, 0);
        for _ in 0..200 {
            let acts: Vec<(i64, i64)> = states.iter().map(|s| d.oracle(s)).collect();
            let t: Vec<i64> = acts.iter().map(|a| a.0).collect();
            let a: Vec<i64> = acts.iter().map(|a| a.1).collect();
            assert_eq!(d.first_invalid(&states, &t, &a), None);
            d.step_range(&mut states, &t, &a, &mut b.out());
            for i in 0..n {
                assert_ne!(b.results[i], RESULT_EMPTY, "the oracle never wastes a call");
                if b.terminated[i] || b.truncated[i] {
                    done += 1;
                    success += usize::from(b.episode_success[i]);
                }
            }
        }
        assert!(done > 500);
        assert!(success as f64 / done as f64 > 0.95, "{success}/{done}");
    }

    #[test]
    fn snapshot_restore_replays_exactly() {
        let d = dyn_unit();
        let mut b = Buffers::new(1, &d.layout);
        let mut s = [EnvState::default()];
        d.reset_range(&mut s, 0, Some(5), &mut b.out());
        let mut r = 7u64;
        for _ in 0..3 {
            let (t, a) = random_actions(&d, &b, &mut r);
            d.step_range(&mut s, &t, &a, &mut b.out());
        }
        let snap = d.snapshot(&s[0]);
        assert_eq!(snap.len(), SNAPSHOT_LEN);
        let replay = |b: &mut Buffers, s: &mut [EnvState; 1]| {
            let mut r = 11u64;
            let mut trace = Vec::new();
            for _ in 0..40 {
                let (t, a) = random_actions(&d, b, &mut r);
                d.step_range(s, &t, &a, &mut b.out());
                trace.push((b.rewards[0].to_bits(), b.results[0], b.obs.clone()));
            }
            trace
        };
        let first = replay(&mut b, &mut s);
        for _ in 0..3 {
            s[0] = d.parse_snapshot(&snap).unwrap();
            d.write_view(&s[0], &mut b.out(), 0);
            assert_eq!(d.snapshot(&s[0]), snap);
            assert!(
                replay(&mut b, &mut s) == first,
                "replay after restore diverged"
            );
        }
        assert!(d.parse_snapshot(&snap[..10]).is_err());
        let mut bad = snap.clone();
        bad[32] = 200; // task index out of range
        assert!(d.parse_snapshot(&bad).is_err());
    }

    #[test]
    fn wrong_argument_is_empty_and_changes_nothing() {
        let d = dyn_unit();
        let mut b = Buffers::new(1, &d.layout);
        let mut s = [EnvState::default()];
        d.reset_range(&mut s, 0, Some(0), &mut b.out());
        // Force the "read" task with target 2, facts located.
        s[0].task = 0;
        s[0].target = 2;
        s[0].facts = 0b000111;
        d.step_range(&mut s, &[3], &[1], &mut b.out());
        assert_eq!(b.results[0], RESULT_EMPTY);
        assert_eq!(s[0].facts, 0b000111);
        d.step_range(&mut s, &[3], &[2], &mut b.out());
        assert_eq!(b.results[0], RESULT_SUCCESS);
        assert!(b.terminated[0] && b.episode_success[0]);
        // +1 success, shaping 2 * 1/4, completion 10, step cost.
        assert_eq!(
            b.rewards[0],
            (-0.05f64 + 1.0 + 2.0 * 1.0 / 4.0 + 10.0) as f32
        );
    }
}
