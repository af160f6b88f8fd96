"""dspy-rl: reinforcement learning for tool-using coding agents, on Ray."""

from __future__ import annotations

import logging
from pathlib import Path

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: Repository root when running from a checkout (conf/ and envs/ live there).
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def conf_dir() -> Path:
    """Directory holding the Hydra configs (``conf/``)."""
    return REPO_ROOT / "conf"


def envs_dir() -> Path:
    """Directory holding environment data: tool catalog and task suites (``envs/``)."""
    return REPO_ROOT / "envs"
