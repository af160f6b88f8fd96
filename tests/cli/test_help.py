"""Every ``dspy-rl <command> --help`` and ``<command> <subcommand> --help`` works, through the one renderer
(dspy_rl/cli/help.py): exit 0, the usage, and for Hydra-configured commands every setting with its default and
its documentation (a setting without a docstring in its schema fails here)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from dspy_rl.cli import COMMANDS
from dspy_rl.cli import main as dspy_rl_main

CASES = [[name] for name in COMMANDS] + [
    [name, sub]
    for name, (module, _) in COMMANDS.items()
    for sub in getattr(importlib.import_module(module), "SUBCOMMANDS", {})
]
#: commands without Hydra settings of their own (they list subcommands or flags)
NO_SETTINGS = {
    ("grpo",),
    ("serve",),
    ("stream",),
    ("submit",),
    ("shell",),
    ("shell", "exec"),
    ("shell", "check"),
    ("envs",),
}


def _undocumented(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("settings"))
    return [
        line.strip()
        for n, line in enumerate(lines[start + 1 :], start + 1)
        if line.startswith("  ") and not line.startswith("      ")
        and not (n + 1 < len(lines) and lines[n + 1].startswith("      "))
    ]  # fmt: skip


@pytest.mark.parametrize("argv", CASES, ids=" ".join)
def test_help(argv: list[str], capsys) -> None:
    assert dspy_rl_main([*argv, "--help"]) == 0
    text = capsys.readouterr().out
    assert "dspy-rl" in text
    if tuple(argv) in NO_SETTINGS:
        assert "subcommands:" in text or "usage:" in text
    else:
        assert "settings (key=value" in text
        assert not _undocumented(text), f"settings without documentation: {_undocumented(text)}"


def test_top_level_help_and_the_console_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dspy_rl", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and all(name in proc.stdout for name in COMMANDS)
