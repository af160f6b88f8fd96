"""Seeded generator of ToolEnv task suites (``dspy-rl envs generate``).

A suite is drawn from a catalog: each task gets 1 to ``max_goals`` goal facts (drawn from the catalog's
``goal_facts``, or from every fact a tool adds when the catalog names none), a start state of a few
distractor facts and, with ``start_prob``, some of the task's own prerequisites already held, and a number of
argument candidates. A task is kept only when the oracle planner of :mod:`dspy_rl.envs.suite` reaches its goal
in ``min_plan`` to ``max_plan`` steps (so every generated task is reachable and as long as asked); the written
file is then loaded back with :func:`~dspy_rl.envs.suite.load_suite`, the loader both backends share.

Explicit tasks (``goals=[["released", "db_verified"]]``, optional ``starts``) are validated the same way and
rejected with one line naming what cannot be reached, e.g.
``goal ['released'] is unreachable from start []: no tool chain adds 'released' (missing: ...)``.

The same spec and seed give the same file, byte for byte (``random.Random(seed)``; no other randomness).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dspy_rl.envs.suite import (
    MAX_ARGS,
    MAX_EPISODE_LEN,
    REWARD_KEYS,
    SuiteError,
    load_suite,
    plan,
    relevant_facts,
)
from dspy_rl.envs.suite import Tool as _Tool

DEFAULT_REWARDS = {
    "success": 1.0,
    "failure": -1.0,
    "empty": -0.5,
    "invalid": -1.0,
    "step_cost": 0.05,
    "shaping": 2.0,
    "completion": 10.0,
}


class GenerateError(ValueError):
    """The generator's inputs are invalid or cannot produce the suite asked for (one-line message)."""


@dataclass
class GenerateSpec:
    """Everything that defines a generated suite; with ``seed`` it fixes the output file."""

    catalog: str
    """Catalog JSON file (facts, tools, optional ``goal_facts``)."""
    name: str = "generated"
    """Suite name written into the file."""
    seed: int = 0
    """Generator seed: the same spec and seed give the same file."""
    num_tasks: int = 32
    """Number of tasks (random ones; ignored when ``goals`` is given)."""
    min_goals: int = 1
    """Fewest goal facts per random task."""
    max_goals: int = 3
    """Most goal facts per random task (multi-goal tasks when > 1)."""
    min_plan: int = 1
    """Shortest oracle plan a random task may have (the generator redraws shorter ones)."""
    max_plan: int = 200
    """Longest oracle plan a random task may have."""
    episode_len: int = 64
    """Episode length (horizon) of the suite."""
    num_args: int = 16
    """Width of the argument action (the most candidates a task can have)."""
    min_candidates: int = 0
    """Fewest argument candidates per task (0 = num_args, i.e. every task uses the full width)."""
    start_prob: float = 0.0
    """Chance that each of a task's prerequisite facts (relevant, not a goal) already holds at the start."""
    distractor_prob: float = 0.25
    """Chance that each fact irrelevant to the task holds at the start (noise in the observation)."""
    max_plan_states: int = 20_000
    """Redraw a random task whose planning visits more fact sets than this (keeps suites quick to load)."""
    goals: list[list[str]] | None = None
    """Explicit tasks' goal facts (one list per task); every one must be reachable."""
    starts: list[list[str]] | None = None
    """Explicit tasks' start facts (one list per task, with ``goals``); default: empty."""
    rewards: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARDS))
    """Reward numbers (see envs/README.md)."""
    success_prob: dict[str, float] = field(default_factory=dict)
    """Per-tool success-probability overrides."""
    description: str = ""
    """Free text written into the suite file."""


def _load_catalog(path: Path) -> tuple[list[str], list[_Tool], list[str]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenerateError(f"catalog file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GenerateError(f"catalog {path} cannot be read: {exc}") from None
    facts = doc.get("facts")
    if not isinstance(facts, list) or not facts or not all(isinstance(f, str) for f in facts):
        raise GenerateError(f"catalog {path}: `facts` must be a non-empty list of names")
    index = {f: i for i, f in enumerate(facts)}
    tools = []
    for j, t in enumerate(doc.get("tools") or []):
        try:
            tools.append(
                _Tool(
                    name=t["name"],
                    takes_arg=bool(t["takes_arg"]),
                    requires=sum(1 << index[f] for f in set(t["requires"])),
                    adds=sum(1 << index[f] for f in set(t["adds"])),
                    success_prob=float(t["success_prob"]),
                )
            )
        except (KeyError, TypeError) as exc:
            raise GenerateError(f"catalog {path}: `tools[{j}]` is malformed ({exc!r})") from None
    if not tools:
        raise GenerateError(f"catalog {path}: `tools` must list at least one tool")
    goal_facts = doc.get("goal_facts")
    if goal_facts is None:
        added = 0
        for tool in tools:
            added |= tool.adds
        goal_facts = [f for f in facts if added >> index[f] & 1]
    unknown = [g for g in goal_facts if g not in index]
    if unknown:
        raise GenerateError(f"catalog {path}: `goal_facts` names unknown facts {unknown}")
    return facts, tools, list(goal_facts)


def _mask(names: list[str], index: dict[str, int], what: str) -> int:
    unknown = [n for n in names if n not in index]
    if unknown:
        raise GenerateError(f"{what} names unknown facts {unknown}; known facts: {', '.join(index)}")
    return sum(1 << index[n] for n in set(names))


def _names(mask: int, facts: list[str]) -> list[str]:
    return [f for i, f in enumerate(facts) if mask >> i & 1]


def closure(start: int, tools: list[_Tool]) -> int:
    """Every fact reachable from ``start`` when every tool succeeds (tools add all their effects)."""
    held = start
    while True:
        grown = held
        for tool in tools:
            if grown & tool.requires == tool.requires:
                grown |= tool.adds
        if grown == held:
            return held
        held = grown


def check_reachable(goal: int, start: int, facts: list[str], tools: list[_Tool]) -> tuple[int, ...]:
    """The oracle plan from ``start`` to ``goal``; raises GenerateError (one line) when none exists."""
    if start & goal == goal:
        raise GenerateError(f"goal {_names(goal, facts)} already holds at start {_names(start, facts)}")
    try:
        steps = plan(start, goal, relevant_facts(goal, tuple(tools)), tuple(tools))
    except OverflowError as exc:
        raise GenerateError(f"goal {_names(goal, facts)} is too large to plan ({exc})") from None
    if steps is None:
        missing = goal & ~closure(start, tools)
        raise GenerateError(
            f"goal {_names(goal, facts)} is unreachable from start {_names(start, facts)}: no tool chain adds "
            f"{_names(missing, facts)}"
        )
    return steps


def _validate(spec: GenerateSpec) -> None:
    if spec.num_tasks < 1 and not spec.goals:
        raise GenerateError(f"num_tasks must be >= 1, got {spec.num_tasks}")
    if not 1 <= spec.min_goals <= spec.max_goals:
        raise GenerateError(f"need 1 <= min_goals <= max_goals, got {spec.min_goals} and {spec.max_goals}")
    if not 1 <= spec.min_plan <= spec.max_plan:
        raise GenerateError(f"need 1 <= min_plan <= max_plan, got {spec.min_plan} and {spec.max_plan}")
    if spec.max_plan_states < 1:
        raise GenerateError(f"max_plan_states must be >= 1, got {spec.max_plan_states}")
    if not 1 <= spec.episode_len <= MAX_EPISODE_LEN:
        raise GenerateError(f"episode_len must be in [1, {MAX_EPISODE_LEN}], got {spec.episode_len}")
    if not 1 <= spec.num_args <= MAX_ARGS:
        raise GenerateError(f"num_args must be in [1, {MAX_ARGS}], got {spec.num_args}")
    if not 0 <= spec.min_candidates <= spec.num_args:
        raise GenerateError(
            f"min_candidates must be in [0, num_args={spec.num_args}], got {spec.min_candidates}"
        )
    for key in ("start_prob", "distractor_prob"):
        value = getattr(spec, key)
        if not 0.0 <= value <= 1.0:
            raise GenerateError(f"{key} must be in [0, 1], got {value}")
    missing = [k for k in REWARD_KEYS if k not in spec.rewards]
    if missing:
        raise GenerateError(f"rewards lacks {missing}")
    if spec.starts is not None and (spec.goals is None or len(spec.starts) != len(spec.goals)):
        raise GenerateError("starts needs goals, one start list per goal list")


def generate(spec: GenerateSpec, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Draw the suite document of ``spec`` (a dict ready for ``json.dump``).

    ``out_dir`` is where the file will live: the catalog reference is written relative to it (default: the
    catalog's own directory's ``suites`` sibling is not assumed; an absolute path is written when omitted).
    """
    _validate(spec)
    catalog = Path(spec.catalog)
    facts, tools, goal_pool = _load_catalog(catalog)
    index = {f: i for i, f in enumerate(facts)}
    for key in spec.success_prob:
        if key not in {t.name for t in tools}:
            raise GenerateError(f"success_prob names unknown tool {key!r}")
    rng = random.Random(spec.seed)
    min_k = spec.min_candidates or spec.num_args
    tasks: list[dict[str, Any]] = []
    if spec.goals:
        starts = spec.starts or [[] for _ in spec.goals]
        for j, (goal_names, start_names) in enumerate(zip(spec.goals, starts, strict=True)):
            if not goal_names:
                raise GenerateError(f"goal {j} is empty: name at least one fact")
            goal = _mask(goal_names, index, f"goal {j}")
            start = _mask(start_names, index, f"start {j}")
            steps = check_reachable(goal, start, facts, tools)
            if len(steps) > spec.episode_len:
                raise GenerateError(
                    f"goal {goal_names} is unreachable within episode_len {spec.episode_len}: its shortest plan "
                    f"takes {len(steps)} steps"
                )
            tasks.append(_task(f"task_{j:02d}", start, goal, rng.randint(min_k, spec.num_args), steps, facts))
    else:
        attempts = 0
        max_attempts = 200 * spec.num_tasks
        seen: set[tuple[int, int]] = set()
        while len(tasks) < spec.num_tasks:
            attempts += 1
            if attempts > max_attempts:
                raise GenerateError(
                    f"found only {len(tasks)} of {spec.num_tasks} tasks with plans of {spec.min_plan}-{spec.max_plan} "
                    f"steps after {max_attempts} draws; widen min_plan/max_plan or the goal count"
                )
            k = rng.randint(spec.min_goals, min(spec.max_goals, len(goal_pool)))
            goal = _mask(rng.sample(goal_pool, k), index, "goal")
            relevant = relevant_facts(goal, tuple(tools))
            start = 0
            for i in range(len(facts)):
                bit = 1 << i
                if goal & bit:
                    continue
                p = spec.start_prob if relevant & bit else spec.distractor_prob
                if rng.random() < p:
                    start |= bit
            if start & goal == goal or (start, goal) in seen:
                continue
            try:
                steps = plan(start, goal, relevant, tuple(tools), limit=spec.max_plan_states)
            except OverflowError:
                continue
            if steps is None or not spec.min_plan <= len(steps) <= min(spec.max_plan, spec.episode_len):
                continue
            seen.add((start, goal))
            name = f"{'+'.join(_names(goal, facts))}_{len(tasks):02d}"
            tasks.append(_task(name, start, goal, rng.randint(min_k, spec.num_args), steps, facts))
    if out_dir is None:
        catalog_ref = str(catalog.resolve())
    else:
        catalog_ref = os.path.relpath(catalog.resolve(), Path(out_dir).resolve())
    meta = {k: v for k, v in asdict(spec).items() if k not in ("catalog", "description")}
    return {
        "name": spec.name,
        "description": spec.description or f"generated by `dspy-rl envs generate` (seed {spec.seed})",
        "catalog": catalog_ref,
        "episode_len": spec.episode_len,
        "num_args": spec.num_args,
        "rewards": dict(spec.rewards),
        "success_prob": dict(spec.success_prob),
        "generator": meta,
        "tasks": tasks,
    }


def _task(
    name: str, start: int, goal: int, k: int, steps: tuple[int, ...], facts: list[str]
) -> dict[str, Any]:
    return {
        "name": name,
        "start": _names(start, facts),
        "goal": _names(goal, facts),
        "num_candidates": k,
        "plan_len": len(steps),
    }


def dumps(doc: dict[str, Any]) -> str:
    """The suite file's text: one task per line, stable key order (so files diff well and reproduce exactly)."""
    head = {k: v for k, v in doc.items() if k != "tasks"}
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "tasks": [')
    lines.append(",\n".join(f"    {json.dumps(t)}" for t in doc["tasks"]))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_suite(spec: GenerateSpec, out: str | Path) -> Path:
    """Generate ``spec`` into the file ``out`` (atomically), then load it back with the shared suite loader."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(generate(spec, out.parent))
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_suite(tmp)
    except SuiteError as exc:
        tmp.unlink(missing_ok=True)
        raise GenerateError(f"generated suite does not load: {exc}") from None
    tmp.replace(out)
    return out


#: Presets of ``dspy-rl envs generate --preset <name>`` (the shipped ``expert`` suite is ``expert`` at seed 0).
PRESETS: dict[str, dict[str, Any]] = {
    "expert": {
        "catalog": "catalogs/expert.json",
        "num_tasks": 96,
        "min_goals": 3,
        "max_goals": 5,
        "min_plan": 30,
        "max_plan": 52,
        "episode_len": 80,
        "num_args": 48,
        "min_candidates": 32,
        "start_prob": 0.1,
        "distractor_prob": 0.25,
        "max_plan_states": 12_000,
        "success_prob": {
            "fetch_logs": 0.65,
            "inspect_repro_output": 0.6,
            "edit": 0.8,
            "pip_install": 0.6,
            "read_test_report": 0.55,
            "git_push": 0.7,
            "read_ci_logs": 0.6,
            "read_review": 0.65,
            "curl": 0.65,
            "docker_build": 0.55,
            "read_smoke_report": 0.6,
            "run_migration": 0.65,
        },
    },
}


def preset_spec(preset: str, seed: int = 0, name: str | None = None) -> GenerateSpec:
    """The GenerateSpec of a preset, its catalog resolved inside ``envs/``."""
    from dspy_rl import envs_dir

    if preset not in PRESETS:
        raise GenerateError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    kw = dict(PRESETS[preset])
    kw["catalog"] = str(envs_dir() / kw["catalog"])
    return GenerateSpec(name=name or (preset if seed == 0 else f"{preset}-{seed}"), seed=seed, **kw)
