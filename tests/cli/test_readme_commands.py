"""Every shell command the README shows (its ```bash blocks) runs and exits 0.

Commands run in README order in one scratch directory (so ``dspy-rl stream ingest`` feeds ``grpo mine``, which
feeds ``grpo train``), through the console script of this environment, with small budgets:

* a setting in :data:`BUDGET` for the command is set to the budget value, replacing the README's value if it has
  one, else appended (``total_env_steps=2000000`` runs as ``total_env_steps=2048``; ``steps=1000`` as ``steps=3``);
* ``resume=<dir>`` points at a run the test trains first; ``--address http://127.0.0.1:8265`` at a real local head
  node (``ray start --head`` with free ports, tests/train/_helpers.py ``ray_head``);
* :data:`NOT_RUN` names the few commands not run here and why. A README command that is neither run nor listed
  fails :func:`test_every_readme_command_is_covered`.

Commands that start Ray actors, Serve, a head node or many trials are ``slow``; the rest run by default.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: command prefix -> settings that keep it small (replacing the README's value of the same key, else appended)
BUDGET: dict[str, dict[str, str]] = {
    "dspy-rl train": {
        "total_env_steps": "2048",
        "env.num_envs": "32",
        "algo.rollout_len": "16",
        "eval_episodes": "64",
        "logging.progress_bar": "false",
        "logging.plot": "false",
    },
    "dspy-rl submit": {
        "total_env_steps": "2048",
        "env.num_envs": "32",
        "algo.rollout_len": "16",
        "runtime.num_env_runners": "1",
        "runtime.num_learners": "0",
        "runtime.adaptive_runners": "false",
        "logging.progress_bar": "false",
    },
    "dspy-rl grpo train": {"steps": "3", "logging.progress_bar": "false", "logging.tensorboard": "false"},
    "dspy-rl eval": {"episodes": "200"},
    "dspy-rl sweep": {
        "num_samples": "2",
        "max_concurrent": "1",
        "num_cpus": "2",
        "plot": "false",
    },
}
BUDGET["dspy-rl stream auto"] = {
    "auto.max_cycles": "1"
}  # one cycle, then exit (the README's runs until stopped)
BUDGET["ray job submit"] = BUDGET["dspy-rl submit"]
# ShellEnv runs every tool call as a sandboxed command: far fewer env steps fit in the same time.
BUDGET["dspy-rl eval env=shell"] = {"episodes": "8", "env.num_envs": "8"}
BUDGET["dspy-rl train env=shell"] = {
    **BUDGET["dspy-rl train"],
    "total_env_steps": "64",
    "env.num_envs": "8",
    "eval_episodes": "8",
}
BUDGET["dspy-rl grpo train mode=online task=shell"] = {**BUDGET["dspy-rl grpo train"], "steps": "2"}
#: the shipped sample span events are older than any look-back window: mine them all
BUDGET["dspy-rl grpo apply-policy"] = {"hours": "10000000"}
#: the README's sweep over PPO also gets a small training budget per trial
SWEEP_PPO_BUDGET = ["sweep.parameters.total_env_steps={space:log,min:2048,max:4096,type:int}"]

#: README commands this test does not run, and why
NOT_RUN = {
    "make train": "sets up .venv and trains to 0.9 success (minutes); `dspy-rl train` is run below",
    "make test": "runs this test suite",
    "ray start --head --node-ip-address=127.0.0.1": "started for the submit commands by ray_head (the same flags, "
    "plus free ports so it cannot collide with other Ray instances)",
    **dict.fromkeys(
        [
            "dspy-rl dashboard",
            "dspy-rl dashboard runs_dir=/data/runs port=0 page_size=100",
            "DSPY_RL_DASHBOARD_TOKEN=secret dspy-rl dashboard auth_token_env=DSPY_RL_DASHBOARD_TOKEN",
            "dspy-rl dashboard serve=true route_prefix=/dash",
            "curl -s 127.0.0.1:8270/api/rl/sessions?status=live",
            "curl -s 127.0.0.1:8270/metrics",
        ],
        "a server that runs until Ctrl-C, or a request to one: tests/dashboard/ starts `dspy-rl dashboard` (uvicorn "
        "and Serve, with a token) over real runs and requests every endpoint",
    ),
}
#: servers that run until stopped: started, queried over HTTP and stopped by tests/serving/ (not by this test)
SERVERS = ("dspy-rl serve lm", "dspy-rl serve proxy", "dspy-rl serve policy", "dspy-rl serve judges")
#: paths in README examples that the test creates in its scratch directory
SCRATCH_PATHS = {"/tmp/ws": "ws"}
#: commands run only with -m slow (Ray actors, a head node, DDP learners, sweeps)
FAST_PREFIXES = (
    "dspy-rl judge",
    "dspy-rl eval",
    "dspy-rl stream ingest",
    "dspy-rl grpo",
    "dspy-rl shell",
    "dspy-rl rl",
    "dspy-rl system",
)


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split(" #")[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def _budgeted(command: str) -> list[str]:
    argv = shlex.split(command)
    prefix = next((p for p in sorted(BUDGET, key=len, reverse=True) if command.startswith(p)), None)
    if prefix is None:
        return argv
    budget = dict(BUDGET[prefix])
    out = []
    for i, tok in enumerate(argv):
        key, eq, _ = tok.partition("=")
        flag = tok[2:].replace("-", "_") if tok.startswith("--") and not eq else None
        if eq and key in budget:
            out.append(f"{key}={budget.pop(key)}")
        elif flag in budget and i + 1 < len(argv):
            out.append(tok)
            argv[i + 1] = budget.pop(flag)  # the flag's value, replaced
        else:
            out.append(tok)
    if prefix == "dspy-rl sweep" and "sweep=" not in command:
        out += SWEEP_PPO_BUDGET
    return out + [f"{k}={v}" for k, v in budget.items()]


def test_every_readme_command_is_covered() -> None:
    commands = readme_commands()
    assert len(commands) >= 15
    for command in commands:
        assert command in NOT_RUN or command.startswith(("dspy-rl ", "ray job submit")), command
        if command.startswith(SERVERS):
            assert "dspy-rl serve" in command
    assert set(NOT_RUN) <= set(commands), "NOT_RUN lists commands the README no longer shows"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{REPO}:{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(REPO)
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _cases() -> list:
    cases = []
    for command in readme_commands():
        if command in NOT_RUN or command.startswith(SERVERS):
            continue
        marks = [] if command.startswith(FAST_PREFIXES) else [pytest.mark.slow]
        cases.append(pytest.param(command, marks=marks, id=command[:70]))
    return cases


@pytest.mark.parametrize("command", _cases())
def test_readme_command_runs(command: str, workdir: Path) -> None:
    import torch

    argv, env = _budgeted(command), _env()
    for path, scratch in SCRATCH_PATHS.items():
        if path in argv:
            (workdir / scratch).mkdir(exist_ok=True)
            argv = [str(workdir / scratch) if a == path else a for a in argv]
    if argv[:2] == ["dspy-rl", "shell"]:
        probe = subprocess.run(
            ["dspy-rl", "shell", "check"], env=env, capture_output=True, text=True, timeout=120
        )
        if probe.returncode == 3:
            pytest.skip(f"the sandbox is unavailable on this kernel: {probe.stderr.strip()}")
    if "runtime=single_gpu" in argv and not torch.cuda.is_available():
        pytest.skip("runtime=single_gpu puts the learner on CUDA; this machine has no GPU")
    if argv[:2] == ["dspy-rl", "train"] and not any(a.startswith(("resume=", "run_dir=")) for a in argv):
        argv.append(f"run_dir=runs/train/readme-{abs(hash(command)) % 10**8}")
    if any(a.startswith("resume=") for a in argv):
        base = workdir / "runs" / "train" / "readme-resume"
        _run([*_budgeted("dspy-rl train"), "runtime.num_env_runners=0", f"run_dir={base}"], workdir, env)
        argv = [f"resume={base}" if a.startswith("resume=") else a for a in argv]
        argv = [a if not a.startswith("total_env_steps=") else "total_env_steps=4096" for a in argv]
    if "--address" in argv:
        sys.path.insert(0, str(REPO / "tests"))
        from train._helpers import ray_head

        with ray_head(sys.executable, env) as (address, head_env, _):
            argv = [address if a == "http://127.0.0.1:8265" else a for a in argv]
            _run(argv, workdir, head_env)
        return
    _run(argv, workdir, env)
