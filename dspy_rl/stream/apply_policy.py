"""Auto mode's ``--apply-policy``: after a trained cycle, run ``dspy-rl grpo apply-policy`` on the workspace.

``grpo apply-policy`` (writes ``.dspy_policy.yaml`` into an agent's workspace) belongs to issue 16. Until this
installation has it, :func:`check_available` fails auto mode at start with one line instead of failing each cycle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

SUBCOMMAND = "apply-policy"


def available() -> bool:
    """Whether ``dspy-rl grpo apply-policy`` exists in this installation (asks the command's own usage text,
    as a driver may not import the commands layer)."""
    proc = subprocess.run([sys.executable, "-m", "dspy_rl", "grpo", "--help"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    return SUBCOMMAND in proc.stdout


def check_available(workspace: str | None) -> str | None:
    """None when ``--apply-policy`` can run, else the one-line reason."""
    if not available():
        return (
            "auto.apply_policy=true needs `dspy-rl grpo apply-policy` (issue 16), which this installation does not "
            "have yet; run without --apply-policy"
        )
    if not workspace or not Path(workspace).is_dir():
        return f"auto.workspace={workspace!r} must be an existing directory when --apply-policy is set (--workspace DIR)"
    return None


def apply_policy(state_dir: Path, levels: list[str], workspace: str | None) -> dict[str, Any]:
    """Apply the most specific trained level's policy to ``workspace``; returns exit code and output tail."""
    level = next((lv for lv in ("patch", "signature", "global") if lv in levels), levels[0])
    policy_dir = state_dir / f"ckpts_{level}"
    argv = [sys.executable, "-m", "dspy_rl", "grpo", SUBCOMMAND, "--policy", str(policy_dir),
            "--workspace", str(workspace)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    return {"level": level, "returncode": proc.returncode, "output": (proc.stdout + proc.stderr)[-2000:]}
