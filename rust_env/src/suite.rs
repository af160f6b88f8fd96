//! Tool catalog and task suites: loading, validation and compilation to bit masks.
//!
//! Twin of `dspy_rl/envs/suite.py`; both compile a suite into the same tables (fact masks, per-task relevant
//! facts, oracle plans). Every error names the file and the field (`tasks[2].goal[0]`).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

pub const MAX_FACTS: usize = 64;
pub const MAX_ARGS: u32 = 64;
pub const MAX_TOOLS: usize = 64;
pub const MAX_TASKS: usize = 65_536;
pub const MAX_EPISODE_LEN: u32 = 100_000;
/// The oracle planner gives up (the suite is rejected) after visiting this many fact sets.
pub const MAX_PLAN_STATES: usize = 200_000;

/// Why no plan was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    Unreachable,
    TooLarge,
}

/// A suite or catalog file is missing, unreadable or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteError(pub String);

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SuiteError {}

fn err<T>(file: &str, msg: impl fmt::Display) -> Result<T, SuiteError> {
    Err(SuiteError(format!("{file}: {msg}")))
}

#[derive(Deserialize)]
struct RewardsDoc {
    success: f64,
    failure: f64,
    empty: f64,
    invalid: f64,
    step_cost: f64,
    shaping: f64,
    completion: f64,
}

#[derive(Deserialize)]
struct TaskDoc {
    name: String,
    start: Vec<String>,
    goal: Vec<String>,
    num_candidates: u32,
}

#[derive(Deserialize)]
struct SuiteDoc {
    name: String,
    catalog: String,
    episode_len: u32,
    num_args: u32,
    rewards: RewardsDoc,
    success_prob: BTreeMap<String, f64>,
    tasks: Vec<TaskDoc>,
}

#[derive(Deserialize)]
struct ToolDoc {
    name: String,
    takes_arg: bool,
    requires: Vec<String>,
    adds: Vec<String>,
    success_prob: f64,
}

#[derive(Deserialize)]
struct CatalogDoc {
    facts: Vec<String>,
    target_fact: String,
    tools: Vec<ToolDoc>,
}

/// One compiled tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub takes_arg: bool,
    pub requires: u64,
    pub adds: u64,
    pub success_prob: f64,
}

/// One compiled task. `relevant`: goal facts plus, transitively, the preconditions of every tool adding a relevant
/// fact (tools only ever add relevant facts). `plan`: the oracle's shortest tool sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub name: String,
    pub start: u64,
    pub goal: u64,
    pub relevant: u64,
    pub num_candidates: u32,
    pub plan: Vec<u16>,
}

/// Reward numbers of a suite (see envs/README.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rewards {
    pub success: f64,
    pub failure: f64,
    pub empty: f64,
    pub invalid: f64,
    pub step_cost: f64,
    pub shaping: f64,
    pub completion: f64,
}

/// A compiled task suite with its catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub path: PathBuf,
    pub facts: Vec<String>,
    pub target_fact: u64,
    pub tools: Vec<Tool>,
    pub tasks: Vec<Task>,
    pub episode_len: u32,
    pub num_args: u32,
    pub rewards: Rewards,
}

/// Number of distinct step results (none, success, failure, empty, invalid).
pub const NUM_RESULTS: usize = 5;

impl Suite {
    /// facts + goal + last tool one-hot (with "none") + last result one-hot + revealed target + step fraction.
    pub fn obs_dim(&self) -> usize {
        2 * self.facts.len() + self.tools.len() + 1 + NUM_RESULTS + self.num_args as usize + 1
    }
}

fn parse<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, SuiteError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(&mut *de) {
        // Anything after the document (a second document, stray bytes) is an error, as in Python's json.loads.
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => err(
                file,
                format!("invalid suite data: {e} after the JSON document"),
            ),
        },
        Err(e) => {
            let field = e.path().to_string();
            let inner = e.into_inner();
            if field == "." {
                err(file, format!("invalid suite data: {inner}"))
            } else {
                err(file, format!("field `{field}`: {inner}"))
            }
        }
    }
}

fn read(path: &Path) -> Result<String, SuiteError> {
    std::fs::read_to_string(path)
        .map_err(|e| SuiteError(format!("{}: cannot read file: {e}", path.display())))
}

fn fact_mask(
    names: &[String],
    index: &HashMap<&str, usize>,
    file: &str,
    field: &str,
    known: &[String],
) -> Result<u64, SuiteError> {
    let mut mask = 0u64;
    for (j, name) in names.iter().enumerate() {
        match index.get(name.as_str()) {
            Some(&b) => mask |= 1u64 << b,
            None => {
                return err(
                    file,
                    format!(
                        "field `{field}[{j}]`: unknown fact {name:?}; known facts: {}",
                        known.join(", ")
                    ),
                )
            }
        }
    }
    Ok(mask)
}

fn check_prob(p: f64, file: &str, field: &str) -> Result<f64, SuiteError> {
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        err(
            file,
            format!("field `{field}` must be a finite number in [0, 1], got {p}"),
        )
    }
}

/// Goal facts plus the preconditions of every tool that adds a relevant fact, to a fixpoint.
pub fn relevant_facts(goal: u64, tools: &[Tool]) -> u64 {
    let mut relevant = goal;
    loop {
        let mut grown = relevant;
        for tool in tools {
            if tool.adds & grown != 0 {
                grown |= tool.requires;
            }
        }
        if grown == relevant {
            return relevant;
        }
        relevant = grown;
    }
}

/// Shortest tool sequence from `start` to a state holding `goal` when every call succeeds (BFS over fact sets,
/// tools in catalog order, first path to a state wins: the same plan as the Python reference).
pub fn plan(start: u64, goal: u64, relevant: u64, tools: &[Tool]) -> Result<Vec<u16>, PlanError> {
    if start & goal == goal {
        return Ok(Vec::new());
    }
    let mut parent: HashMap<u64, (u64, u16)> = HashMap::new();
    parent.insert(start, (start, u16::MAX));
    let mut queue = VecDeque::from([start]);
    while let Some(state) = queue.pop_front() {
        for (index, tool) in tools.iter().enumerate() {
            let adds = tool.adds & relevant;
            if state & tool.requires != tool.requires || adds & !state == 0 {
                continue;
            }
            let next = state | adds;
            if parent.contains_key(&next) {
                continue;
            }
            parent.insert(next, (state, index as u16));
            if parent.len() > MAX_PLAN_STATES {
                return Err(PlanError::TooLarge);
            }
            if next & goal == goal {
                let mut steps = Vec::new();
                let mut cur = next;
                while cur != start {
                    let (prev, used) = parent[&cur];
                    steps.push(used);
                    cur = prev;
                }
                steps.reverse();
                return Ok(steps);
            }
            queue.push_back(next);
        }
    }
    Err(PlanError::Unreachable)
}

/// Load, validate and compile the suite file at `path` and the catalog it names.
pub fn load_suite(path: &Path) -> Result<Suite, SuiteError> {
    let text = read(path)?;
    let catalog_ref = catalog_ref(&path.display().to_string(), &text)?;
    let catalog_path = path.parent().unwrap_or(Path::new(".")).join(&catalog_ref);
    if !catalog_path.is_file() {
        return err(
            &path.display().to_string(),
            format!(
                "field `catalog`: catalog file {} does not exist",
                catalog_path.display()
            ),
        );
    }
    let catalog_text = read(&catalog_path)?;
    compile(
        path,
        &text,
        &catalog_path.display().to_string(),
        &catalog_text,
    )
}

fn catalog_ref(file: &str, text: &str) -> Result<String, SuiteError> {
    let doc: SuiteDoc = parse(file, text)?;
    if doc.catalog.is_empty() {
        return err(file, "field `catalog` must be a non-empty string");
    }
    Ok(doc.catalog)
}

/// Compile a suite from the texts of the suite file (at `path`) and of its catalog (labelled `catalog_file`).
pub fn compile(
    path: &Path,
    suite_text: &str,
    catalog_file: &str,
    catalog_text: &str,
) -> Result<Suite, SuiteError> {
    let file = path.display().to_string();
    let file = file.as_str();
    let doc: SuiteDoc = parse(file, suite_text)?;
    let cat: CatalogDoc = parse(catalog_file, catalog_text)?;
    if doc.name.is_empty() {
        return err(file, "field `name` must be a non-empty string");
    }
    if !(1..=MAX_EPISODE_LEN).contains(&doc.episode_len) {
        return err(
            file,
            format!(
                "field `episode_len` must be an integer in [1, {MAX_EPISODE_LEN}], got {}",
                doc.episode_len
            ),
        );
    }
    if !(1..=MAX_ARGS).contains(&doc.num_args) {
        return err(
            file,
            format!(
                "field `num_args` must be an integer in [1, {MAX_ARGS}], got {}",
                doc.num_args
            ),
        );
    }
    let r = &doc.rewards;
    for (key, value) in [
        ("success", r.success),
        ("failure", r.failure),
        ("empty", r.empty),
        ("invalid", r.invalid),
        ("step_cost", r.step_cost),
        ("shaping", r.shaping),
        ("completion", r.completion),
    ] {
        if !value.is_finite() {
            return err(
                file,
                format!("field `rewards.{key}` must be a finite number"),
            );
        }
    }
    let rewards = Rewards {
        success: r.success,
        failure: r.failure,
        empty: r.empty,
        invalid: r.invalid,
        step_cost: r.step_cost,
        shaping: r.shaping,
        completion: r.completion,
    };

    // Catalog.
    let cf = catalog_file;
    if !(1..=MAX_FACTS).contains(&cat.facts.len()) {
        return err(
            cf,
            format!(
                "field `facts` must list 1 to {MAX_FACTS} facts, got {}",
                cat.facts.len()
            ),
        );
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (j, fact) in cat.facts.iter().enumerate() {
        if fact.is_empty() {
            return err(cf, format!("field `facts[{j}]` must be a non-empty string"));
        }
        if index.insert(fact.as_str(), j).is_some() {
            return err(cf, format!("field `facts[{j}]`: duplicate fact {fact:?}"));
        }
    }
    let target_fact = match index.get(cat.target_fact.as_str()) {
        Some(&b) => 1u64 << b,
        None => {
            return err(
                cf,
                format!("field `target_fact`: unknown fact {:?}", cat.target_fact),
            )
        }
    };
    if !(1..=MAX_TOOLS).contains(&cat.tools.len()) {
        return err(
            cf,
            format!(
                "field `tools` must list 1 to {MAX_TOOLS} tools, got {}",
                cat.tools.len()
            ),
        );
    }
    for key in doc.success_prob.keys() {
        if !cat.tools.iter().any(|t| &t.name == key) {
            let names: Vec<&str> = cat.tools.iter().map(|t| t.name.as_str()).collect();
            return err(
                file,
                format!(
                    "field `success_prob.{key}`: unknown tool; known tools: {}",
                    names.join(", ")
                ),
            );
        }
    }
    let mut tools = Vec::with_capacity(cat.tools.len());
    for (j, t) in cat.tools.iter().enumerate() {
        let w = format!("tools[{j}]");
        if t.name.is_empty() {
            return err(cf, format!("field `{w}.name` must be a non-empty string"));
        }
        if cat.tools[..j].iter().any(|o| o.name == t.name) {
            return err(cf, format!("field `{w}.name`: duplicate tool {:?}", t.name));
        }
        let requires = fact_mask(
            &t.requires,
            &index,
            cf,
            &format!("{w}.requires"),
            &cat.facts,
        )?;
        let adds = fact_mask(&t.adds, &index, cf, &format!("{w}.adds"), &cat.facts)?;
        if adds == 0 {
            return err(cf, format!("field `{w}.adds` must name at least one fact"));
        }
        let mut p = check_prob(t.success_prob, cf, &format!("{w}.success_prob"))?;
        if let Some(&o) = doc.success_prob.get(&t.name) {
            p = check_prob(o, file, &format!("success_prob.{}", t.name))?;
        }
        tools.push(Tool {
            name: t.name.clone(),
            takes_arg: t.takes_arg,
            requires,
            adds,
            success_prob: p,
        });
    }

    // Tasks.
    if !(1..=MAX_TASKS).contains(&doc.tasks.len()) {
        return err(
            file,
            format!(
                "field `tasks` must list 1 to {MAX_TASKS} tasks, got {}",
                doc.tasks.len()
            ),
        );
    }
    let mut tasks = Vec::with_capacity(doc.tasks.len());
    for (j, t) in doc.tasks.iter().enumerate() {
        let w = format!("tasks[{j}]");
        if t.name.is_empty() {
            return err(file, format!("field `{w}.name` must be a non-empty string"));
        }
        let start = fact_mask(&t.start, &index, file, &format!("{w}.start"), &cat.facts)?;
        let goal = fact_mask(&t.goal, &index, file, &format!("{w}.goal"), &cat.facts)?;
        if goal == 0 {
            return err(
                file,
                format!("field `{w}.goal` must name at least one fact"),
            );
        }
        if start & goal == goal {
            return err(
                file,
                format!(
                    "field `{w}.goal`: task {:?} already holds its goal at start",
                    t.name
                ),
            );
        }
        if !(1..=doc.num_args).contains(&t.num_candidates) {
            return err(
                file,
                format!(
                    "field `{w}.num_candidates` must be an integer in [1, {}], got {}",
                    doc.num_args, t.num_candidates
                ),
            );
        }
        let relevant = relevant_facts(goal, &tools);
        let steps = match plan(start, goal, relevant, &tools) {
            Ok(steps) => steps,
            Err(PlanError::Unreachable) => {
                return err(
                    file,
                    format!(
                        "field `{w}.goal`: task {:?} cannot reach its goal from its start facts",
                        t.name
                    ),
                )
            }
            Err(PlanError::TooLarge) => {
                return err(
                    file,
                    format!(
                        "field `{w}`: task {:?} is too large to plan (planning visited more than \
                         {MAX_PLAN_STATES} fact sets)",
                        t.name
                    ),
                )
            }
        };
        tasks.push(Task {
            name: t.name.clone(),
            start,
            goal,
            relevant,
            num_candidates: t.num_candidates,
            plan: steps,
        });
    }
    Ok(Suite {
        name: doc.name,
        path: path.to_path_buf(),
        facts: cat.facts.clone(),
        target_fact,
        tools,
        tasks,
        episode_len: doc.episode_len,
        num_args: doc.num_args,
        rewards,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const CATALOG: &str = r#"{
      "facts": ["listed", "in_project", "located", "file_read", "built", "tested"],
      "target_fact": "located",
      "tools": [
        {"name": "ls", "takes_arg": false, "requires": [], "adds": ["listed"], "success_prob": 1.0},
        {"name": "cd", "takes_arg": false, "requires": ["listed"], "adds": ["in_project"], "success_prob": 1.0},
        {"name": "grep", "takes_arg": false, "requires": ["in_project"], "adds": ["located"], "success_prob": 1.0},
        {"name": "cat", "takes_arg": true, "requires": ["located"], "adds": ["file_read"], "success_prob": 1.0},
        {"name": "make", "takes_arg": false, "requires": ["in_project"], "adds": ["built"], "success_prob": 0.5},
        {"name": "pytest", "takes_arg": false, "requires": ["built", "file_read"], "adds": ["tested"], "success_prob": 0.7}
      ]
    }"#;

    pub fn suite_text(episode_len: u32) -> String {
        format!(
            r#"{{
          "name": "unit", "catalog": "catalog.json", "episode_len": {episode_len}, "num_args": 4,
          "rewards": {{"success": 1.0, "failure": -1.0, "empty": -0.5, "invalid": -1.0, "step_cost": 0.05,
                      "shaping": 2.0, "completion": 10.0}},
          "success_prob": {{"make": 0.9}},
          "tasks": [
            {{"name": "read", "start": [], "goal": ["file_read"], "num_candidates": 4}},
            {{"name": "test", "start": ["listed"], "goal": ["tested"], "num_candidates": 3}}
          ]
        }}"#
        )
    }

    pub fn unit_suite(episode_len: u32) -> Suite {
        compile(
            Path::new("unit.json"),
            &suite_text(episode_len),
            "catalog.json",
            CATALOG,
        )
        .expect("unit suite compiles")
    }

    #[test]
    fn compiles_masks_relevance_and_plans() {
        let s = unit_suite(10);
        assert_eq!(s.obs_dim(), 2 * 6 + 7 + 5 + 4 + 1);
        assert_eq!(s.target_fact, 1 << 2);
        assert_eq!(s.tools[4].success_prob, 0.9);
        // read: relevant = file_read + located + in_project + listed; plan ls, cd, grep, cat.
        assert_eq!(s.tasks[0].relevant, 0b001111);
        assert_eq!(s.tasks[0].plan, vec![0, 1, 2, 3]);
        // test: starts listed; plan cd, grep, cat, make, pytest.
        assert_eq!(s.tasks[1].plan, vec![1, 2, 3, 4, 5]);
    }

    fn compile_err(suite: &str, catalog: &str) -> String {
        compile(Path::new("s.json"), suite, "c.json", catalog)
            .unwrap_err()
            .0
    }

    #[test]
    fn errors_name_file_and_field() {
        let good = suite_text(10);
        let e = compile_err(
            &good.replace(r#""episode_len": 10"#, r#""episode_len": -3"#),
            CATALOG,
        );
        assert!(e.starts_with("s.json: field `episode_len`"), "{e}");
        let e = compile_err(&good.replace(r#"["file_read"]"#, r#"["nope"]"#), CATALOG);
        assert!(
            e.contains("field `tasks[0].goal[0]`: unknown fact \"nope\""),
            "{e}"
        );
        let e = compile_err(
            &good.replace("\"num_candidates\": 4", "\"num_candidates\": 9"),
            CATALOG,
        );
        assert!(e.contains("tasks[0].num_candidates"), "{e}");
        let e = compile_err(
            &good,
            &CATALOG.replace("\"success_prob\": 0.7", "\"success_prob\": 1.7"),
        );
        assert!(
            e.starts_with("c.json: field `tools[5].success_prob`"),
            "{e}"
        );
        let e = compile_err(
            &good,
            &CATALOG.replace("\"takes_arg\": true", "\"takes_arg\": 1"),
        );
        assert!(e.starts_with("c.json: field `tools[3].takes_arg`"), "{e}");
        let e = compile_err(&good.replace("\"rewards\"", "\"rewardz\""), CATALOG);
        assert!(e.contains("missing field `rewards`"), "{e}");
        let e = compile_err("{not json", CATALOG);
        assert!(e.starts_with("s.json:"), "{e}");
        let e = compile_err(
            &good.replace(
                r#""start": [], "goal": ["file_read"]"#,
                r#""start": ["file_read"], "goal": ["file_read"]"#,
            ),
            CATALOG,
        );
        assert!(e.contains("already holds its goal"), "{e}");
    }

    #[test]
    fn planning_blowup_is_rejected_not_hung() {
        let facts: Vec<String> = (0..20).map(|i| format!("\"f{i}\"")).collect();
        let tools: Vec<String> = (0..20)
            .map(|i| {
                format!(
                    r#"{{"name": "t{i}", "takes_arg": false, "requires": [], "adds": ["f{i}"], "success_prob": 1.0}}"#
                )
            })
            .collect();
        let cat = format!(
            r#"{{"facts": [{}], "target_fact": "f0", "tools": [{}]}}"#,
            facts.join(","),
            tools.join(",")
        );
        let suite = suite_text(10).replace(
            r#"{"name": "test", "start": ["listed"], "goal": ["tested"], "num_candidates": 3}"#,
            &format!(
                r#"{{"name": "all", "start": [], "goal": [{}], "num_candidates": 3}}"#,
                facts.join(",")
            ),
        );
        let suite = suite.replace(r#""goal": ["file_read"]"#, r#""goal": ["f1"]"#);
        let suite = suite.replace(r#""make": 0.9"#, r#""t3": 0.9"#);
        let e = compile_err(&suite, &cat);
        assert!(
            e.contains("tasks[1]") && e.contains("too large to plan"),
            "{e}"
        );
    }

    #[test]
    fn unreachable_goal_is_rejected() {
        let cat = CATALOG.replace(
            r#""requires": ["built", "file_read"]"#,
            r#""requires": ["tested"]"#,
        );
        let e = compile_err(&suite_text(10), &cat);
        assert!(
            e.contains("tasks[1].goal") && e.contains("cannot reach"),
            "{e}"
        );
    }
}
