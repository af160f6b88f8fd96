"""`dspy-rl envs generate`: seeded, reachable suites; the shipped `expert` suite; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.envs import VecToolEnv
from dspy_rl.envs.generate import GenerateError, GenerateSpec, generate, preset_spec, write_suite
from dspy_rl.envs.suite import load_suite, suites_dir

INSPECTION_PREFIXES = ("read_", "inspect_", "check_")


def test_shipped_expert_is_the_seed_0_preset_and_meets_the_spec() -> None:
    shipped = json.loads((suites_dir() / "expert.json").read_text())
    assert generate(preset_spec("expert"), suites_dir()) == shipped  # regenerated, not hand-edited
    suite = load_suite("expert")
    assert len(suite.facts) >= 48 and len(suite.tools) >= 30 and suite.episode_len >= 40
    assert sum(t.success_prob < 1.0 for t in suite.tools) >= 12  # flaky tools
    assert sum(bin(t.goal).count("1") > 1 for t in suite.tasks) >= len(suite.tasks) // 2  # multi-goal tasks
    assert max(len(t.plan) for t in suite.tasks) >= 30
    # Results revealed only by inspection: facts that only inspection tools add, needed by later tools.
    adders: dict[int, set[str]] = {}
    for tool in suite.tools:
        for b in range(64):
            if tool.adds >> b & 1:
                adders.setdefault(b, set()).add(tool.name)
    inspected = [b for b, names in adders.items() if all(n.startswith(INSPECTION_PREFIXES) for n in names)]
    assert len(inspected) >= 6
    assert any(any(tool.requires >> b & 1 for b in inspected) for tool in suite.tools)


def test_same_seed_same_file_other_seed_other_tasks(tmp_path: Path) -> None:
    def spec(seed: int) -> GenerateSpec:
        s = preset_spec("expert", seed=seed)
        s.num_tasks = 8
        return s

    a = write_suite(spec(5), tmp_path / "a.json").read_bytes()
    b = write_suite(spec(5), tmp_path / "b.json").read_bytes()
    c = json.loads(write_suite(spec(6), tmp_path / "c.json").read_text())
    assert a == b
    assert c["tasks"] != json.loads(a)["tasks"]
    for task in c["tasks"]:
        assert 30 <= task["plan_len"] <= 52 and 3 <= len(task["goal"]) <= 5


def test_generated_suite_steps_identically_in_both_backends(tmp_path: Path) -> None:
    spec = preset_spec("expert", seed=2)
    spec.num_tasks, spec.min_plan, spec.max_plan = 6, 10, 30
    path = write_suite(spec, tmp_path / "g.json")
    rust = VecToolEnv(16, str(path), seed=4, backend="rust", invalid_action="penalty")
    python = VecToolEnv(16, str(path), seed=4, backend="python", invalid_action="penalty")
    rng = np.random.default_rng(0)
    for _ in range(150):
        assert np.array_equal(rust.obs, python.obs) and np.array_equal(rust.tool_mask, python.tool_mask)
        tools = rng.integers(0, rust.num_tools, 16)
        args = rng.integers(0, rust.num_args, 16)
        rust.step(tools, args)
        python.step(tools, args)
        assert np.array_equal(rust.rewards, python.rewards) and np.array_equal(rust.results, python.results)


def _catalog_with_orphan_fact(tmp_path: Path) -> Path:
    doc = {
        "facts": ["a", "b", "orphan"],
        "target_fact": "a",
        "tools": [
            {"name": "t1", "takes_arg": False, "requires": [], "adds": ["a"], "success_prob": 1.0},
            {"name": "t2", "takes_arg": True, "requires": ["a"], "adds": ["b"], "success_prob": 0.5},
        ],
    }
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(doc))
    return path


def test_explicit_goals_are_validated(tmp_path: Path) -> None:
    catalog = _catalog_with_orphan_fact(tmp_path)
    spec = GenerateSpec(catalog=str(catalog), goals=[["b"], ["a", "b"]], num_args=4)
    doc = generate(spec)
    assert [t["plan_len"] for t in doc["tasks"]] == [2, 2]
    with pytest.raises(GenerateError, match=r"unreachable from start \[\]: no tool chain adds \['orphan'\]"):
        generate(GenerateSpec(catalog=str(catalog), goals=[["b", "orphan"]]))
    with pytest.raises(GenerateError, match="unreachable within episode_len 1"):
        generate(GenerateSpec(catalog=str(catalog), goals=[["b"]], episode_len=1))
    with pytest.raises(GenerateError, match="already holds"):
        generate(GenerateSpec(catalog=str(catalog), goals=[["a"]], starts=[["a"]]))
    with pytest.raises(GenerateError, match="found only 0 of 3 tasks"):
        generate(GenerateSpec(catalog=str(catalog), num_tasks=3, min_plan=5, max_plan=9))


def test_cli_writes_and_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = _catalog_with_orphan_fact(tmp_path)
    out = tmp_path / "s.json"
    assert cli_main(["envs", "generate", "--catalog", str(catalog), "--goal", "b", "--out", str(out)]) == 0
    assert load_suite(out).tasks[0].plan == (0, 1)
    assert cli_main(["envs", "check", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["tasks"] == 1
    bad = tmp_path / "bad.json"
    for argv in (
        ["--goal", "orphan"],
        ["--goal", "nope"],
        ["--goal", "b", "--start", "a", "--start", "a"],
    ):
        assert cli_main(["envs", "generate", "--catalog", str(catalog), *argv, "--out", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dspy-rl envs generate: ") and "\n" not in err and "Traceback" not in err
    assert not bad.exists()
