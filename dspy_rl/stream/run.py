"""The driver behind ``dspy-rl stream train`` (:mod:`dspy_rl.cli.stream`): ingest -> mine -> GRPO update -> publish
metrics, once or continuously, from Kafka or a JSONL file of span events."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dspy_rl.stream.config import StreamConfig

#: ``on_stop(request_stop)``: arrange for ``request_stop()`` to be called when the run should end early.
OnStop = Callable[[Callable[[], None]], None]


def ingest_config(cfg: StreamConfig, **overrides: Any) -> Any:
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


_Source = tuple[Any, Callable[[], int], Callable[[], None]]  # (bus, ingest_step, request_stop)


def _kafka_source(
    cfg: StreamConfig, store: Any, stop: dict[str, bool], closers: list[Callable[[], None]]
) -> _Source:
    from dspy_rl.stream.clients import make_bus
    from dspy_rl.stream.ingest import KafkaIngester

    bus: Any = make_bus(
        str(cfg.stream.bootstrap_servers), cfg.stream.client, topic_prefix=cfg.stream.topic_prefix
    )
    ingester = KafkaIngester(store, ingest_config(cfg), dlq_bus=bus)
    closers.append(ingester.close)

    def ingest_step() -> int:
        return ingester.ingest_for(
            max_events=cfg.iteration_events, max_seconds=cfg.iteration_seconds, idle_timeout_s=1.0
        )

    def request_stop() -> None:
        stop["requested"] = True
        ingester.request_stop()

    return bus, ingest_step, request_stop


def _file_source(
    cfg: StreamConfig, store: Any, run_dir: Path, stop: dict[str, bool], closers: list[Callable[[], None]]
) -> _Source:
    from dspy_rl.stream.bus import FileBus
    from dspy_rl.stream.file_source import JsonlSource

    bus = FileBus(run_dir / "bus", topic_prefix=cfg.stream.topic_prefix)
    source = JsonlSource(store, cfg.stream.events_file, dlq=bus, batch_size=cfg.ingest.batch_size)
    closers.append(source.close)

    def ingest_step() -> int:
        return source.ingest(cfg.iteration_events)

    def request_stop() -> None:
        stop["requested"] = True

    return bus, ingest_step, request_stop


def _grpo_iteration(cfg: StreamConfig, run_dir: Path) -> Any:
    from dspy_rl.stream.continuous import TextGRPOIteration

    t = cfg.train
    return TextGRPOIteration(
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


def _rl_phase(cfg: StreamConfig, run_dir: Path) -> Any:
    if cfg.rl_steps <= 0:
        return None
    from dspy_rl.stream.rl_phase import PPOPhase

    return PPOPhase(run_dir / "rl", cfg.rl_steps, cfg.rl_overrides)


def _mine_config(cfg: StreamConfig, run_dir: Path) -> Any:
    from dspy_rl.traces.mining import MineConfig

    return MineConfig(
        db=cfg.store,
        out=str(run_dir / "groups.jsonl"),
        hours=cfg.mine.hours,
        levels=[cfg.mine.level],
        min_candidates=cfg.mine.min_candidates,
        max_candidates=cfg.mine.max_candidates,
    )


def run_stream_train(cfg: StreamConfig, on_stop: OnStop) -> dict[str, Any]:
    """Run ``stream train`` as configured; returns ``{"run_dir", "iterations", "last"}`` (the last iteration's record)."""
    from dspy_rl.stream.continuous import run_continuous
    from dspy_rl.system.guard import enforce
    from dspy_rl.traces.store import TraceStore

    run_dir = Path(cfg.run_dir or Path("runs") / "stream" / time.strftime("%Y%m%d-%H%M%S"))
    enforce(cfg.guard, run_dir, what="stream train run")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    store = TraceStore(cfg.store, synchronous=cfg.synchronous)
    stop = {"requested": False}
    closers: list[Callable[[], None]] = []
    try:
        if cfg.stream.kind == "kafka":
            bus, ingest_step, request_stop = _kafka_source(cfg, store, stop, closers)
        else:
            bus, ingest_step, request_stop = _file_source(cfg, store, run_dir, stop, closers)
        closers.append(bus.close)
        on_stop(request_stop)
        trainer = _grpo_iteration(cfg, run_dir)
        rl_phase = _rl_phase(cfg, run_dir)
        records = run_continuous(
            store,
            ingest_step,
            trainer,
            run_dir=run_dir,
            max_iterations=cfg.max_iterations if cfg.continuous else 1,
            mine_config=_mine_config(cfg, run_dir),
            bus=bus if cfg.publish_metrics else None,
            should_stop=lambda: stop["requested"],
            rl_phase=rl_phase,
            keep_group_files=cfg.keep_group_files,
        )
    finally:
        for close in reversed(closers):
            close()
        store.close()
    return {"run_dir": str(run_dir), "iterations": len(records), "last": records[-1] if records else None}
