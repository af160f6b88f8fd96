"""Configuration of ``dspy-rl grpo train`` (schema of ``conf/grpo.yaml``), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from dspy_rl.config import require
from dspy_rl.envs.objectives import OBJECTIVES, ObjectivesConfig
from dspy_rl.system.guard import GuardConfig
from dspy_rl.utils.convergence import ConvergenceConfig
from dspy_rl.utils.run_logger import LoggingConfig


@dataclass
class GRPOTrainConfig:
    """Text GRPO training: offline on grouped JSONL, or online against a reward function."""

    mode: str = "offline"
    """`offline`: train on the groups of `dataset`; `online`: sample `group_size` completions per prompt of `task`."""
    dataset: str | None = None
    """Grouped JSONL file (one `{"prompt", "candidates": [{"text", "reward"}], "meta"}` a line); offline mode."""
    on_bad_line: str = "skip"
    """What an invalid dataset line does: `skip` (report its line number and reason, go on) or `fail` (stop)."""
    task: str = "tool_commands"
    """Online mode: verifiable task name in envs/text_tasks/ (or a path to its .yaml) providing the prompts, or
    `shell:<suite>` (ShellEnv: each completion runs as a sandboxed command, rewarded 1 when the task's verifier passes)."""
    reward: str = "rubric"
    """Online reward: `rubric` (the task's verifiable rubric), `judges` (judge ensemble client) or `module:callable`."""
    reward_kwargs: dict[str, Any] = field(default_factory=dict)
    """`reward=judges`: JudgeClient arguments (transport=handle|http, app_name, url, token, max_batch, timeout_s)."""
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)
    """Online mode: weights of the global objectives in the reward (dspy_rl/grpo/objectives.py). `reward=rubric`
    splits its score into query_satisfaction (right tool and argument) and quality (a bare two-word command);
    `reward=judges` gives each judge's score to the objective `objective_judges` names. All 1: the reward as is."""
    objective_judges: dict[str, str] = field(
        default_factory=lambda: {
            "rubric": "quality",
            "transformer": "quality",
            "embedding": "query_satisfaction",
            "llm": "query_satisfaction",
        }
    )
    """`reward=judges`: the objective each judge of the ensemble scores (judge name -> objective name)."""
    convergence: ConvergenceConfig = field(default_factory=lambda: ConvergenceConfig(metric="reward_mean"))
    """Plateau test on a per-step metric (`reward_mean`, `eval_reward`, `objective/<name>`) that ends the run early
    with status `converged` (dspy_rl/utils/convergence.py; `min_env_steps` counts steps here)."""
    model: str = "bow"
    """Policy: `bow` (bag-of-words linear LM), `tiny-gpt2` (a tiny GPT-2 built from a config with a word-level
    tokenizer over the data), a saved bow/HF model directory, or a Hugging Face hub name (local cache only offline)."""
    tiny_layers: int = 2
    """`model=tiny-gpt2`: transformer layers."""
    tiny_embd: int = 64
    """`model=tiny-gpt2`: hidden size (a multiple of `tiny_heads`)."""
    tiny_heads: int = 2
    """`model=tiny-gpt2`: attention heads."""
    gradient_checkpointing: bool = False
    """Hugging Face policies (not `bow`): recompute transformer activations in backward instead of storing them
    (`model.gradient_checkpointing_enable()`, `use_cache=False`): less peak memory for about one extra forward."""
    steps: int = 1000
    """Training steps (one batch of groups, `updates_per_batch` optimizer steps, one LR-scheduler step each)."""
    batch_groups: int = 8
    """Groups (prompts) per step."""
    group_size: int = 8
    """Online mode: completions sampled per prompt (G)."""
    max_new_tokens: int = 8
    """Online mode: longest completion, in tokens (eos included)."""
    temperature: float = 1.0
    """Sampling temperature; log-probs are computed at the same temperature."""
    lr: float = 1e-3
    """AdamW learning rate."""
    lr_step: int = 1000
    """StepLR: multiply the learning rate by `lr_gamma` every `lr_step` steps."""
    lr_gamma: float = 1.0
    """StepLR decay factor in (0, 1]."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0 disables clipping)."""
    clip_eps: float = 0.2
    """Importance ratio is clipped to [1 - clip_eps, 1 + clip_eps_high]."""
    clip_eps_high: float | None = None
    """Upper clip range; null means clip_eps."""
    kl_target: float = 0.04
    """KL coefficient beta reached after the warm-up (0 disables the reference model entirely)."""
    kl_warmup: int = 100
    """Steps over which beta grows linearly from 0 to kl_target."""
    adv_eps: float = 1e-6
    """Added to the group reward std when standardizing advantages."""
    scale_adv_by_std: bool = True
    """Divide advantages by the group std (GRPO); false keeps only the group-mean baseline."""
    aggregation: str = "sequence"
    """Loss averaging: `sequence` (tokens within a response, then responses) or `token` (all tokens)."""
    updates_per_batch: int = 1
    """Optimizer steps per batch; with more than one the ratio departs from 1 and clipping matters."""
    drop_no_signal: bool = False
    """Leave groups with all-equal rewards out of the update. Saves compute, but their KL term no longer acts, so
    an online policy that collapsed (all G samples alike) gets no pull back toward the reference."""
    seed: int = 0
    """Seed for data order, sampling and initialization."""
    device: str = "auto"
    """`auto` (CUDA if available, with bf16 autocast), `cpu`, `cuda` or `cuda:N`."""
    torch_threads: int = 0
    """CPU threads for torch ops (torch.set_num_threads); 0 keeps torch's default. Tiny models run fastest with 1."""
    run_dir: str | None = None
    """Where to write config, metrics.jsonl, TensorBoard events, checkpoints; default runs/grpo/<timestamp>."""
    resume: str | None = None
    """A previous run directory: continue from its last checkpoint with the same step count."""
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(log_every=10))
    """Metrics sinks (metrics.jsonl always; TensorBoard, W&B, progress bar, learning curve), as for ``dspy-rl
    train``; ``logging.log_every`` counts steps."""
    ckpt_every: int = 100
    """Write an (atomic) checkpoint every this many steps, and at the end."""
    eval_every: int = 0
    """Online mode: every this many steps, mean reward of one sampled completion per task prompt; 0 disables."""
    guard: GuardConfig = field(default_factory=GuardConfig)
    """Capacity guard checked before the run starts (free disk at the run directory, RAM, VRAM)."""
    heldout_fraction: float = 0.0
    """Offline mode: share of the groups held out of training; the policy's ranking of their candidates (top-1
    accuracy, policy-weighted reward) is measured before and after training (dspy_rl/grpo/heldout.py). 0: off."""

    def __post_init__(self) -> None:
        require(self.mode in ("offline", "online"), "mode", self.mode, "'offline' or 'online'")
        require(
            self.mode != "offline" or bool(self.dataset),
            "dataset",
            self.dataset,
            "a grouped JSONL file path in offline mode (or mode=online task=<name>)",
        )
        require(self.on_bad_line in ("skip", "fail"), "on_bad_line", self.on_bad_line, "'skip' or 'fail'")
        require(bool(self.model), "model", self.model, "bow, tiny-gpt2, a model directory or a hub name")
        require(
            not (self.gradient_checkpointing and self.model == "bow"),
            "gradient_checkpointing",
            self.gradient_checkpointing,
            "false with model=bow (only Hugging Face policies, e.g. model=tiny-gpt2, support it)",
        )
        require(self.steps >= 1, "steps", self.steps, "an int >= 1")
        require(self.batch_groups >= 1, "batch_groups", self.batch_groups, "an int >= 1")
        require(
            self.group_size >= 2,
            "group_size",
            self.group_size,
            "an int >= 2 (advantages compare within a group)",
        )
        require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, "an int >= 1")
        require(self.temperature > 0, "temperature", self.temperature, "a float > 0")
        require(self.lr > 0, "lr", self.lr, "a float > 0")
        require(self.lr_step >= 1, "lr_step", self.lr_step, "an int >= 1")
        require(0 < self.lr_gamma <= 1, "lr_gamma", self.lr_gamma, "a float in (0, 1]")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a float >= 0")
        require(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, "a float >= 0 (0 disables)")
        require(0 < self.clip_eps < 1, "clip_eps", self.clip_eps, "a float in (0, 1)")
        require(
            self.clip_eps_high is None or self.clip_eps_high > 0,
            "clip_eps_high",
            self.clip_eps_high,
            "null or a float > 0",
        )
        require(self.kl_target >= 0, "kl_target", self.kl_target, "a float >= 0")
        require(self.kl_warmup >= 0, "kl_warmup", self.kl_warmup, "an int >= 0")
        require(self.adv_eps >= 0, "adv_eps", self.adv_eps, "a float >= 0")
        require(
            self.aggregation in ("sequence", "token"),
            "aggregation",
            self.aggregation,
            "'sequence' or 'token'",
        )
        require(self.updates_per_batch >= 1, "updates_per_batch", self.updates_per_batch, "an int >= 1")
        require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "device",
            self.device,
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        require(
            self.torch_threads >= 0, "torch_threads", self.torch_threads, "an int >= 0 (0: torch default)"
        )
        require(self.ckpt_every >= 1, "ckpt_every", self.ckpt_every, "an int >= 1")
        require(self.eval_every >= 0, "eval_every", self.eval_every, "an int >= 0")
        require(
            0 <= self.heldout_fraction < 1, "heldout_fraction", self.heldout_fraction, "a float in [0, 1)"
        )
        require(
            self.mode == "online" or bool((self.objectives.vector() == 1).all()),
            "objectives.weights",
            dict(self.objectives.weights),
            "all 1 in offline mode (the dataset's rewards are not split into objectives); use mode=online",
        )
        bad = {j: o for j, o in self.objective_judges.items() if o not in OBJECTIVES}
        require(not bad, "objective_judges", bad, f"judge -> objective names among {', '.join(OBJECTIVES)}")
        require(
            self.tiny_layers >= 1 and self.tiny_heads >= 1 and self.tiny_embd % self.tiny_heads == 0,
            "tiny_embd",
            self.tiny_embd,
            f"a multiple of tiny_heads={self.tiny_heads} (with tiny_layers >= 1)",
        )


ConfigStore.instance().store(name="grpo_schema", node=GRPOTrainConfig)
