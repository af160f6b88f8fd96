"""``dspy-rl serve judges [key=value ...]`` and ``dspy-rl serve train-judge --pairs P --out DIR``.

``judges`` starts (or connects to) Ray, deploys the judge ensemble (conf/serve.yaml, conf/judges/) on Ray Serve
bound to ``host:port`` (127.0.0.1:8000 by default) and, with ``blocking=true``, serves until Ctrl-C.
``train-judge`` trains the transformer judge on preference pairs and writes ``<out>/judge.pt``.
"""

from __future__ import annotations

import logging
import sys

from dspy_rl.config import ConfigError, compose, require, to_object

logger = logging.getLogger(__name__)

USAGE = """usage: dspy-rl serve judges [--host H] [--port P] [--autoscaling adaptive|default|fixed] [key=value ...]
       dspy-rl serve lm [model=DIR] [host=H] [port=P] [key=value ...]
       dspy-rl serve policy checkpoint=RUN_DIR [host=H] [port=P] [key=value ...]
       dspy-rl serve proxy upstream=URL [store=SQLITE | stream=kafka] [host=H] [port=P] [key=value ...]
       dspy-rl serve train-judge --pairs PAIRS.jsonl --out DIR [--steps N] [key=value ...]

Examples:
  dspy-rl serve judges port=8100 judges=rubric_only
  dspy-rl serve judges judges.transformer.enabled=true judges.transformer.options.checkpoint=runs/judge
  DSPY_RL_JUDGE_TOKEN=secret dspy-rl serve judges auth_token_env=DSPY_RL_JUDGE_TOKEN
  dspy-rl serve judges --no-block ray_address=auto     # deploy into a running cluster and return
  dspy-rl serve lm port=8300                                   # tiny GPT-2 built from a config
  dspy-rl serve lm model=runs/grpo/my-run port=8300            # a text-GRPO run (its final/ or model/)
  dspy-rl serve policy checkpoint=runs/train/my-run port=8500
  dspy-rl serve proxy port=8400 upstream=http://127.0.0.1:8300/v1 store=traces.db
"""

ALIASES = {
    "pairs": "train_judge.pairs",
    "out": "train_judge.out",
    "steps": "train_judge.steps",
}


def _config(argv: list[str]):
    from dspy_rl.judges.config import ServeConfig

    # --no-block: deploy into an existing cluster (ray_address=...) and return; Serve keeps the app running
    argv = ["blocking=false" if a == "--no-block" else a for a in argv]
    return to_object(compose("serve", argv, ALIASES), ServeConfig)


def serve_judges(argv: list[str]) -> int:
    cfg = _config(argv)
    from ray import serve

    from dspy_rl.judges.app import deploy
    from dspy_rl.utils.ray_local import init_ray

    try:
        from dspy_rl.judges.app import resolve_token

        resolve_token(cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    from dspy_rl.utils.ray_shutdown import shutdown_ray, sigterm_as_interrupt

    init_ray(cfg.ray_address, cfg.node_ip)  # a local instance listens on 127.0.0.1 only
    judges = ", ".join(f"{n} ({s.kind}, w={s.weight:g})" for n, s in cfg.enabled_judges().items())
    print(f"dspy-rl serve: judges {judges}; autoscaling={cfg.autoscaling}; deadline {cfg.deadline_s:g}s")
    print(
        f"dspy-rl serve: POST http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}/judge  (Ctrl-C stops)"
    )
    # SIGTERM stops like Ctrl-C: Serve, then every Ray process this command started.
    with sigterm_as_interrupt():
        try:
            deploy(cfg, blocking=cfg.blocking)
        except KeyboardInterrupt:
            pass
        finally:
            if cfg.blocking:
                serve.shutdown()
                shutdown_ray()
    return 0


def train_judge(argv: list[str]) -> int:
    cfg = _config(argv).train_judge
    require(
        bool(cfg.pairs), "train_judge.pairs", cfg.pairs, "a JSONL file of {query, chosen, rejected} (--pairs)"
    )
    require(bool(cfg.out), "train_judge.out", cfg.out, "an output directory (--out)")
    require(cfg.steps >= 1, "train_judge.steps", cfg.steps, "an int >= 1")
    from dspy_rl.judges.transformer import (
        RewardModelConfig,
        TrainConfig,
        load_pairs,
        load_reward_model,
        pairwise_accuracy,
        train_preference_model,
    )

    try:
        pairs = load_pairs(cfg.pairs)
        model_cfg = RewardModelConfig(
            d_model=cfg.d_model,
            num_layers=cfg.num_layers,
            max_len=cfg.max_len,
            max_query_len=max(1, min(96, cfg.max_len // 3)),
            dim_feedforward=2 * cfg.d_model,
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    path = train_preference_model(
        pairs,
        cfg.out,
        model_cfg,
        TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed),
    )
    model, summary = load_reward_model(path)
    print(
        f"wrote {path}: final loss {summary['final_loss']:.4f}, train accuracy {pairwise_accuracy(model, pairs):.3f}"
    )
    return 0


SUBCOMMANDS = {
    "judges": "deploy the judge ensemble on Ray Serve (conf/serve.yaml, conf/judges/)",
    "train-judge": "train the transformer judge on preference pairs (train_judge.* settings)",
    "lm": "OpenAI-compatible server for a local HF causal LM (conf/serve_lm.yaml)",
    "proxy": "OpenAI-compatible recording proxy into the trace store or Kafka (conf/serve_proxy.yaml)",
    "policy": "ranked tools + argument from a `dspy-rl train` run, batched (conf/serve_policy.yaml)",
}


def main(argv: list[str]) -> int:
    from dspy_rl.cli.help import HELP_FLAGS, render, wants_help
    from dspy_rl.judges.config import ServeConfig

    if not argv or argv[0] in HELP_FLAGS:
        print(render(__doc__ + "\n" + USAGE, subcommands=SUBCOMMANDS))
        return 0
    sub, rest = argv[0], argv[1:]
    if sub in ("judges", "train-judge", "train_judge") and wants_help(rest):
        judges = sub == "judges"
        print(render(USAGE, "serve", ServeConfig, prefix="" if judges else "train_judge"))
        return 0
    if sub == "judges":
        return serve_judges(rest)
    if sub in ("lm", "proxy", "policy"):
        from dspy_rl.cli import serve_agents

        if wants_help(rest):
            print(serve_agents.help_text(sub))
            return 0
        return getattr(serve_agents, f"serve_{sub}")(rest)
    if sub in ("train-judge", "train_judge"):
        return train_judge(rest)
    print(f"dspy-rl serve: unknown subcommand {sub!r}\n\n{USAGE}", file=sys.stderr)
    return 2
