"""``dspy-rl stream <ingest|train|produce|export> [--flag value ...] [key=value ...]`` (conf/stream.yaml).

dspy-rl stream ingest stream=kafka ingest.idle_timeout_s=30     # Kafka -> trace store; SIGTERM drains
dspy-rl stream ingest                                           # the embedded JSONL sample -> trace store
dspy-rl stream train --continuous --max-iterations 5            # ingest -> mine -> GRPO -> agent.metrics
dspy-rl stream train --continuous stream=kafka                  # the same loop on the broker
dspy-rl stream train --rl-steps 4096 --grpo-steps 4 --continuous --max-iterations 3 --model tiny-gpt2  # PPO + GRPO
dspy-rl stream auto --period-sec 600 --hours 48 --min-groups 32 --hierarchical --port 0  # cycles, HTTP control
dspy-rl stream produce stream=kafka stream.events_file=ev.jsonl  # publish a JSONL file of events to Kafka
dspy-rl stream export --out traces_export                        # traces/YYYYMMDD/<agent>/<trace>.json
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from dspy_rl.cli.help import HELP_FLAGS, render, wants_help
from dspy_rl.config import compose, require, to_object
from dspy_rl.stream.config import StreamConfig

logger = logging.getLogger(__name__)

ALIASES = {
    "db": "store",
    "bootstrap_servers": "stream.bootstrap_servers",
    "bootstrap": "stream.bootstrap_servers",
    "kafka_bootstrap": "stream.bootstrap_servers",
    "events_file": "stream.events_file",
    "topic_prefix": "stream.topic_prefix",
    "group_id": "stream.group_id",
    "client": "stream.client",
    "hours": "mine.hours",
    "level": "mine.level",
    "idle_timeout": "ingest.idle_timeout_s",
    "max_events": "ingest.max_events",
    "period_sec": "auto.period_sec",
    "min_groups": "auto.min_groups",
    "hierarchical": "auto.hierarchical",
    "apply_policy": "auto.apply_policy",
    "workspace": "auto.workspace",
    "state_dir": "auto.state_dir",
    "max_cycles": "auto.max_cycles",
    "port": "auto.http_port",
    "token": "auto.http_token",
    "paused": "auto.paused",
    "model": "train.model",
    "rl_steps": "rl_steps",
    "grpo_steps": "grpo_steps",
}
SUBCOMMANDS = {
    "ingest": "consume span events (Kafka or a JSONL file) into the trace store",
    "train": "ingest -> mine -> GRPO update -> publish metrics (--continuous: for max_iterations)",
    "produce": "publish a JSONL file of span events to Kafka",
    "auto": "mine + GRPO cycles on a cadence, one policy per level, HTTP control (--port)",
    "export": "write the store's traces as JSON files (--out DIR)",
}


def _on_stop(callback: Callable[[], None]) -> None:
    """Call ``callback`` on SIGTERM / SIGINT (a second SIGINT interrupts as usual)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s: finishing the current batch, then exiting", signal.Signals(signum).name)
        callback()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _ingest_config(cfg: StreamConfig, **overrides: Any) -> Any:
    """The ``ingest.*`` settings as they are, with the broker connection of ``stream.*``."""
    from dspy_rl.stream.ingest import IngestConfig

    return IngestConfig(
        **dataclasses.asdict(cfg.ingest),
        bootstrap_servers=str(cfg.stream.bootstrap_servers),
        group_id=cfg.stream.group_id,
        topic_prefix=cfg.stream.topic_prefix,
        client=cfg.stream.client,
        **overrides,
    )


def _ingest(cfg: StreamConfig) -> int:
    from dspy_rl.traces.store import TraceStore

    store = TraceStore(cfg.store, synchronous=cfg.synchronous)
    try:
        if cfg.stream.kind == "kafka":
            from dspy_rl.stream.ingest import KafkaIngester

            metrics_path = str(Path(cfg.store).with_name("ingest_metrics.jsonl"))
            if cfg.ingest.workers > 1:
                from dspy_rl.stream.workers import run_workers

                store.close()  # each worker opens its own connection
                metrics = run_workers(cfg.store, _ingest_config(cfg), cfg.ingest.workers, cfg.synchronous)
                store = TraceStore(cfg.store, synchronous=cfg.synchronous)
            else:
                ingester = KafkaIngester(store, _ingest_config(cfg, metrics_path=metrics_path))
                _on_stop(ingester.request_stop)
                metrics = ingester.run()
        else:
            from dspy_rl.stream.bus import FileBus
            from dspy_rl.stream.file_source import JsonlSource

            bus = FileBus(Path(cfg.store).parent / "bus")
            source = JsonlSource(store, cfg.stream.events_file, dlq=bus, batch_size=cfg.ingest.batch_size)
            source.ingest(cfg.ingest.max_events)
            source.close()
            bus.close()
            metrics = source.metrics
    finally:
        store.close()
    print(json.dumps({"store": cfg.store, **metrics.to_dict()}, indent=1))
    return 0


def _train(cfg: StreamConfig) -> int:
    from dspy_rl.stream.bus import FileBus
    from dspy_rl.stream.clients import make_bus
    from dspy_rl.stream.continuous import TextGRPOIteration, run_continuous
    from dspy_rl.traces.mining import MineConfig
    from dspy_rl.traces.store import TraceStore

    run_dir = Path(cfg.run_dir or Path("runs") / "stream" / time.strftime("%Y%m%d-%H%M%S"))
    from dspy_rl.system.guard import enforce

    enforce(cfg.guard, run_dir, what="stream train run")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(_as_dict(cfg), indent=1))
    store = TraceStore(cfg.store, synchronous=cfg.synchronous)
    stop = {"requested": False}
    closers: list[Callable[[], None]] = []
    try:
        if cfg.stream.kind == "kafka":
            from dspy_rl.stream.ingest import KafkaIngester

            bus: Any = make_bus(
                str(cfg.stream.bootstrap_servers), cfg.stream.client, topic_prefix=cfg.stream.topic_prefix
            )
            ingester = KafkaIngester(store, _ingest_config(cfg), dlq_bus=bus)
            closers.append(ingester.close)

            def ingest_step() -> int:
                return ingester.ingest_for(
                    max_events=cfg.iteration_events, max_seconds=cfg.iteration_seconds, idle_timeout_s=1.0
                )

            def request_stop() -> None:
                stop["requested"] = True
                ingester.request_stop()
        else:
            from dspy_rl.stream.file_source import JsonlSource

            bus = FileBus(run_dir / "bus", topic_prefix=cfg.stream.topic_prefix)
            source = JsonlSource(store, cfg.stream.events_file, dlq=bus, batch_size=cfg.ingest.batch_size)
            closers.append(source.close)

            def ingest_step() -> int:
                return source.ingest(cfg.iteration_events)

            def request_stop() -> None:
                stop["requested"] = True

        closers.append(bus.close)
        _on_stop(request_stop)
        t = cfg.train
        trainer = TextGRPOIteration(
            run_dir,
            level=cfg.mine.level,
            steps=cfg.grpo_steps,
            model=t.model,
            device=t.device,
            batch_groups=t.batch_groups,
            lr=t.lr,
            kl_target=t.kl_target,
            kl_warmup=t.kl_warmup,
            updates_per_batch=t.updates_per_batch,
            seed=t.seed,
            keep_checkpoints=t.keep_checkpoints,
        )
        rl_phase = None
        if cfg.rl_steps > 0:
            from dspy_rl.stream.rl_phase import PPOPhase

            rl_phase = PPOPhase(run_dir / "rl", cfg.rl_steps, cfg.rl_overrides)
        mine_cfg = MineConfig(
            db=cfg.store,
            out=str(run_dir / "groups.jsonl"),
            hours=cfg.mine.hours,
            levels=[cfg.mine.level],
            min_candidates=cfg.mine.min_candidates,
            max_candidates=cfg.mine.max_candidates,
        )
        records = run_continuous(
            store,
            ingest_step,
            trainer,
            run_dir=run_dir,
            max_iterations=cfg.max_iterations if cfg.continuous else 1,
            mine_config=mine_cfg,
            bus=bus if cfg.publish_metrics else None,
            should_stop=lambda: stop["requested"],
            rl_phase=rl_phase,
            keep_group_files=cfg.keep_group_files,
        )
    finally:
        for close in reversed(closers):
            close()
        store.close()
    print(
        json.dumps(
            {"run_dir": str(run_dir), "iterations": len(records), "last": records[-1] if records else None},
            indent=1,
        )
    )
    return 0


def _auto(cfg: StreamConfig) -> int:
    from dataclasses import asdict

    from dspy_rl.stream.apply_policy import check_available
    from dspy_rl.stream.auto import AutoOptions, AutoRunner
    from dspy_rl.stream.control import ControlServer
    from dspy_rl.stream.level_trainer import LevelTrainOptions
    from dspy_rl.traces.mining import LEVELS

    a = cfg.auto
    if a.apply_policy:
        reason = check_available(a.workspace)
        if reason is not None:
            print(f"dspy-rl stream auto: {reason}", file=sys.stderr)
            return 2
    t = cfg.train
    options = AutoOptions(
        store=cfg.store,
        state_dir=a.state_dir,
        levels=list(LEVELS) if a.hierarchical else [cfg.mine.level],
        period_sec=a.period_sec,
        hours=cfg.mine.hours,
        min_groups=a.min_groups,
        min_candidates=cfg.mine.min_candidates,
        max_candidates=cfg.mine.max_candidates,
        max_cycles=a.max_cycles,
        keep_group_files=cfg.keep_group_files,
        paused=a.paused,
        apply_policy=a.apply_policy,
        workspace=a.workspace,
        guard=cfg.guard,
        train=LevelTrainOptions(
            **{k: v for k, v in asdict(t).items() if k in LevelTrainOptions.__dataclass_fields__}
        ),
        synchronous=cfg.synchronous,
    )
    try:
        runner = AutoRunner(options)
    except ValueError as exc:
        print(f"dspy-rl stream auto: {exc}", file=sys.stderr)
        return 2
    server = None
    if a.http_port is not None:
        try:
            token = a.http_token or os.environ.get("DSPY_RL_AUTO_TOKEN") or None
            server = ControlServer(runner, a.http_host, a.http_port, token)
        except OSError as exc:
            print(f"dspy-rl stream auto: cannot serve the control API on {a.http_host}:{a.http_port} ({exc}); "
                  "pick another auto.http_port (0: a free one)", file=sys.stderr)  # fmt: skip
            return 2
        print(json.dumps({"control": server.url, "state_dir": a.state_dir}), flush=True)
    _on_stop(runner.stop)
    try:
        cycles = runner.run()
    finally:
        if server is not None:
            server.close()
    print(json.dumps({"state_dir": a.state_dir, "cycles_run": cycles, "cycle": runner.state["cycle"],
                      "last_cycle": runner.state.get("last_cycle")}, default=str))  # fmt: skip
    return 0


def _produce(cfg: StreamConfig) -> int:
    from dspy_rl.stream.bus import BusSink
    from dspy_rl.stream.clients import make_bus
    from dspy_rl.stream.file_source import SAMPLE_EVENTS
    from dspy_rl.traces.spans import MalformedEvent, parse_event

    require(cfg.stream.kind == "kafka", "stream", cfg.stream.kind, "kafka (stream=kafka) to publish events")
    path = Path(cfg.stream.events_file or SAMPLE_EVENTS)
    if not path.is_file():
        print(f"dspy-rl stream produce: events file {str(path)!r} does not exist", file=sys.stderr)
        return 2
    sink = BusSink(
        make_bus(str(cfg.stream.bootstrap_servers), cfg.stream.client, topic_prefix=cfg.stream.topic_prefix)
    )
    sent = skipped = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                span = parse_event(raw.strip())
            except MalformedEvent as exc:
                logger.warning("%s:%d: not published (%s)", path, lineno, exc)
                skipped += 1
                continue
            sink.write([span])
            sent += 1
    sink.flush()
    sink.bus.close()
    print(json.dumps({"published": sent, "skipped_malformed": skipped, "file": str(path)}))
    return 0


def _export(cfg: StreamConfig, out: str) -> int:
    from dspy_rl.traces.export import export_traces
    from dspy_rl.traces.store import TraceStore

    if not Path(cfg.store).is_file():
        print(
            f"dspy-rl stream export: trace store {cfg.store!r} does not exist (store=<path>)", file=sys.stderr
        )
        return 2
    with TraceStore(cfg.store) as store:
        index = export_traces(store, out)
    print(json.dumps({"out": out, "traces": index["num_traces"]}))
    return 0


def _as_dict(cfg: StreamConfig) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(cfg)


def main(argv: list[str]) -> int:
    """Entry point of ``dspy-rl stream``."""
    if not argv or argv[0] in HELP_FLAGS:
        print(render(__doc__, subcommands=SUBCOMMANDS))
        return 0
    sub, rest = argv[0], list(argv[1:])
    if sub in SUBCOMMANDS and wants_help(rest):
        print(
            render(
                f"usage: dspy-rl stream {sub} [--flag value ...] [key=value ...]\n\n{SUBCOMMANDS[sub]}",
                "stream",
                StreamConfig,
            )
        )
        return 0
    if sub not in SUBCOMMANDS:
        print(
            f"dspy-rl stream: unknown subcommand {sub!r}; choose one of {', '.join(SUBCOMMANDS)}\n\n{__doc__}",
            file=sys.stderr,
        )
        return 2
    out = "traces_export"
    if sub == "export":
        # --out is the export directory, not a config key.
        for i, tok in enumerate(rest):
            if tok == "--out" and i + 1 < len(rest):
                out = rest[i + 1]
                rest = rest[:i] + rest[i + 2 :]
                break
            if tok.startswith("out="):
                out = tok[4:]
                rest = rest[:i] + rest[i + 1 :]
                break
    cfg: StreamConfig = to_object(compose("stream", rest, ALIASES), StreamConfig)
    if cfg.stream.kind == "kafka" and sub in ("ingest", "train", "produce"):
        from dspy_rl.stream.broker import BrokerUnavailable, wait_for_broker

        try:
            wait_for_broker(str(cfg.stream.bootstrap_servers), cfg.ingest.broker_wait_s)
        except BrokerUnavailable as exc:
            print(f"dspy-rl stream {sub}: {exc}", file=sys.stderr)
            return 2
    if sub == "ingest":
        return _ingest(cfg)
    if sub == "train":
        return _train(cfg)
    if sub == "auto":
        return _auto(cfg)
    if sub == "produce":
        return _produce(cfg)
    return _export(cfg, out)
