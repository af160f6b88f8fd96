"""Auto mode's ``--apply-policy``: after a trained cycle, run ``dspy-rl grpo apply-policy`` on the workspace.

``grpo apply-policy`` (issue 16) writes ``<workspace>/.dspy_policy.yaml`` from the recent actions in the trace store
(the same store and look-back window as the cycle). An installation without it fails auto mode at start with one
line (:func:`check_available`) instead of failing each cycle.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

SUBCOMMAND = "apply-policy"
logger = logging.getLogger(__name__)


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


def apply_policy(store: str, hours: float | None, workspace: str | None) -> dict[str, Any]:
    """``dspy-rl grpo apply-policy --workspace DIR --hours H store=DB``; returns its exit code and output tail."""
    argv = [
        sys.executable,
        "-m",
        "dspy_rl",
        "grpo",
        SUBCOMMAND,
        "--workspace",
        str(workspace),
        f"store={store}",
    ]
    if hours is not None:
        argv += ["--hours", str(hours)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        logger.warning(
            "grpo apply-policy exited %d: %s", proc.returncode, (proc.stderr or proc.stdout)[-500:]
        )
    return {"returncode": proc.returncode, "policy_file": str(Path(str(workspace)) / ".dspy_policy.yaml"),
            "output": (proc.stdout + proc.stderr)[-2000:]}  # fmt: skip
