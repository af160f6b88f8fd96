"""Kafka ingestion against the real broker: commit policy, dead letters, SIGKILL and SIGTERM."""

from __future__ import annotations

import base64
import json
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from dspy_rl.stream.ingest import IngestConfig, KafkaIngester
from dspy_rl.stream.synthetic import synthetic_spans
from dspy_rl.traces.spans import INGEST_TOPICS, TOPIC_DLQ, MalformedEvent, Span, decode_event_row
from dspy_rl.traces.store import TraceStore
from tests.stream.conftest import KAFKA_CLIENTS, KAFKA_CLIENTS_SLOW_FALLBACK

pytestmark = pytest.mark.kafka


def _valid_messages(prefix: str, traces: int, seed: int) -> tuple[list[tuple[str, bytes]], list[Span]]:
    spans = list(synthetic_spans(traces, seed=seed))
    return [(prefix + s.topic, s.to_json_bytes()) for s in spans], spans


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def _committed_total(bootstrap: str, group: str, prefix: str) -> int:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    total = 0
    for topic in INGEST_TOPICS:
        for p in consumer.partitions_for_topic(prefix + topic) or ():
            total += consumer.committed(TopicPartition(prefix + topic, p)) or 0
    consumer.close(autocommit=False)
    return total


def _read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 120) -> list:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    deadline = time.monotonic() + timeout_s
    while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
        time.sleep(0.5)
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()])
    consumer.seek_to_beginning()
    out: list = []
    while len(out) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            out.extend(records)
    consumer.close(autocommit=False)
    return out


def _expected_trace_rewards(spans: list[Span]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for s in spans:
        if s.kind == "reward":
            totals[s.trace_id] += s.reward
    return totals


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_ingest_commits_after_write_and_dead_letters(kafka_broker, topic_prefix, produce, tmp_path, client):
    messages, spans = _valid_messages(topic_prefix, 300, seed=1)
    bad = [(topic_prefix + "agent.actions", b"{not json"), (topic_prefix + "agent.rewards", None)]
    produce(kafka_broker, messages[:500] + bad + messages[500:])
    store = TraceStore(tmp_path / "t.db")
    group = topic_prefix + "g"
    cfg = IngestConfig(
        client=client,
        bootstrap_servers=kafka_broker,
        topic_prefix=topic_prefix,
        group_id=group,
        batch_size=400,
        idle_timeout_s=4,
    )
    metrics = KafkaIngester(store, cfg).run()
    assert metrics.events == len(messages) + 2 and metrics.dlq == 2 and metrics.lag == 0
    assert store.span_ids() == {s.span_id for s in spans}
    # Offsets were committed for everything consumed (valid and dead-lettered).
    assert _committed_total(kafka_broker, group, topic_prefix) == len(messages) + 2
    dead = _read_topic(kafka_broker, topic_prefix + TOPIC_DLQ, 2)
    reasons = sorted(json.loads(r.value)["reason"] for r in dead)
    assert reasons[0].startswith("empty message") and reasons[1].startswith("invalid JSON")
    # A second run of the same group finds nothing new: offsets were committed.
    again = KafkaIngester(store, IngestConfig(**{**cfg.__dict__, "idle_timeout_s": 3})).run()
    assert again.events == 0
    # Rewards of each trace are summed exactly once.
    expected = _expected_trace_rewards(spans)
    for record in store.query_traces():
        assert record.total_reward == pytest.approx(expected[record.trace_id])
    store.close()


@pytest.mark.parametrize("client", KAFKA_CLIENTS_SLOW_FALLBACK)
def test_sigkill_mid_batch_loses_and_duplicates_nothing(
    kafka_broker, topic_prefix, produce, ingest_command, tmp_path, client
):
    """(b) SIGKILL the ingester while it works, twice, then restart: exactly the produced spans are stored."""
    messages, spans = _valid_messages(topic_prefix, 1500, seed=2)
    produce(kafka_broker, messages)
    n = len(messages)
    db = tmp_path / "t.db"
    cmd = ingest_command(
        kafka_broker,
        topic_prefix,
        db,
        "ingest.batch_size=300",
        "ingest.batch_max_wait_ms=50",
        "ingest.session_timeout_ms=6000",
        f"stream.client={client}",
    )
    for fraction in (0.25, 0.6):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while _count(db) < fraction * n and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the ingester exited before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stored = _count(db)
        assert stored < n, "the kill came too late to be mid-ingest"
        # Commit-after-write: never an offset committed for a record that is not in the store.
        assert _committed_total(kafka_broker, topic_prefix + "ingest", topic_prefix) <= stored
    final = subprocess.run([*cmd, "ingest.idle_timeout_s=5"], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    metrics = json.loads(final.stdout)
    assert metrics["dlq"] == 0 and metrics["events"] == metrics["stored"] + metrics["duplicates"]
    with TraceStore(db) as store:
        assert store.count_spans() == n
        assert store.span_ids() == {s.span_id for s in spans}
        expected = _expected_trace_rewards(spans)
        totals = {t.trace_id: t.total_reward for t in store.query_traces()}
        assert totals.keys() == {s.trace_id for s in spans}
        for trace_id, total in expected.items():
            assert totals[trace_id] == pytest.approx(total)


def _malformed(rng: random.Random, valid: dict, prefix: str) -> tuple[str, bytes | None]:
    """One malformed message of a random kind (never a valid event)."""
    topic = prefix + rng.choice(INGEST_TOPICS)
    choice = rng.randrange(10)
    if choice == 0:
        return topic, rng.randbytes(rng.randrange(0, 200))
    if choice == 1:
        text = json.dumps(valid)
        return topic, text[: rng.randrange(1, len(text) - 1)].encode()
    if choice == 2:
        return topic, None
    if choice == 3:
        return topic, rng.choice([b"[", b'{"a":']) * rng.randrange(2000, 6000)
    if choice == 4:
        return topic, json.dumps(rng.choice([[], [valid], 42, "event", None, True])).encode()
    if choice == 5:
        return topic, json.dumps(valid).replace('"t', '"\\ud800t', 1).encode() + b"\xff\xfe"
    event = dict(valid)
    if choice == 6:
        del event[rng.choice(["event_id", "trace_id", "agent_id", "kind", "ts"])]
    elif choice == 7:
        key = rng.choice(["event_id", "trace_id", "agent_id"])
        event[key] = rng.choice([None, "", 123, [], {}, True, "x" * 300])
    elif choice == 8:
        event["ts"] = rng.choice(["now", None, True, 1e20, -5, [1.8e9]])
    else:
        event["kind"] = rng.choice(["shout", None, 5, "Prompt"])
    return topic, json.dumps(event).encode()


@pytest.mark.parametrize("client", KAFKA_CLIENTS_SLOW_FALLBACK)
def test_fuzzed_malformed_messages_go_to_dlq_and_ingester_keeps_running(
    kafka_broker, topic_prefix, produce, ingest_command, tmp_path, client
):
    """(c) 10k fuzzed malformed messages among valid ones: all dead-lettered with reasons, valid ones stored,
    the process keeps running and exits cleanly on SIGTERM."""
    rng = random.Random(0)
    valid_messages, spans = _valid_messages(topic_prefix, 400, seed=3)
    template = json.loads(valid_messages[0][1])
    malformed = []
    while len(malformed) < 10000:
        topic, value = _malformed(rng, template, topic_prefix)
        try:  # the fuzzer must only produce invalid events
            decode_event_row(value, topic)
        except MalformedEvent:
            malformed.append((topic, value))
    mixed = valid_messages + malformed
    rng.shuffle(mixed)
    produce(kafka_broker, mixed)
    db = tmp_path / "t.db"
    proc = subprocess.Popen(
        ingest_command(kafka_broker, topic_prefix, db, "ingest.batch_size=2000", f"stream.client={client}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        dead = _read_topic(kafka_broker, topic_prefix + TOPIC_DLQ, len(malformed), timeout_s=240)
        deadline = time.monotonic() + 60
        while _count(db) < len(spans) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, "the ingester died on malformed input"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    metrics = json.loads(out)
    assert metrics["dlq"] == len(malformed) and metrics["events"] == len(mixed)
    assert len(dead) == len(malformed)
    letters = [json.loads(r.value) for r in dead]
    assert all(letter["reason"] for letter in letters)
    assert len({(d["topic"], d["partition"], d["offset"]) for d in letters}) == len(malformed)
    sent = Counter(value or b"" for _, value in malformed)
    assert Counter(base64.b64decode(d["payload_b64"]) for d in letters) == sent
    with TraceStore(db) as store:
        assert store.span_ids() == {s.span_id for s in spans}


class _FlakyStore(TraceStore):
    """Fails its first write, as a locked or full disk would."""

    failures = 1

    def insert_rows(self, rows, source):
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().insert_rows(rows, source)


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_failed_write_is_rewound_and_retried_and_huge_dead_letters_are_cut(
    kafka_broker, topic_prefix, produce, tmp_path, client
):
    messages, spans = _valid_messages(topic_prefix, 50, seed=4)
    huge = b"{" + b" " * (2 << 20)  # 2 MiB of malformed JSON
    produce(kafka_broker, [*messages, (topic_prefix + "agent.actions", huge)])
    store = _FlakyStore(tmp_path / "t.db")
    # Small batches: later batches are already parsed and queued (pipeline) when the first write fails.
    # max_seconds bounds the run, so an ingester that never finishes fails the assertions below instead of hanging.
    cfg = IngestConfig(
        client=client,
        bootstrap_servers=kafka_broker,
        topic_prefix=topic_prefix,
        group_id=topic_prefix + "g",
        idle_timeout_s=4,
        max_seconds=180,
        batch_size=25,
        batch_max_wait_ms=0,
        pipeline_depth=3,
    )
    metrics = KafkaIngester(store, cfg).run()
    assert store.span_ids() == {s.span_id for s in spans}, (
        f"ingest ended before storing every span: {metrics}"
    )
    assert store.failures == 0 and metrics.retried_batches == 1, metrics
    assert _committed_total(kafka_broker, topic_prefix + "g", topic_prefix) == len(messages) + 1
    # At-least-once: if this process or the broker stalls past the group session timeout, the group rebalances,
    # the commits in flight fail and their records are redelivered, so the huge message may be dead-lettered
    # twice. Every dead letter names the same origin, which identifies the duplicates.
    assert metrics.dlq == 1 or (metrics.dlq > 1 and metrics.commit_failures > 0), metrics
    letters = [json.loads(r.value) for r in _read_topic(kafka_broker, topic_prefix + TOPIC_DLQ, metrics.dlq)]
    assert len({(d["topic"], d["partition"], d["offset"]) for d in letters}) == 1, letters
    for letter in letters:
        assert letter["payload_truncated"] and letter["payload_bytes"] == len(huge)
        assert "limit is" in letter["reason"]
    store.close()


@pytest.mark.slow  # two spawned interpreters plus group rebalances: slow and load-sensitive on 2 cores
def test_two_worker_processes_share_the_partitions(
    kafka_broker, topic_prefix, produce, ingest_command, tmp_path
):
    messages, spans = _valid_messages(topic_prefix, 300, seed=6)
    produce(kafka_broker, messages)
    db = tmp_path / "t.db"
    cmd = ingest_command(
        kafka_broker,
        topic_prefix,
        db,
        "ingest.workers=2",
        "ingest.idle_timeout_s=4",
        "ingest.batch_size=200",
        "ingest.max_seconds=150",
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    assert metrics["events"] == len(messages) and metrics["stored"] == len(messages)
    assert result.stderr.count("worker0") > 0 and result.stderr.count("worker1") > 0
    with TraceStore(db) as store:
        assert store.span_ids() == {s.span_id for s in spans}


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_group_joined_before_its_topics_exist_gets_them_assigned(
    kafka_broker, topic_prefix, produce, tmp_path, client
):
    """The hang this file's failed-write test used to show (~1 run in 8): kafka-python 3.0 loses the assignment of
    a rebalance that outlasts the poll() that started it, when the group leader re-assigns because the topics'
    metadata changed, and then never rejoins. 1 ms polls make every such rebalance outlast its poll."""
    store = TraceStore(tmp_path / "t.db")
    cfg = IngestConfig(
        client=client,
        bootstrap_servers=kafka_broker,
        topic_prefix=topic_prefix,
        group_id=topic_prefix + "g",
        poll_timeout_ms=1,
        batch_max_wait_ms=0,
        idle_timeout_s=3,
        max_seconds=60,
    )
    ingester = KafkaIngester(store, cfg)
    ingester.ingest_for(max_seconds=2)  # joins the group while none of its topics exists
    messages, spans = _valid_messages(topic_prefix, 20, seed=7)
    produce(kafka_broker, messages)
    metrics = ingester.run()
    assert store.span_ids() == {s.span_id for s in spans}, (
        f"no partitions assigned within max_seconds: {metrics}"
    )
    store.close()
