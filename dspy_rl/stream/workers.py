"""Several ingester processes in one consumer group, writing to one store.

kafka-python decodes records in pure Python, so one process tops out at roughly one core. Kafka's own way to
scale a consumer is more members in the group: each worker process gets a share of the partitions, runs its own
:class:`~dspy_rl.stream.ingest.KafkaIngester` with its own SQLite connection (WAL: writers take turns per batch
transaction, readers never block), and commits its own offsets after its own transactions, so the delivery
guarantees are those of a single ingester. SIGTERM/SIGINT to the parent is forwarded; each worker drains its
batch and exits. The parent returns the summed metrics.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from dataclasses import asdict
from typing import Any

from dspy_rl.stream.ingest import IngestConfig, IngestMetrics

logger = logging.getLogger(__name__)


def _watch_parent(parent: int, stop: Any) -> None:
    """Stop the worker when its parent is gone (killed with SIGKILL, say), instead of running orphaned."""
    while os.getppid() == parent:
        time.sleep(1.0)
    logger.warning("parent process %d is gone; stopping", parent)
    stop()


def _worker(
    index: int, parent: int, store_path: str, synchronous: str, config: dict[str, Any], results: Any
) -> None:
    from dspy_rl.stream.ingest import KafkaIngester
    from dspy_rl.traces.store import TraceStore

    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s worker{index} %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    store = TraceStore(store_path, synchronous=synchronous)
    ingester = KafkaIngester(store, IngestConfig(**config))
    signal.signal(signal.SIGTERM, lambda *_: ingester.request_stop())
    signal.signal(signal.SIGINT, lambda *_: ingester.request_stop())
    threading.Thread(target=_watch_parent, args=(parent, ingester.request_stop), daemon=True).start()
    try:
        metrics = ingester.run()
    finally:
        store.close()
    results.put(metrics.to_dict())


def run_workers(
    store_path: str, config: IngestConfig, workers: int, synchronous: str = "FULL"
) -> IngestMetrics:
    """Run ``workers`` ingester processes until they stop (limits apply per worker); returns summed metrics."""
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    cfg = asdict(config)
    cfg["topics"] = tuple(cfg["topics"])
    procs = [
        ctx.Process(
            target=_worker,
            args=(i, os.getpid(), store_path, synchronous, cfg, results),
            name=f"ingest-worker-{i}",
        )
        for i in range(workers)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()

    def forward(signum: int, frame: Any) -> None:
        logger.info("received %s: asking %d workers to drain and exit", signal.Signals(signum).name, workers)
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker finishes and commits its batch

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        collected = []
        while len(collected) < workers and any(p.is_alive() for p in procs):
            try:
                collected.append(results.get(timeout=0.5))
            except queue.Empty:
                continue
        while len(collected) < workers and not results.empty():
            collected.append(results.get())
        for p in procs:
            p.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"ingest worker(s) {failed} failed; see their log lines above")
    total = IngestMetrics()
    for m in collected:
        for key in ("events", "stored", "duplicates", "dlq", "batches", "retried_batches", "commit_failures"):
            setattr(total, key, getattr(total, key) + m[key])
        for reason, count in m["dlq_reasons"].items():
            total.dlq_reasons[reason] = total.dlq_reasons.get(reason, 0) + count
        total.lag = (total.lag or 0) + (m["lag"] or 0)
    total.elapsed_s = time.monotonic() - started
    total.events_per_s = total.events / total.elapsed_s if total.elapsed_s > 0 else 0.0
    return total
