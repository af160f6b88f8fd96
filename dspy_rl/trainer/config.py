"""Structured configs (Hydra ConfigStore) for ``dspy-rl train``.

Types are checked by OmegaConf when the YAML in ``conf/`` and the command line are merged into these
dataclasses; ranges are checked in ``__post_init__`` and fail with the key, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from dspy_rl.config import require
from dspy_rl.envs.config import EnvConfig
from dspy_rl.envs.objectives import ObjectivesConfig
from dspy_rl.system.guard import GuardConfig
from dspy_rl.trainer.curriculum import CurriculumConfig
from dspy_rl.utils.convergence import ConvergenceConfig
from dspy_rl.utils.run_logger import LoggingConfig


@dataclass
class AlgoConfig:
    name: str = "ppo"
    """``ppo`` (multi-policy PPO with critics and GAE), ``grpo`` (group-relative, critic-free; groups of
    ``group_size`` rollouts replayed from one env snapshot) or ``gigpo`` (GRPO plus step-level advantages from
    identical states within a group, :mod:`dspy_rl.learners.gigpo`)."""
    rollout_len: int = 16
    """Steps per env per iteration."""
    lr: float = 1e-2
    """Adam learning rate (one optimizer per policy)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip range."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    epochs: int = 1
    """Passes over each batch."""
    minibatch_size: int = 4096
    """Samples per gradient step (split across learners when there are several)."""
    max_grad_norm: float = 1.0
    """Per-policy gradient norm clip."""
    hidden: int = 64
    """Hidden width of every actor and critic MLP (two layers)."""
    group_size: int = 8
    """GRPO: rollouts per group (all from one snapshot); ``env.num_envs`` must be a multiple of it."""
    kl_target: float = 0.01
    """GRPO: final weight of the KL penalty to the frozen reference policies."""
    kl_warmup: int = 10
    """GRPO: iterations over which the KL weight rises linearly from 0 to ``kl_target``."""
    step_weight: float = 1.0
    """GiGPO (``algo=gigpo``): weight of the step-level advantage (identical states within a group, returns
    discounted by ``gamma``) added to the episode-level group advantage; ignored by ppo and grpo."""

    def __post_init__(self) -> None:
        require(self.name in ("ppo", "grpo", "gigpo"), "algo.name", self.name, "'ppo', 'grpo' or 'gigpo'")
        require(self.step_weight >= 0, "algo.step_weight", self.step_weight, "a float >= 0")
        require(self.group_size >= 2, "algo.group_size", self.group_size, "an integer >= 2")
        require(self.kl_target >= 0, "algo.kl_target", self.kl_target, "a float >= 0")
        require(self.kl_warmup >= 0, "algo.kl_warmup", self.kl_warmup, "an integer >= 0")
        require(self.rollout_len >= 1, "algo.rollout_len", self.rollout_len, "an integer >= 1")
        require(0 < self.lr < 1, "algo.lr", self.lr, "a float in (0, 1)")
        require(0 < self.gamma <= 1, "algo.gamma", self.gamma, "a float in (0, 1]")
        require(0 <= self.gae_lambda <= 1, "algo.gae_lambda", self.gae_lambda, "a float in [0, 1]")
        require(0 < self.clip < 1, "algo.clip", self.clip, "a float in (0, 1)")
        require(self.vf_coef >= 0, "algo.vf_coef", self.vf_coef, "a float >= 0")
        require(self.ent_coef >= 0, "algo.ent_coef", self.ent_coef, "a float >= 0")
        require(self.epochs >= 1, "algo.epochs", self.epochs, "an integer >= 1")
        require(self.minibatch_size >= 1, "algo.minibatch_size", self.minibatch_size, "an integer >= 1")
        require(self.max_grad_norm > 0, "algo.max_grad_norm", self.max_grad_norm, "a float > 0")
        require(self.hidden >= 1, "algo.hidden", self.hidden, "an integer >= 1")


@dataclass
class RuntimeConfig:
    num_env_runners: int = 1
    """EnvRunner Ray actors (0 = sample in the driver)."""
    num_learners: int = 0
    """Learner Ray actors (0 = learn in the driver; >1 = torch DDP, gloo on CPU / NCCL on GPU)."""
    device: str = "auto"
    """Learner device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    mixed_precision: bool = False
    """bf16 autocast in the learner when on CUDA."""
    compile: bool = False
    """Run the policy networks' forward in the learner update through ``torch.compile`` (default mode). The first
    update pays the compilation (1.5-4 minutes on a loaded 2-core CPU; slower per update there than eager, see
    bench/RESULTS.md); if compiling fails (e.g. no C compiler), one warning names
    the reason and the update runs eagerly. Checkpoints and the weights sent to runners stay plain state dicts."""
    ray_address: str | None = None
    """``null`` starts Ray in-process; ``auto`` or an address connects to a running cluster."""
    num_cpus: int | None = None
    """CPUs given to an in-process Ray instance (null = all)."""
    node_ip: str | None = None
    """Address of an in-process Ray instance (null: 127.0.0.1, so that no Ray process listens on another
    interface; set the machine's IP only to let other machines join)."""
    torch_threads: int = 1
    """Intra-op threads of a CPU learner in the driver. More help only with large minibatches on an otherwise
    idle machine; oversubscribed OpenMP threads slow small-batch updates by an order of magnitude."""
    async_sampling: bool = True
    """With EnvRunner actors, sample the next batch while the learner trains on this one (one update of policy
    lag, corrected by PPO's importance ratio); ``false`` alternates sampling and learning."""
    adaptive_runners: bool = False
    """Grow/shrink the EnvRunner pool with the adaptive concurrency controller."""
    max_env_runners: int = 4
    """Upper bound on the EnvRunner pool when ``adaptive_runners`` is on."""
    runner_timeout_s: float | None = 600.0
    """Seconds an EnvRunner may take to return one rollout (counted from the request, or from when a fresh actor
    is up); a runner past it is killed, replaced and its rollout sampled again (null = wait forever)."""
    runner_resource: str | None = None
    """A custom Ray resource each EnvRunner asks one unit of, e.g. ``worker`` to place the runners on nodes started
    with ``ray start --resources='{"worker": N}'``; once no live node offers it, replacements go to any node."""

    def __post_init__(self) -> None:
        require(self.num_env_runners >= 0, "runtime.num_env_runners", self.num_env_runners, "an integer >= 0")
        require(self.num_learners >= 0, "runtime.num_learners", self.num_learners, "an integer >= 0")
        require(self.torch_threads >= 1, "runtime.torch_threads", self.torch_threads, "an integer >= 1")
        require(
            self.runner_timeout_s is None or self.runner_timeout_s > 0,
            "runtime.runner_timeout_s",
            self.runner_timeout_s,
            "a number of seconds > 0, or null to wait forever",
        )
        require(
            self.runner_resource is None or bool(self.runner_resource.strip()),
            "runtime.runner_resource",
            self.runner_resource,
            "a Ray custom resource name, or null",
        )
        require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "runtime.device",
            self.device,
            "'auto', 'cpu', 'cuda' or 'cuda:<index>'",
        )
        require(
            self.max_env_runners >= max(1, self.num_env_runners),
            "runtime.max_env_runners",
            self.max_env_runners,
            f"an integer >= runtime.num_env_runners ({self.num_env_runners})",
        )


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    """Environment settings (group ``env/``)."""
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    """Algorithm settings (group ``algo/``)."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    """Ray topology and device (group ``runtime/``)."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Logging settings (group ``logging/``)."""
    guard: GuardConfig = field(default_factory=GuardConfig)
    """Capacity guard checked before the run starts (free disk at the run directory, RAM, VRAM)."""
    total_env_steps: int = 500_000
    """Stop after this many env steps."""
    target_success: float | None = None
    """Stop early once the rolling success rate reaches this value (null = never)."""
    seed: int = 0
    """Seed for torch, numpy and the policies' sampling."""
    run_dir: str | None = None
    """Run directory (default ``runs/train/<timestamp>``)."""
    resume: str | None = None
    """A previous run directory to continue from its last checkpoint."""
    checkpoint_every: int = 10
    """Iterations between checkpoints."""
    eval_episodes: int = 0
    """Episodes of a final evaluation of the trained policy (the last checkpoint, through ``dspy-rl eval``'s code)
    on envs seeded with ``eval_seed``, run once training ends; reported as ``eval_success_rate``/``eval_return``
    (0 = no evaluation). Sweeps score trials by it: the rolling ``success_rate`` of a short run still averages the
    episodes of the untrained start. Eval env steps are not counted in ``env_steps``."""
    eval_greedy: bool = True
    """Final evaluation: take each policy's most likely action (``false``: sample, as in training)."""
    eval_seed: int | None = None
    """Env seed of the final evaluation (null: ``env.seed + 1000007``, which no training env stream
    ``env.seed + 1000 * runner + 7919 * resume_iteration`` takes)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    """Suites trained in order with promotion on rolling success (``curriculum=[easy,default,hard,expert]``,
    :mod:`dspy_rl.trainer.curriculum`); empty: ``env.suite`` only."""
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)
    """Weights of the global objectives in the training reward (:mod:`dspy_rl.envs.objectives`); per-objective
    metrics ``objective/<name>`` are logged either way."""
    convergence: ConvergenceConfig = field(default_factory=ConvergenceConfig)
    """Plateau test that ends the run with status ``converged`` (:mod:`dspy_rl.utils.convergence`)."""

    def __post_init__(self) -> None:
        if self.algo.name in ("grpo", "gigpo"):
            require(
                self.env.num_envs % self.algo.group_size == 0,
                "env.num_envs",
                self.env.num_envs,
                f"a multiple of algo.group_size ({self.algo.group_size}) for GRPO",
            )
        require(self.total_env_steps >= 1, "total_env_steps", self.total_env_steps, "an integer >= 1")
        require(
            self.target_success is None or 0 < self.target_success <= 1,
            "target_success",
            self.target_success,
            "null or a float in (0, 1]",
        )
        require(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, "an integer >= 1")
        require(
            self.eval_episodes >= 0,
            "eval_episodes",
            self.eval_episodes,
            "an integer >= 0 (0 = no final eval)",
        )

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


ConfigStore.instance().store(name="train_schema", node=TrainConfig)
