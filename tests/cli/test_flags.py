"""``--flag value`` aliases and retired flags (dspy_rl.config.flags_to_overrides), the extension point for the
seeds' command names: an alias maps a flag to its key; a retired flag fails in one line naming its replacement."""

from __future__ import annotations

import pytest

from dspy_rl.config import ConfigError, compose, flags_to_overrides


def test_aliases_switches_and_plain_overrides() -> None:
    out = flags_to_overrides(
        ["--steps", "100", "--continuous", "--wandb-project=x", "algo.lr=0.1", "--max-iterations", "3"],
        {"steps": "total_env_steps"},
    )
    assert out == [
        "total_env_steps=100",
        "continuous=true",
        "wandb_project=x",
        "algo.lr=0.1",
        "max_iterations=3",
    ]


def test_retired_flag_names_its_replacement() -> None:
    retired = {"reddb-url": "traces go to the SQLite store: store=<path>"}
    with pytest.raises(
        ConfigError, match=r"^--reddb-url is no longer supported: traces go to the SQLite store"
    ):
        flags_to_overrides(["--reddb-url", "redis://x"], retired=retired)
    with pytest.raises(ConfigError, match="--reddb_url is no longer supported"):
        compose("train", ["--reddb_url=x"], retired=retired)


def test_a_bare_word_is_refused() -> None:
    with pytest.raises(ConfigError, match="unexpected argument 'fast'"):
        flags_to_overrides(["fast"])
