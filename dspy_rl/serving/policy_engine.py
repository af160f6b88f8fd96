"""Tool decisions from a trained `dspy-rl train` run: ranked tools with probabilities and the chosen argument.

An agent state is either the environment's observation vector (``{"obs": [...], "phase": 0|1, "tool_mask"?,
"arg_mask"?}``) or what an agent knows: the tools called so far and their results (``{"history": [{"tool": "ls",
"result": "success"}, ...]}``). A history is turned into an observation of the run's task suite the way the env
builds one: facts = those the successful tools added (start facts are unknown: none), last tool and last result
one-hot, step fraction; phase 0 (policy A) with an empty history, else 1 (policy B). ``tools`` restricts the ranking
to the tools an agent actually has. Policy C picks the argument (an index into the task's argument candidates) for
the top tool when that tool takes one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dspy_rl.envs.suite import (
    NUM_RESULTS,
    RESULT_EMPTY,
    RESULT_FAILURE,
    RESULT_NONE,
    RESULT_SUCCESS,
    load_suite,
)

logger = logging.getLogger(__name__)

RESULTS = {"none": RESULT_NONE, "success": RESULT_SUCCESS, "failure": RESULT_FAILURE, "empty": RESULT_EMPTY}


class BadState(ValueError):
    """An agent state that does not fit the policy (the message names the field)."""


class PolicyEngine:
    """The A/B/C policies of one run plus its suite's observation layout."""

    def __init__(self, checkpoint: str | Path) -> None:
        from dspy_rl.policies import load_policy
        from dspy_rl.utils.checkpoint import latest_checkpoint, load_checkpoint

        path = Path(checkpoint)
        if not path.exists():
            raise FileNotFoundError(
                f"checkpoint={str(checkpoint)!r} does not exist; pass a `dspy-rl train` run dir"
            )
        ckpt = latest_checkpoint(path) if path.is_dir() else path
        if ckpt is None:
            hint = (
                " (a text-GRPO run: serve it with `dspy-rl serve lm model=...`)"
                if (path / "final").is_dir()
                else ""
            )
            raise ValueError(f"checkpoint={str(checkpoint)!r} has no checkpoints/ckpt_*.pt{hint}")
        self.policy = load_policy(ckpt)
        state = load_checkpoint(ckpt)
        suite_name = (state.get("config") or {}).get("env", {}).get("suite", "default")
        self.suite = load_suite(suite_name)
        if self.suite.obs_dim != self.policy.obs_dim or len(self.suite.tools) != self.policy.num_tools:
            raise ValueError(
                f"checkpoint {ckpt} (obs_dim {self.policy.obs_dim}, {self.policy.num_tools} tools) does not match "
                f"suite {suite_name!r} (obs_dim {self.suite.obs_dim}, {len(self.suite.tools)} tools)"
            )
        self.checkpoint = str(ckpt)
        self.tool_names = [t.name for t in self.suite.tools]
        self.tool_index = {n: i for i, n in enumerate(self.tool_names)}
        nf = len(self.suite.facts)
        self._off_goal, self._off_tool = nf, 2 * nf
        self._off_result = self._off_tool + len(self.tool_names) + 1
        self._off_step = self._off_result + NUM_RESULTS + self.suite.num_args
        self.obs_dim = self.suite.obs_dim

    def info(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "suite": self.suite.name,
            "tools": self.tool_names,
            "num_args": self.suite.num_args,
            "obs_dim": self.obs_dim,
        }

    # ----- states -> arrays -----
    def _row(self, state: Any, where: str) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        if not isinstance(state, dict):
            raise BadState(f"{where}: expected an object with 'history' or 'obs'")
        tools_mask = np.ones(len(self.tool_names), dtype=bool)
        arg_mask = np.ones(self.suite.num_args, dtype=bool)
        if state.get("tools") is not None:
            allowed = state["tools"]
            if not isinstance(allowed, list) or not allowed:
                raise BadState(f"{where}.tools: expected a non-empty list of tool names")
            unknown = [t for t in allowed if t not in self.tool_index]
            if unknown:
                raise BadState(f"{where}.tools: unknown tools {unknown}; this policy knows {self.tool_names}")
            tools_mask[:] = False
            tools_mask[[self.tool_index[t] for t in allowed]] = True
        if "obs" in state:
            obs = state["obs"]
            if not isinstance(obs, list) or len(obs) != self.obs_dim:
                raise BadState(f"{where}.obs: expected a list of {self.obs_dim} numbers")
            try:
                row = np.asarray(obs, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise BadState(f"{where}.obs: expected numbers ({exc})") from exc
            phase = state.get("phase", 1)
            if phase not in (0, 1):
                raise BadState(f"{where}.phase: expected 0 (first step) or 1")
            for key, mask in (("tool_mask", tools_mask), ("arg_mask", arg_mask)):
                if state.get(key) is not None:
                    given = state[key]
                    if not isinstance(given, list) or len(given) != len(mask):
                        raise BadState(f"{where}.{key}: expected a list of {len(mask)} booleans")
                    mask &= np.asarray(given, dtype=bool)
            return row, int(phase), tools_mask, arg_mask
        history = state.get("history", [])
        if not isinstance(history, list):
            raise BadState(f"{where}.history: expected a list of {{tool, result}}")
        row = np.zeros(self.obs_dim, dtype=np.float32)
        facts, last_tool, last_result = 0, 0, RESULT_NONE
        for i, step in enumerate(history):
            if not isinstance(step, dict) or step.get("tool") not in self.tool_index:
                raise BadState(f"{where}.history[{i}].tool: expected one of {self.tool_names}")
            result = step.get("result", "success")
            if result not in RESULTS:
                raise BadState(f"{where}.history[{i}].result: expected one of {sorted(RESULTS)}")
            j = self.tool_index[step["tool"]]
            last_tool, last_result = j + 1, RESULTS[result]
            if last_result == RESULT_SUCCESS:
                facts |= self.suite.tools[j].adds
        for b in range(len(self.suite.facts)):
            if facts >> b & 1:
                row[b] = 1.0
        row[self._off_tool + last_tool] = 1.0
        row[self._off_result + last_result] = 1.0
        row[self._off_step] = min(1.0, len(history) / self.suite.episode_len)
        return row, (0 if not history else 1), tools_mask, arg_mask

    # ----- decisions -----
    @torch.inference_mode()
    def decide(self, states: list[Any], top_k: int | None = None) -> list[dict[str, Any]]:
        """One decision per state: ``{"tools": [{"tool", "prob"}...] best first, "tool", "arg", "arg_prob"}``."""
        if not states:
            return []
        rows = [self._row(s, f"states[{i}]") for i, s in enumerate(states)]
        obs = torch.from_numpy(np.stack([r[0] for r in rows]))
        phase = torch.tensor([r[1] for r in rows])
        tmask = torch.from_numpy(np.stack([r[2] for r in rows]))
        amask = torch.from_numpy(np.stack([r[3] for r in rows]))
        logits, _ = self.policy._tool_logits_values(obs, phase == 0)
        probs = torch.softmax(logits.masked_fill(~tmask, float("-inf")), -1)
        order = torch.argsort(probs, dim=-1, descending=True)
        arg_probs = torch.softmax(self.policy.nets["C"].actor(obs).masked_fill(~amask, float("-inf")), -1)
        arg_best = arg_probs.argmax(-1)
        out = []
        p, o = probs.numpy(), order.numpy()
        for i in range(len(states)):
            k = int(tmask[i].sum()) if top_k is None else min(top_k, int(tmask[i].sum()))
            ranked = [{"tool": self.tool_names[j], "prob": float(p[i, j])} for j in o[i, :k]]
            top = int(o[i, 0])
            takes = self.suite.tools[top].takes_arg
            out.append(
                {
                    "tools": ranked,
                    "tool": self.tool_names[top],
                    "arg": int(arg_best[i]) if takes else None,
                    "arg_prob": float(arg_probs[i, arg_best[i]]) if takes else None,
                }
            )
        return out
