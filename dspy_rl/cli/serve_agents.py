"""``dspy-rl serve lm`` and ``dspy-rl serve proxy``: parse, check, print; the apps live in :mod:`dspy_rl.serving`."""

from __future__ import annotations

from dspy_rl.config import ConfigError, compose, to_object

USAGES = {
    "lm": "usage: dspy-rl serve lm [model=DIR] [host=H] [port=P] [key=value ...]",
    "proxy": "usage: dspy-rl serve proxy upstream=URL [store=SQLITE | stream=kafka] [host=H] [port=P] [key=value ...]",
    "policy": "usage: dspy-rl serve policy checkpoint=RUN_DIR [host=H] [port=P] [key=value ...]",
}


def help_text(sub: str) -> str:
    """``dspy-rl serve <sub> --help``: usage and every setting with its documentation."""
    from dspy_rl.cli.help import render
    from dspy_rl.serving.lm_config import LMServeConfig
    from dspy_rl.serving.policy_config import PolicyServeConfig
    from dspy_rl.serving.proxy_config import ProxyConfig

    schema = {"lm": LMServeConfig, "proxy": ProxyConfig, "policy": PolicyServeConfig}[sub]
    return render(USAGES[sub], f"serve_{sub}", schema)


def serve_lm(argv: list[str]) -> int:
    from dspy_rl.serving.lm_config import LMServeConfig
    from dspy_rl.serving.lm_engine import ModelLoadError, resolve_model_dir
    from dspy_rl.serving.runtime import resolve_token, serve_forever

    argv = ["blocking=false" if a == "--no-block" else a for a in argv]
    cfg = to_object(compose("serve_lm", argv), LMServeConfig)
    try:
        token = resolve_token(cfg.auth_token_env)
        if cfg.model:
            resolve_model_dir(cfg.model)
    except (ValueError, ModelLoadError) as exc:
        raise ConfigError(str(exc)) from exc

    def deploy() -> None:
        from dspy_rl.serving.lm_app import deploy as deploy_lm

        deploy_lm(cfg, token)

    what = cfg.model or f"tiny GPT-2 ({cfg.tiny.n_layer} layers, width {cfg.tiny.n_embd}; random weights)"
    banner = (
        f"dspy-rl serve lm: {what}\n"
        f"dspy-rl serve lm: OpenAI API at http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}/v1 "
        "(Ctrl-C or SIGTERM stops)"
    )
    return serve_forever(deploy, cfg.ray_address, cfg.blocking, banner)


def serve_proxy(argv: list[str]) -> int:
    from dspy_rl.serving.proxy_config import ProxyConfig
    from dspy_rl.serving.runtime import resolve_token, serve_forever

    argv = ["blocking=false" if a == "--no-block" else a for a in argv]
    # `stream=kafka` (the interface) is a config group name elsewhere; it sets `sink` here
    argv = ["sink=" + a.split("=", 1)[1] if a.startswith(("stream=", "--stream=")) else a for a in argv]
    cfg = to_object(compose("serve_proxy", argv), ProxyConfig)
    try:
        token = resolve_token(cfg.auth_token_env)
        upstream_key = resolve_token(cfg.upstream_key_env) if cfg.upstream_key_env else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc

    def deploy() -> None:
        from dspy_rl.serving.proxy_app import deploy as deploy_proxy

        deploy_proxy(cfg, token, upstream_key)

    sink = f"store={cfg.store}" if cfg.sink != "kafka" else f"kafka {cfg.kafka.bootstrap_servers}"
    banner = (
        f"dspy-rl serve proxy: forwarding to {cfg.upstream}; recording into {sink} (spool {cfg.spool_dir})\n"
        f"dspy-rl serve proxy: OpenAI API at http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}/v1 "
        "(Ctrl-C or SIGTERM stops)"
    )
    return serve_forever(deploy, cfg.ray_address, cfg.blocking, banner)


def serve_policy(argv: list[str]) -> int:
    from dspy_rl.serving.policy_config import PolicyServeConfig
    from dspy_rl.serving.runtime import resolve_token, serve_forever

    argv = ["blocking=false" if a == "--no-block" else a for a in argv]
    cfg = to_object(compose("serve_policy", argv), PolicyServeConfig)
    try:
        token = resolve_token(cfg.auth_token_env)
        from dspy_rl.serving.policy_engine import PolicyEngine

        engine = PolicyEngine(str(cfg.checkpoint))  # fail here, in one line, before starting Ray
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc

    def deploy() -> None:
        from dspy_rl.serving.policy_app import deploy as deploy_policy

        deploy_policy(cfg, token)

    banner = (
        f"dspy-rl serve policy: {engine.checkpoint} (suite {engine.suite.name}, {len(engine.tool_names)} tools); "
        f"batches of up to {cfg.max_batch_size}\n"
        f"dspy-rl serve policy: POST http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}/v1/policy/decide "
        "(Ctrl-C or SIGTERM stops)"
    )
    return serve_forever(deploy, cfg.ray_address, cfg.blocking, banner)
