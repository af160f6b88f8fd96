"""Each setting is declared once, in its Hydra structured schema (type, default, docstring): every key of a
command's schema can be set on its command line, and no YAML file in conf/ repeats a schema default."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import dspy_rl
from dspy_rl.config import compose
from dspy_rl.dashboard.config import DashboardConfig
from dspy_rl.envs.config import EnvConfig
from dspy_rl.evaluation import EvalConfig
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.judges.command_config import JudgeCommandConfig
from dspy_rl.judges.config import ServeConfig
from dspy_rl.stream.config import SourceConfig, StreamConfig
from dspy_rl.sweeps.config import SweepConfig
from dspy_rl.traces.mining import MineConfig
from dspy_rl.trainer.config import AlgoConfig, RuntimeConfig, TrainConfig
from dspy_rl.utils.run_logger import LoggingConfig

COMMANDS = {
    "train": TrainConfig,
    "eval": EvalConfig,
    "grpo": GRPOTrainConfig,
    "stream": StreamConfig,
    "serve": ServeConfig,
    "mine": MineConfig,
    "sweep": SweepConfig,
    "judge": JudgeCommandConfig,
    "dashboard": DashboardConfig,
}
#: conf/ file or group directory -> the schema its keys belong to
SCHEMAS = {
    **{f"{name}.yaml": schema for name, schema in COMMANDS.items()},
    "env": EnvConfig,
    "algo": AlgoConfig,
    "runtime": RuntimeConfig,
    "logging": LoggingConfig,
    "stream": SourceConfig,
}


def _leaves(cfg, prefix: str = ""):
    for key, value in cfg.items():
        if OmegaConf.is_dict(value) and len(value):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_schema_key_can_be_set_on_the_command_line(command: str) -> None:
    schema = OmegaConf.structured(COMMANDS[command])
    values = {
        key: OmegaConf.select(schema, key)
        for key, value in _leaves(schema)
        if not (OmegaConf.is_list(value) or OmegaConf.is_dict(value) or OmegaConf.is_missing(schema, key))
    }
    composed = compose(command, [f"{k}={'null' if v is None else v}" for k, v in values.items()])
    assert {k: OmegaConf.select(composed, k) for k in values} == values


def _yaml_files() -> list[tuple[Path, type]]:
    conf = dspy_rl.conf_dir()
    files = []
    for where, schema in SCHEMAS.items():
        path = conf / where
        files += [(p, schema) for p in sorted(path.glob("*.yaml"))] if path.is_dir() else [(path, schema)]
    return files


@pytest.mark.parametrize(("path", "schema"), _yaml_files(), ids=lambda x: getattr(x, "name", ""))
def test_no_yaml_repeats_a_schema_default(path: Path, schema: type) -> None:
    defaults = OmegaConf.structured(schema)
    data = OmegaConf.load(path)
    repeated = [
        key
        for key, value in _leaves(data)
        if key != "defaults"
        and OmegaConf.select(defaults, key, default="<absent>") != "<absent>"
        and OmegaConf.to_container(OmegaConf.create({"v": value}))["v"]
        == OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(defaults, key)}))["v"]
    ]
    assert not repeated, (
        f"{path.name} repeats schema defaults (declare settings once, in {schema.__name__}): {repeated}"
    )
