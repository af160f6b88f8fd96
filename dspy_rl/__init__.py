"""dspy-rl: reinforcement learning for tool-using coding agents, on Ray."""

from __future__ import annotations

import logging
from pathlib import Path

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: The installed (or checked-out) package. The Hydra configs and the env data ship inside it, so an installed wheel
#: runs anywhere: ``dspy_rl/conf`` and ``dspy_rl/envs/data`` (in a checkout, links to the repository's ``conf/``
#: and ``envs/``, which the wheel build copies in).
PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """Directory holding the Hydra configs (``conf/``)."""
    return PACKAGE_DIR / "conf"


def envs_dir() -> Path:
    """Directory holding environment data: tool catalog, task suites, text tasks (``envs/``)."""
    return PACKAGE_DIR / "envs" / "data"


def source_checkout() -> Path | None:
    """The repository root when running from a source checkout (it holds pyproject.toml), else None (installed)."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "rust_env").is_dir() else None
