"""End-to-end Kafka → SQLite ingest throughput with the at-least-once commit policy.

    python bench/kafka_ingest.py --events 200000 [--bootstrap 127.0.0.1:9092]

Needs the local broker (``scripts/kafka.sh start``). Produces ``--events`` synthetic span events once (realistic
sizes: prompts, tool calls, rewards; ~300-600 bytes each) to fresh topics, then consumes them from the start with
a fresh consumer group, three ways, in the same run:

* **ours <client>**: :class:`dspy_rl.stream.ingest.KafkaIngester` on confluent-kafka (librdkafka) and on
  kafka-python (batched polls, validation, one SQLite transaction per batch with ``synchronous=FULL``, DLQ flush,
  offset commit after the transaction), in one process and as ``ingest.workers=2`` processes;
* **naive** (``--naive``): the textbook kafka-python loop: ``json.loads`` + ``Span`` per message, one transaction
  per poll, commit after it;
* **consume-only <client>**: the client doing nothing with the records: its ceiling.

Prints a table with events/s (wall) and events per CPU-second of this process (less sensitive to other load on
the machine), and writes ``bench/results/kafka_ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import sqlite3
import subprocess
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


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median steady-state rate (all runs stay in the JSON)."""
    ranked = sorted(runs, key=lambda r: r.get("steady_events_per_s") or r["events_per_s"])
    return ranked[len(ranked) // 2]


def run_ours(
    bootstrap: str, prefix: str, events: int, db: Path, batch_size: int, client: str = "kafka-python"
) -> dict[str, Any]:
    store = TraceStore(db, synchronous="FULL")
    cfg = IngestConfig(
        client=client,
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        group_id=f"bench-ours-{uuid.uuid4().hex[:8]}",
        max_events=events,
        batch_size=batch_size,
        idle_timeout_s=30,
        metrics_interval_s=1e9,
    )
    ingester = KafkaIngester(store, cfg)
    first: list[tuple[float, int]] = []
    last: list[float] = [0.0]

    def on_batch(m: Any) -> None:
        if not first:
            first.append((time.perf_counter(), m.events))
        last[0] = time.perf_counter()

    ingester.on_batch = on_batch
    wall0, cpu0 = time.perf_counter(), time.process_time()
    metrics = ingester.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stored = store.count_spans()
    store.close()
    steady = (
        (metrics.events - first[0][1]) / (last[0] - first[0][0]) if first and last[0] > first[0][0] else None
    )
    return {
        "events": metrics.events,
        "stored": stored,
        "wall_s": wall,
        "cpu_s": cpu,
        "steady_events_per_s": steady,
    }


def run_naive(bootstrap: str, prefix: str, events: int, db: Path) -> dict[str, Any]:
    from kafka.structs import OffsetAndMetadata

    store = TraceStore(db, synchronous="FULL")
    consumer = _consumer(bootstrap, prefix, f"bench-naive-{uuid.uuid4().hex[:8]}")
    n = 0
    first: tuple[float, int] | None = None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while n < events:
        polled = consumer.poll(timeout_ms=500)
        if polled and first is None:
            first = (time.perf_counter(), 0)
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
    end = time.perf_counter()
    wall, cpu = end - wall0, time.process_time() - cpu0
    consumer.close(autocommit=False)
    stored = store.count_spans()
    store.close()
    steady = n / (end - first[0]) if first else None
    return {"events": n, "stored": stored, "wall_s": wall, "cpu_s": cpu, "steady_events_per_s": steady}


def run_consume_only(bootstrap: str, prefix: str, events: int) -> dict[str, Any]:
    consumer = _consumer(bootstrap, prefix, f"bench-raw-{uuid.uuid4().hex[:8]}")
    n = 0
    first = None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while n < events:
        got = sum(len(rs) for rs in consumer.poll(timeout_ms=500).values())
        if got and first is None:
            first = time.perf_counter()
        n += got
    end = time.perf_counter()
    wall, cpu = end - wall0, time.process_time() - cpu0
    consumer.close(autocommit=False)
    steady = n / (end - first) if first else None
    return {"events": n, "stored": None, "wall_s": wall, "cpu_s": cpu, "steady_events_per_s": steady}


def run_consume_only_confluent(bootstrap: str, prefix: str, events: int) -> dict[str, Any]:
    from dspy_rl.stream.confluent import ConfluentConsumer

    consumer = ConfluentConsumer(
        bootstrap, f"bench-rawc-{uuid.uuid4().hex[:8]}", [prefix + t for t in INGEST_TOPICS]
    )
    n = 0
    first = None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while n < events:
        got = len(consumer._consumer.consume(num_messages=20000, timeout=0.5))
        if got and first is None:
            first = time.perf_counter()
        n += got
    end = time.perf_counter()
    wall, cpu = end - wall0, time.process_time() - cpu0
    consumer.close()
    steady = n / (end - first) if first else None
    return {"events": n, "stored": None, "wall_s": wall, "cpu_s": cpu, "steady_events_per_s": steady}


def run_workers_cli(
    bootstrap: str, prefix: str, events: int, db: Path, workers: int, batch_size: int, client: str = "auto"
) -> dict[str, Any]:
    """``dspy-rl stream ingest ingest.workers=N`` as a process; rates from polling the store's row count."""
    cmd = [
        sys.executable,
        "-m",
        "dspy_rl",
        "stream",
        "ingest",
        "stream=kafka",
        f"stream.bootstrap_servers={bootstrap}",
        f"stream.topic_prefix={prefix}",
        f"stream.group_id=bench-w{workers}-{uuid.uuid4().hex[:8]}",
        f"store={db}",
        f"ingest.workers={workers}",
        f"ingest.batch_size={batch_size}",
        f"stream.client={client}",
    ]
    wall0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first: tuple[float, int] | None = None
    count = 0
    deadline = time.monotonic() + 900
    while count < events and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        count = _count(db)
        if count and first is None:
            first = (time.perf_counter(), count)
    end = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    steady = (count - first[1]) / (end - first[0]) if first and end > first[0] else None
    return {
        "events": count,
        "stored": _count(db),
        "wall_s": end - wall0,
        "cpu_s": float("nan"),
        "steady_events_per_s": steady,
    }


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--bootstrap", default=os.environ.get("DSPY_RL_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--workers", type=int, default=2, help="also run `ingest.workers=N` (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="repeat every variant; the table shows medians")
    parser.add_argument("--batch-size", type=int, default=20000, help="records per store transaction (ours)")
    parser.add_argument(
        "--clients", default="confluent,kafka-python", help="comma-separated client libraries"
    )
    parser.add_argument("--naive", action="store_true", help="also run the naive kafka-python loop")
    args = parser.parse_args(argv)
    args.skip_naive = not args.naive
    args.clients = [c for c in args.clients.split(",") if c]
    if not set(args.clients) <= {"confluent", "kafka-python"} or not args.clients:
        parser.error("--clients: a comma-separated subset of confluent,kafka-python")
    if args.events < 1000:
        parser.error("--events must be >= 1000 for a meaningful rate")
    if args.rounds < 1 or args.batch_size < 1:
        parser.error("--rounds and --batch-size must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    produced, produce_s = produce(args.bootstrap, prefix, args.events)
    print(f"produced {produced} events in {produce_s:.1f}s ({produced / produce_s:,.0f}/s, acks=all)")
    runs: dict[str, list[dict[str, Any]]] = {}
    # Rounds interleave the variants, so a burst of load from other processes hits all of them alike.
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            for client in args.clients:
                runs.setdefault(f"ours {client}", []).append(
                    run_ours(
                        args.bootstrap,
                        prefix,
                        produced,
                        Path(tmp) / f"ours-{client}.db",
                        args.batch_size,
                        client,
                    )
                )
            if not args.skip_naive:
                runs.setdefault("naive", []).append(
                    run_naive(args.bootstrap, prefix, produced, Path(tmp) / "naive.db")
                )
            if args.workers > 1:
                for client in args.clients:
                    runs.setdefault(f"ours {client} x{args.workers}", []).append(
                        run_workers_cli(
                            args.bootstrap,
                            prefix,
                            produced,
                            Path(tmp) / f"workers-{client}.db",
                            args.workers,
                            args.batch_size,
                            client,
                        )  # fmt: skip
                    )
            if "kafka-python" in args.clients:
                runs.setdefault("consume-only kafka-python", []).append(
                    run_consume_only(args.bootstrap, prefix, produced)
                )
            if "confluent" in args.clients:
                runs.setdefault("consume-only confluent", []).append(
                    run_consume_only_confluent(args.bootstrap, prefix, produced)
                )
        print(f"round {round_ + 1}/{args.rounds} done")
    for variant in runs.values():
        for r in variant:
            r["events_per_s"] = r["events"] / r["wall_s"]
            r["events_per_cpu_s"] = r["events"] / r["cpu_s"] if r["cpu_s"] > 0 else float("nan")  # NaN: n/a
    rows = {name: _median_run(variant) for name, variant in runs.items()}
    header = f"{'variant (median)':<30}{'events':>9}{'stored':>9}{'wall s':>8}{'events/s':>10}{'steady/s':>10}{'ev/cpu-s':>10}"
    print("\n" + header)
    for name, r in rows.items():
        stored = "-" if r["stored"] is None else r["stored"]
        steady = r.get("steady_events_per_s")
        steady_s = "-" if steady is None else f"{steady:,.0f}"
        cpu = "-" if r["events_per_cpu_s"] != r["events_per_cpu_s"] else f"{r['events_per_cpu_s']:,.0f}"
        print(
            f"{name:<30}{r['events']:>9}{stored:>9}{r['wall_s']:>8.2f}{r['events_per_s']:>10,.0f}"
            f"{steady_s:>10}{cpu:>10}"
        )
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; steady/s counts from the first stored "
        "batch to the last (excludes the consumer-group join); ev/cpu-s = events per CPU-second of this process"
    )
    ratios = {}
    if {"ours confluent", "ours kafka-python"} <= rows.keys():
        for key in ("events_per_s", "steady_events_per_s"):
            a, b = rows["ours confluent"].get(key), rows["ours kafka-python"].get(key)
            if a and b:
                ratios[key] = a / b
        print(f"\nours confluent / ours kafka-python: {ratios.get('events_per_s', float('nan')):.2f}x events/s, "
              f"{ratios.get('steady_events_per_s', float('nan')):.2f}x steady/s (same run, same topics)")  # fmt: skip
    if "naive" in rows and "ours kafka-python" in rows:
        print(f"ours kafka-python / naive (events/s): "
              f"{rows['ours kafka-python']['events_per_s'] / rows['naive']['events_per_s']:.2f}x")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "kafka_ingest.json"
    out.write_text(
        json.dumps(
            {
                "events": produced,
                "produce_s": produce_s,
                "variants": rows,
                "all_runs": runs,
                "batch_size": args.batch_size,
                "ratios_confluent_over_kafka_python": ratios,
                "load_avg": os.getloadavg(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "time": time.time(),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    short = {n: r["stored"] for n, r in rows.items() if n.startswith("ours") and r["stored"] != produced}
    ok = not short
    if not ok:
        print(f"ERROR: stored fewer than the {produced} events produced: {short}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
