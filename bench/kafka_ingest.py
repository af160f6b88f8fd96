"""End-to-end Kafka → SQLite ingest throughput with the at-least-once commit policy.

    python bench/kafka_ingest.py --events 200000 [--bootstrap 127.0.0.1:9092]

Needs the local broker (``scripts/kafka.sh start``). Produces ``--events`` synthetic span events once (realistic
sizes: prompts, tool calls, rewards; ~300-600 bytes each) to fresh topics, then consumes them from the start with
a fresh consumer group, three ways, in the same run:

* **ours**: :class:`dspy_rl.stream.ingest.KafkaIngester` (batched polls, validation, one SQLite transaction per
  batch with ``synchronous=FULL``, DLQ flush, offset commit after the transaction);
* **naive**: the textbook loop: ``json.loads`` + ``Span`` per message, one transaction per poll, commit after it;
* **consume-only**: the same kafka-python consumer doing nothing with the records: the client's ceiling.

Prints a table with events/s (wall) and events per CPU-second of this process (less sensitive to other load on
the machine), and writes ``bench/results/kafka_ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dspy_rl.stream.bus import KafkaBus  # noqa: E402
from dspy_rl.stream.ingest import IngestConfig, KafkaIngester  # noqa: E402
from dspy_rl.stream.synthetic import synthetic_spans  # noqa: E402
from dspy_rl.traces.spans import INGEST_TOPICS, Span  # noqa: E402
from dspy_rl.traces.store import TraceStore  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def produce(bootstrap: str, prefix: str, events: int) -> tuple[int, float]:
    bus = KafkaBus(bootstrap, topic_prefix=prefix, linger_ms=50, batch_size=1 << 20)
    start = time.perf_counter()
    n = 0
    for span in synthetic_spans(events // 6 + 1, seed=7):
        if n >= events:
            break
        bus.publish(span.topic, span.to_json_bytes(), key=span.trace_id)
        n += 1
    bus.close()
    return n, time.perf_counter() - start


def _consumer(bootstrap: str, prefix: str, group: str) -> Any:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=20000,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    consumer.subscribe([prefix + t for t in INGEST_TOPICS])
    return consumer


def run_ours(bootstrap: str, prefix: str, events: int, db: Path) -> dict[str, Any]:
    store = TraceStore(db, synchronous="FULL")
    cfg = IngestConfig(
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        group_id=f"bench-ours-{uuid.uuid4().hex[:8]}",
        max_events=events,
        idle_timeout_s=30,
        metrics_interval_s=1e9,
    )
    ingester = KafkaIngester(store, cfg)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    metrics = ingester.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stored = store.count_spans()
    store.close()
    return {"events": metrics.events, "stored": stored, "wall_s": wall, "cpu_s": cpu}


def run_naive(bootstrap: str, prefix: str, events: int, db: Path) -> dict[str, Any]:
    from kafka.structs import OffsetAndMetadata

    store = TraceStore(db, synchronous="FULL")
    consumer = _consumer(bootstrap, prefix, f"bench-naive-{uuid.uuid4().hex[:8]}")
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while n < events:
        polled = consumer.poll(timeout_ms=500)
        spans = []
        for records in polled.values():
            for r in records:
                e = json.loads(r.value)
                spans.append(
                    Span(
                        kind=e["kind"],
                        trace_id=e["trace_id"],
                        agent_id=e["agent_id"],
                        name=e["name"],
                        span_id=e["event_id"],
                        parent_id=e["parent_id"],
                        start_ts=e["ts"],
                        end_ts=e["end_ts"],
                        reward=e["reward"],
                        attributes=e["attributes"],
                    )
                )
        store.insert_spans(spans, source="kafka")
        if polled:
            consumer.commit({tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1) for tp, rs in polled.items()})
        n += len(spans)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    consumer.close(autocommit=False)
    stored = store.count_spans()
    store.close()
    return {"events": n, "stored": stored, "wall_s": wall, "cpu_s": cpu}


def run_consume_only(bootstrap: str, prefix: str, events: int) -> dict[str, Any]:
    consumer = _consumer(bootstrap, prefix, f"bench-raw-{uuid.uuid4().hex[:8]}")
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while n < events:
        n += sum(len(rs) for rs in consumer.poll(timeout_ms=500).values())
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    consumer.close(autocommit=False)
    return {"events": n, "stored": None, "wall_s": wall, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--bootstrap", default=os.environ.get("DSPY_RL_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive loop (it is slow)")
    args = parser.parse_args(argv)
    if args.events < 1000:
        parser.error("--events must be >= 1000 for a meaningful rate")
    logging.basicConfig(level=logging.WARNING)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    produced, produce_s = produce(args.bootstrap, prefix, args.events)
    print(f"produced {produced} events in {produce_s:.1f}s ({produced / produce_s:,.0f}/s, acks=all)")
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows["ours"] = run_ours(args.bootstrap, prefix, produced, Path(tmp) / "ours.db")
        if not args.skip_naive:
            rows["naive"] = run_naive(args.bootstrap, prefix, produced, Path(tmp) / "naive.db")
        rows["consume-only"] = run_consume_only(args.bootstrap, prefix, produced)
    for r in rows.values():
        r["events_per_s"] = r["events"] / r["wall_s"]
        r["events_per_cpu_s"] = r["events"] / r["cpu_s"] if r["cpu_s"] > 0 else float("nan")
    print(f"\n{'variant':<14}{'events':>10}{'stored':>10}{'wall s':>9}{'events/s':>12}{'events/cpu-s':>14}")
    for name, r in rows.items():
        stored = "-" if r["stored"] is None else r["stored"]
        print(
            f"{name:<14}{r['events']:>10}{stored:>10}{r['wall_s']:>9.2f}{r['events_per_s']:>12,.0f}"
            f"{r['events_per_cpu_s']:>14,.0f}"
        )
    if "naive" in rows:
        print(
            f"\nours / naive (events/s): {rows['ours']['events_per_s'] / rows['naive']['events_per_s']:.2f}x"
        )
    print(
        f"ours / consume-only (events/s): {rows['ours']['events_per_s'] / rows['consume-only']['events_per_s']:.2f}x"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "kafka_ingest.json"
    out.write_text(
        json.dumps(
            {
                "events": produced,
                "produce_s": produce_s,
                "variants": rows,
                "load_avg": os.getloadavg(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "time": time.time(),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    ok = rows["ours"]["stored"] == produced
    if not ok:
        print(f"ERROR: stored {rows['ours']['stored']} of {produced} events", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
