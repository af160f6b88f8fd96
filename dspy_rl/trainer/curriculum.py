"""Curriculum over task suites: train on ``suites[0]`` until the rolling success rate reaches ``promote_at``, then
move to the next suite, keeping the weights (observation and action spaces padded to the largest suite,
:mod:`dspy_rl.envs.padded`). The last suite is trained until the run ends.

    dspy-rl train curriculum=[easy,default,hard,expert] curriculum.promote_at=0.9
    dspy-rl train --curriculum easy,default,hard,expert

The success rate is measured over the last ``window`` episodes of the current stage only, and counts once
``min_episodes`` of them have ended and every env has run ``episode_len`` steps in the stage (before that, only
episodes that succeeded early have ended, which biases the rate up). Each promotion is logged (``curriculum`` rows
in metrics.jsonl, the stage on the learning-curve plot) and saved in checkpoints, so ``resume=`` continues
mid-curriculum at the same stage.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dspy_rl.config import require


@dataclass
class CurriculumConfig:
    suites: list[str] = field(default_factory=list)
    """Suites in order (names in envs/suites or paths); empty: no curriculum (``env.suite`` is trained)."""
    promote_at: float = 0.9
    """Rolling success rate of the current stage at which the next suite starts."""
    window: int = 2000
    """Episodes in the rolling success rate."""
    min_episodes: int = 200
    """Episodes a stage must end before it can be promoted."""

    def __post_init__(self) -> None:
        require(0 < self.promote_at <= 1, "curriculum.promote_at", self.promote_at, "a float in (0, 1]")
        require(self.window >= 1, "curriculum.window", self.window, "an integer >= 1")
        require(self.min_episodes >= 1, "curriculum.min_episodes", self.min_episodes, "an integer >= 1")
        if self.suites:
            from dspy_rl.envs.suite import SuiteError, resolve_suite

            for i, name in enumerate(self.suites):
                try:
                    resolve_suite(name)
                except SuiteError as exc:
                    require(False, f"curriculum.suites[{i}]", name, f"a known suite ({exc})")


def curriculum_overrides(argv: Sequence[str]) -> list[str]:
    """``curriculum=[a,b]`` and ``--curriculum a,b`` as ``curriculum.suites=[a,b]`` (other tokens unchanged)."""
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        tok = argv[i]
        if tok.startswith("curriculum="):
            value = tok.partition("=")[2]
            out.append(f"curriculum.suites={value if value.startswith('[') else f'[{value}]'}")
        elif tok in ("--curriculum",) and i + 1 < len(argv):
            out.append(f"curriculum.suites=[{argv[i + 1]}]")
            next(it, None)
        elif tok.startswith("--curriculum="):
            out.append(f"curriculum.suites=[{tok.partition('=')[2]}]")
        else:
            out.append(tok)
    return out


class Curriculum:
    """Which stage is trained, and when to promote (see the module docstring)."""

    def __init__(self, cfg: CurriculumConfig, num_envs: int) -> None:
        if not cfg.suites:
            raise ValueError("a curriculum needs at least one suite")
        self.cfg = cfg
        self.num_envs = num_envs
        self.stage = 0
        self.stage_start_step = 0
        self.recent: deque[float] = deque(maxlen=cfg.window)
        self.events: list[dict[str, Any]] = []
        from dspy_rl.envs.suite import resolve_suite

        self.episode_lens = [int(json.loads(resolve_suite(s).read_text())["episode_len"]) for s in cfg.suites]

    @property
    def suite(self) -> str:
        return self.cfg.suites[self.stage]

    @property
    def last_stage(self) -> bool:
        return self.stage == len(self.cfg.suites) - 1

    def success_rate(self) -> float:
        return float(np.mean(self.recent)) if self.recent else 0.0

    def observe(self, successes: np.ndarray, env_steps: int, episode_len: int | None = None) -> bool:
        """Record the episodes that ended; ``True`` when this promotes to the next suite (at ``env_steps``).
        ``episode_len``: the current suite's (default: read from its file)."""
        episode_len = self.episode_lens[self.stage] if episode_len is None else episode_len
        self.recent.extend(np.asarray(successes, dtype=float).tolist())
        settled = (
            len(self.recent) >= self.cfg.min_episodes
            and env_steps - self.stage_start_step >= episode_len * self.num_envs
        )
        if self.last_stage or not settled or self.success_rate() < self.cfg.promote_at:
            return False
        self.events.append(
            {
                "env_steps": env_steps,
                "from": self.suite,
                "to": self.cfg.suites[self.stage + 1],
                "success_rate": self.success_rate(),
            }
        )
        self.stage += 1
        self.stage_start_step = env_steps
        self.recent.clear()
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "suites": list(self.cfg.suites),
            "stage": self.stage,
            "stage_start_step": self.stage_start_step,
            "recent": list(self.recent),
            "events": list(self.events),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["suites"]) != list(self.cfg.suites):
            raise ValueError(
                f"the checkpoint's curriculum {state['suites']} differs from curriculum.suites={self.cfg.suites}"
            )
        self.stage = int(state["stage"])
        self.stage_start_step = int(state["stage_start_step"])
        self.recent.clear()
        self.recent.extend(state["recent"])
        self.events = list(state["events"])
