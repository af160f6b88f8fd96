"""Synthetic but realistic agent traffic: the events a fleet of coding agents would publish.

Each episode picks a coding task, has the agent's ``PlanStep`` signature choose a tool command (sometimes the
right one for the task, sometimes a plausible wrong one), runs the tool, proposes a patch, and records rewards
for the tool call (+1 success / -1 failure / -0.5 empty, DESIGN.md) and for the patch. The same task recurs
across episodes, so the GRPO miner finds groups of different responses to one prompt with different rewards.
Used to build the embedded JSONL sample (``dspy_rl/stream/data/sample_events.jsonl``), by the Kafka fault tests
and by ``bench/kafka_ingest.py``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator

from dspy_rl.traces.spans import Span

#: (task, context, right command, plausible wrong commands)
TASKS: tuple[tuple[str, dict[str, str], str, tuple[str, ...]], ...] = (
    (
        "The test suite fails on test_parse_dates; find out why.",
        {"repo": "calendar-lib", "lang": "python"},
        "pytest -q tests/test_dates.py::test_parse_dates",
        ("make test", "cat README.md", "git log -1"),
    ),
    (
        "List the files changed since the last commit.",
        {"repo": "webapp", "lang": "typescript"},
        "git status --short",
        ("ls -la", "git log --stat", "find . -newer .git"),
    ),
    (
        "Install the missing dependency 'requests' and rerun the tests.",
        {"repo": "scraper", "lang": "python"},
        "pip install requests",
        ("pip install request", "pip freeze", "curl https://pypi.org"),
    ),
    (
        "Find where the function load_config is defined.",
        {"repo": "cli-tool", "lang": "python"},
        "grep -rn 'def load_config' src/",
        ("find . -name config", "cat src/main.py", "ls src"),
    ),
    (
        "Build the project and report the first compiler error.",
        {"repo": "engine", "lang": "rust"},
        "make build",
        ("cargo fmt", "ls target", "cat Makefile"),
    ),
    (
        "Show the diff of the staged changes before committing.",
        {"repo": "webapp", "lang": "typescript"},
        "git diff --cached",
        ("git diff HEAD~3", "git status", "git show"),
    ),
    (
        "Fix the off-by-one error in paginate() and commit the fix.",
        {"repo": "api-server", "lang": "go"},
        "edit pagination.go",
        ("cat pagination.go", "grep -rn paginate", "make lint"),
    ),
    (
        "Check which Python version the Docker image uses.",
        {"repo": "deploy", "lang": "docker"},
        "cat Dockerfile",
        ("docker ps", "python --version", "ls docker"),
    ),
)
AGENTS = ("coder-1", "coder-2", "reviewer-1")
SIGNATURES = ("PlanStep", "PatchWriter")


def _make_span(
    trace_id: str,
    agent: str,
    ts: float,
    kind: str,
    name: str,
    offset: float,
    reward: float | None = None,
    **attrs: object,
) -> Span:
    return Span(
        kind=kind,
        trace_id=trace_id,
        agent_id=agent,
        name=name,
        span_id=f"{trace_id}-{name}-{kind}",
        start_ts=ts + offset,
        end_ts=ts + offset + 0.5,
        reward=reward,
        attributes=dict(attrs),
    )


def synthetic_spans(
    num_traces: int, seed: int = 0, start_ts: float = 1.78e9, spacing_s: float = 30.0
) -> Iterator[Span]:
    """Spans of ``num_traces`` episodes (5 to 7 spans each), deterministic for ``seed``, one episode after another."""
    if num_traces < 0:
        raise ValueError(f"num_traces={num_traces} must be >= 0")
    rng = random.Random(seed)
    for i in range(num_traces):
        task, context, right, wrong = TASKS[rng.randrange(len(TASKS))]
        agent = AGENTS[rng.randrange(len(AGENTS))]
        trace_id = f"t{seed:04d}{i:09d}"
        ts = start_ts + i * spacing_s
        skill = 0.3 + 0.5 * (agent != "reviewer-1")
        command = right if rng.random() < skill else rng.choice(wrong)
        status = (
            ("success" if rng.random() < 0.9 else "failure")
            if command == right
            else rng.choice(("failure", "empty", "success"))
        )

        span = functools.partial(_make_span, trace_id, agent, ts)
        plan = span("prompt", "PlanStep", 0.0, prompt=task, response=command, context=context)
        yield plan
        yield span(
            "tool",
            command.split()[0],
            1.0,
            tool=command.split()[0],
            args=command,
            status=status,
            output="ok" if status == "success" else "",
        )
        tool_reward = {"success": 1.0, "failure": -1.0, "empty": -0.5}[status]
        yield span("reward", "tool", 1.6, reward=tool_reward, target=plan.span_id)
        fixed = command == right and status == "success"
        patch_text = (
            f"--- a/{context['repo']}/main\n+++ b/{context['repo']}/main\n"
            f"@@ -{rng.randrange(1, 200)} +1 @@\n{'+ fix' if fixed else '+ todo: investigate'}\n"
        )
        patch = span(
            "prompt", "PatchWriter", 2.0, prompt=task, response=patch_text, patch=patch_text, context=context
        )
        yield patch
        yield span(
            "reward", "tests", 2.6, reward=1.0 if fixed else rng.choice((0.0, -0.5)), target=patch.span_id
        )
        if rng.random() < 0.5:
            yield span(
                "reasoning", "reasoning", 0.2, text=f"The task mentions {task.split()[1]}; try {command}."
            )
        yield span(
            "content",
            "trace.end",
            3.0,
            status="success" if fixed else "ok",
            task=task,
            answer=command,
            metadata={"repo": context["repo"]},
        )
