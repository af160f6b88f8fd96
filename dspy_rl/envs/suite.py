"""Tool catalog and task suites of ToolEnv: loading, validation and compilation to bit masks.

The data live in ``envs/`` (see ``envs/README.md`` for the format and the dynamics). This module is the Python
twin of ``rust_env/src/suite.rs``: both compile a suite file into the same integer tables (fact bit masks,
per-task relevant facts, oracle plans), so the two backends can step bit-for-bit identically.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Step results written to ``env.results``.
RESULT_NONE, RESULT_SUCCESS, RESULT_FAILURE, RESULT_EMPTY, RESULT_INVALID = 0, 1, 2, 3, 4
NUM_RESULTS = 5
MAX_FACTS = 64
MAX_ARGS = 64
MAX_TOOLS = 64
MAX_TASKS = 65536
MAX_EPISODE_LEN = 100_000
#: The oracle planner gives up (the suite is rejected) after visiting this many fact sets.
MAX_PLAN_STATES = 200_000
REWARD_KEYS = ("success", "failure", "empty", "invalid", "step_cost", "shaping", "completion")


class SuiteError(ValueError):
    """A suite or catalog file is missing, unreadable or malformed (the message names the file and field)."""


@dataclass(frozen=True)
class Tool:
    """One compiled tool: bit masks over the catalog's facts."""

    name: str
    takes_arg: bool
    requires: int
    adds: int
    success_prob: float


@dataclass(frozen=True)
class Task:
    """One compiled task. ``relevant``: goal facts plus, transitively, the preconditions of every tool that adds
    a relevant fact; tools only ever add relevant facts. ``plan``: the oracle's shortest tool sequence."""

    name: str
    start: int
    goal: int
    relevant: int
    num_candidates: int
    plan: tuple[int, ...]


@dataclass(frozen=True)
class Rewards:
    """Reward numbers of a suite (see envs/README.md)."""

    success: float
    failure: float
    empty: float
    invalid: float
    step_cost: float
    shaping: float
    completion: float


@dataclass(frozen=True)
class Suite:
    """A compiled task suite together with its tool catalog."""

    name: str
    path: Path
    facts: tuple[str, ...]
    target_fact: int
    tools: tuple[Tool, ...]
    tasks: tuple[Task, ...]
    episode_len: int
    num_args: int
    rewards: Rewards

    @property
    def obs_dim(self) -> int:
        """facts + goal facts + last tool one-hot (with "none") + last result one-hot + revealed target + step fraction."""
        return 2 * len(self.facts) + (len(self.tools) + 1) + NUM_RESULTS + self.num_args + 1


def suites_dir() -> Path:
    """Directory holding the named suites (``envs/suites``)."""
    from dspy_rl import envs_dir

    return envs_dir() / "suites"


def available_suites() -> list[str]:
    """Names of the suites shipped in ``envs/suites`` (sorted)."""
    directory = suites_dir()
    return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []


def resolve_suite(suite: str | Path) -> Path:
    """Return the file of ``suite``: a name in ``envs/suites`` or a path to a suite JSON file."""
    if not isinstance(suite, str | Path):
        raise TypeError(f"suite must be a suite name or a path (str), got {type(suite).__name__}")
    text = str(suite)
    looks_like_path = isinstance(suite, Path) or text.endswith(".json") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text)
        if not path.is_file():
            raise SuiteError(f"suite file {path} does not exist")
        return path
    path = suites_dir() / f"{text}.json"
    if not path.is_file():
        raise SuiteError(
            f"unknown suite {text!r}; available suites: {', '.join(available_suites()) or '(none)'} "
            f"(or pass a path to a suite .json file)"
        )
    return path


# ---------------------------------------------------------------------------------------------------------------
# Field readers: every error names the file and the field path, like the Rust loader.


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read file: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def _get(obj: dict[str, Any], key: str, path: Path, where: str) -> Any:
    if key not in obj:
        raise SuiteError(f"{path}: missing field `{where}{key}`")
    return obj[key]


def _obj(value: Any, path: Path, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SuiteError(f"{path}: field `{field}` must be an object, got {type(value).__name__}")
    return value


def _list(value: Any, path: Path, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise SuiteError(f"{path}: field `{field}` must be a list, got {type(value).__name__}")
    return value


def _str(value: Any, path: Path, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise SuiteError(f"{path}: field `{field}` must be a non-empty string")
    return value


def _int(value: Any, path: Path, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SuiteError(f"{path}: field `{field}` must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _float(value: Any, path: Path, field: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SuiteError(f"{path}: field `{field}` must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise SuiteError(f"{path}: field `{field}` must be a finite number in [{lo}, {hi}], got {value!r}")
    return value


def _bool(value: Any, path: Path, field: str) -> bool:
    if not isinstance(value, bool):
        raise SuiteError(f"{path}: field `{field}` must be true or false, got {value!r}")
    return value


def _facts(value: Any, index: dict[str, int], path: Path, field: str) -> int:
    mask = 0
    for j, name in enumerate(_list(value, path, field)):
        name = _str(name, path, f"{field}[{j}]")
        if name not in index:
            raise SuiteError(
                f"{path}: field `{field}[{j}]`: unknown fact {name!r}; known facts: {', '.join(index)}"
            )
        mask |= 1 << index[name]
    return mask


# ---------------------------------------------------------------------------------------------------------------
# Compilation.


def relevant_facts(goal: int, tools: tuple[Tool, ...]) -> int:
    """Goal facts plus the preconditions of every tool that adds a relevant fact, to a fixpoint."""
    relevant = goal
    while True:
        grown = relevant
        for tool in tools:
            if tool.adds & grown:
                grown |= tool.requires
        if grown == relevant:
            return relevant
        relevant = grown


def plan(
    start: int, goal: int, relevant: int, tools: tuple[Tool, ...], limit: int = MAX_PLAN_STATES
) -> tuple[int, ...] | None:
    """Shortest tool sequence from ``start`` to a state holding ``goal``, assuming every call succeeds.

    Breadth-first over fact sets; tools are tried in catalog order and the first path found to a state wins, so
    the plan is unique and both backends compute the same one. ``None`` when the goal is unreachable.
    Raises ``OverflowError`` after visiting ``limit`` fact sets (the loaders use ``MAX_PLAN_STATES``).
    """
    if start & goal == goal:
        return ()
    # Tools without a relevant effect never apply: skip them once here instead of at every state (same order).
    usable = [
        (index, tool.requires, tool.adds & relevant)
        for index, tool in enumerate(tools)
        if tool.adds & relevant
    ]
    parent: dict[int, tuple[int, int]] = {start: (start, -1)}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for index, requires, adds in usable:
            if state & requires != requires or adds & ~state == 0:
                continue
            nxt = state | adds
            if nxt in parent:
                continue
            parent[nxt] = (state, index)
            if len(parent) > limit:
                raise OverflowError(f"planning visited more than {limit} fact sets")
            if nxt & goal == goal:
                steps = []
                while nxt != start:
                    nxt, used = parent[nxt]
                    steps.append(used)
                return tuple(reversed(steps))
            queue.append(nxt)
    return None


def load_suite(suite: str | Path) -> Suite:
    """Load, validate and compile a suite (name or path) and its catalog. Raises SuiteError naming file and field."""
    path = resolve_suite(suite)
    doc = _obj(_read_json(path), path, "<root>")
    name = _str(_get(doc, "name", path, ""), path, "name")
    catalog_ref = _str(_get(doc, "catalog", path, ""), path, "catalog")
    episode_len = _int(_get(doc, "episode_len", path, ""), path, "episode_len", 1, MAX_EPISODE_LEN)
    num_args = _int(_get(doc, "num_args", path, ""), path, "num_args", 1, MAX_ARGS)
    rewards_doc = _obj(_get(doc, "rewards", path, ""), path, "rewards")
    rewards = Rewards(
        **{k: _float(_get(rewards_doc, k, path, "rewards."), path, f"rewards.{k}") for k in REWARD_KEYS}
    )

    catalog_path, cat, index = _load_catalog(path, catalog_ref)
    target_name = _str(_get(cat, "target_fact", catalog_path, ""), catalog_path, "target_fact")
    if target_name not in index:
        raise SuiteError(f"{catalog_path}: field `target_fact`: unknown fact {target_name!r}")
    tools_t = _load_tools(path, doc, catalog_path, cat, index)
    tasks = _load_tasks(path, doc, index, tools_t, num_args)
    return Suite(
        name=name,
        path=path,
        facts=tuple(index),
        target_fact=1 << index[target_name],
        tools=tools_t,
        tasks=tuple(tasks),
        episode_len=episode_len,
        num_args=num_args,
        rewards=rewards,
    )


def _load_catalog(path: Path, catalog_ref: str) -> tuple[Path, dict[str, Any], dict[str, int]]:
    """The suite's catalog: (its path, its document, fact name -> bit index)."""
    catalog_path = path.parent / catalog_ref
    if not catalog_path.is_file():
        raise SuiteError(f"{path}: field `catalog`: catalog file {catalog_path} does not exist")
    cat = _obj(_read_json(catalog_path), catalog_path, "<root>")
    fact_names = _list(_get(cat, "facts", catalog_path, ""), catalog_path, "facts")
    if not 1 <= len(fact_names) <= MAX_FACTS:
        raise SuiteError(
            f"{catalog_path}: field `facts` must list 1 to {MAX_FACTS} facts, got {len(fact_names)}"
        )
    index: dict[str, int] = {}
    for j, fact in enumerate(fact_names):
        fact = _str(fact, catalog_path, f"facts[{j}]")
        if fact in index:
            raise SuiteError(f"{catalog_path}: field `facts[{j}]`: duplicate fact {fact!r}")
        index[fact] = j
    return catalog_path, cat, index


def _load_tools(
    path: Path, doc: dict[str, Any], catalog_path: Path, cat: dict[str, Any], index: dict[str, int]
) -> tuple[Tool, ...]:
    """The catalog's tools, with the suite's ``success_prob`` overrides applied."""
    tool_docs = _list(_get(cat, "tools", catalog_path, ""), catalog_path, "tools")
    if not 1 <= len(tool_docs) <= MAX_TOOLS:
        raise SuiteError(
            f"{catalog_path}: field `tools` must list 1 to {MAX_TOOLS} tools, got {len(tool_docs)}"
        )

    overrides = _obj(_get(doc, "success_prob", path, ""), path, "success_prob")
    tool_names = [
        _str(
            _get(_obj(t, catalog_path, f"tools[{j}]"), "name", catalog_path, f"tools[{j}]."),
            catalog_path,
            f"tools[{j}].name",
        )
        for j, t in enumerate(tool_docs)
    ]
    for key in overrides:
        if key not in tool_names:
            raise SuiteError(
                f"{path}: field `success_prob.{key}`: unknown tool; known tools: {', '.join(tool_names)}"
            )
    tools = []
    seen: set[str] = set()
    for j, t in enumerate(tool_docs):
        where = f"tools[{j}]"
        tname = tool_names[j]
        if tname in seen:
            raise SuiteError(f"{catalog_path}: field `{where}.name`: duplicate tool {tname!r}")
        seen.add(tname)
        adds = _facts(_get(t, "adds", catalog_path, f"{where}."), index, catalog_path, f"{where}.adds")
        if adds == 0:
            raise SuiteError(f"{catalog_path}: field `{where}.adds` must name at least one fact")
        prob = _float(
            _get(t, "success_prob", catalog_path, f"{where}."),
            catalog_path,
            f"{where}.success_prob",
            0.0,
            1.0,
        )
        if tname in overrides:
            prob = _float(overrides[tname], path, f"success_prob.{tname}", 0.0, 1.0)
        tools.append(
            Tool(
                name=tname,
                takes_arg=_bool(
                    _get(t, "takes_arg", catalog_path, f"{where}."), catalog_path, f"{where}.takes_arg"
                ),
                requires=_facts(
                    _get(t, "requires", catalog_path, f"{where}."), index, catalog_path, f"{where}.requires"
                ),
                adds=adds,
                success_prob=prob,
            )
        )
    return tuple(tools)


def _load_tasks(
    path: Path, doc: dict[str, Any], index: dict[str, int], tools_t: tuple[Tool, ...], num_args: int
) -> list[Task]:
    """The suite's tasks, each checked to reach its goal, with its planned optimal steps."""
    task_docs = _list(_get(doc, "tasks", path, ""), path, "tasks")
    if not 1 <= len(task_docs) <= MAX_TASKS:
        raise SuiteError(f"{path}: field `tasks` must list 1 to {MAX_TASKS} tasks, got {len(task_docs)}")
    tasks = []
    for j, t in enumerate(task_docs):
        where = f"tasks[{j}]"
        t = _obj(t, path, where)
        tname = _str(_get(t, "name", path, f"{where}."), path, f"{where}.name")
        start = _facts(_get(t, "start", path, f"{where}."), index, path, f"{where}.start")
        goal = _facts(_get(t, "goal", path, f"{where}."), index, path, f"{where}.goal")
        if goal == 0:
            raise SuiteError(f"{path}: field `{where}.goal` must name at least one fact")
        if start & goal == goal:
            raise SuiteError(f"{path}: field `{where}.goal`: task {tname!r} already holds its goal at start")
        k = _int(_get(t, "num_candidates", path, f"{where}."), path, f"{where}.num_candidates", 1, num_args)
        relevant = relevant_facts(goal, tools_t)
        try:
            steps = plan(start, goal, relevant, tools_t)
        except OverflowError as exc:
            raise SuiteError(f"{path}: field `{where}`: task {tname!r} is too large to plan ({exc})") from exc
        if steps is None:
            raise SuiteError(
                f"{path}: field `{where}.goal`: task {tname!r} cannot reach its goal from its start facts"
            )
        tasks.append(Task(tname, start, goal, relevant, k, steps))
    return tasks
