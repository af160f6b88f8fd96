"""KafkaIngester's pipeline, commit and idle logic against an in-memory consumer (no broker): deterministic
interleavings that a real broker produces only under load."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka.structs import TopicPartition

from dspy_rl.stream import ingest as ingest_module
from dspy_rl.stream.bus import FileBus
from dspy_rl.stream.ingest import IngestConfig, KafkaIngester
from dspy_rl.stream.synthetic import synthetic_spans
from dspy_rl.traces.spans import Span
from dspy_rl.traces.store import TraceStore


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    timestamp: int = 0


class FakeConsumer:
    """The part of kafka-python's KafkaConsumer the ingester uses, over in-memory partitions.

    ``visible`` limits how many records of each partition polls return (``None``: all; a partition missing from
    it is not fetched at all); the high watermark is the partition's length, unknown (``None``) until a poll has
    fetched the partition, as in kafka-python. ``on_poll`` runs before every poll (tests use it to advance a fake
    clock or change what is visible).

    A poll with nothing to return blocks for ``timeout_ms`` (real time), as KafkaConsumer.poll does: returning at
    once would turn the ingester's loop into a busy spin while its writer thread stores a batch, with a per-poll
    fake clock racing ahead of the write (and the spinning thread holding the GIL the writer needs).
    """

    def __init__(self, partitions: dict[TopicPartition, list[_Record]]) -> None:
        self.partitions = partitions
        self.positions = dict.fromkeys(partitions, 0)
        self.committed: dict[TopicPartition, int] = {}
        self.fetched: set[TopicPartition] = set()
        self.visible: dict[TopicPartition, int] | None = None
        self.assigned = set(partitions)
        self.on_poll: Any = None
        self.polls = 0
        self.rng = random.Random(0)

    def _end(self, tp: TopicPartition) -> int:
        n = len(self.partitions[tp])
        return n if self.visible is None else min(n, self.visible.get(tp, 0))

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[_Record]]:
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll(self)
        out: dict[TopicPartition, list[_Record]] = {}
        budget = max_records or 1 << 30
        tps = sorted(self.assigned)
        self.rng.shuffle(tps)
        for tp in tps:
            if budget <= 0:
                break
            if self.visible is not None and tp not in self.visible:
                continue  # not fetched yet (e.g. leader epoch settling, or the process was stalled)
            self.fetched.add(tp)
            take = self.partitions[tp][self.positions[tp] : self._end(tp)][: self.rng.randint(1, budget)]
            if take:
                out[tp] = take
                self.positions[tp] += len(take)
                budget -= len(take)
        if not out:
            # The whole wait: nothing arrives meanwhile (only on_poll changes what is visible).
            time.sleep(timeout_ms / 1000)
        return out

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:
            raise ValueError("Unassigned partition")
        self.positions[tp] = offset

    def highwater(self, tp: TopicPartition) -> int | None:
        return len(self.partitions[tp]) if tp in self.fetched else None

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return self.positions[tp]

    def commit(self, offsets: dict[TopicPartition, Any], timeout_ms: int | None = None) -> None:
        for tp, meta in offsets.items():
            self.committed[tp] = max(self.committed.get(tp, 0), meta.offset)

    def close(self, autocommit: bool = False) -> None:
        pass


def _partitions(spans: list[Span], n_partitions: int = 3) -> dict[TopicPartition, list[_Record]]:
    parts: dict[TopicPartition, list[_Record]] = {}
    for i, span in enumerate(spans):
        tp = TopicPartition(span.topic, i % n_partitions)
        records = parts.setdefault(tp, [])
        records.append(_Record(tp.topic, tp.partition, len(records), span.to_json_bytes()))
    return parts


class _FailingStore(TraceStore):
    """Fails the writes whose (1-based) numbers are in ``fail_calls``, as a locked or full disk would."""

    def __init__(self, path: Path, fail_calls: set[int]) -> None:
        super().__init__(path)
        self.fail_calls = fail_calls
        self.calls = 0

    def insert_rows(self, rows, source):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise sqlite3.OperationalError("database is locked")
        return super().insert_rows(rows, source)


class FakeTime:
    """Stands in for the ``time`` module inside dspy_rl.stream.ingest: a clock that only tests advance, and no
    pause before a retried write."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        pass


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(ingest_module, "time", clock)
    return clock


class RealClockNoPause:
    """The real clock, without the pause before a retried write (these tests fail many writes)."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    @staticmethod
    def sleep(seconds: float) -> None:
        pass


@pytest.fixture
def no_retry_pause(monkeypatch):
    monkeypatch.setattr(ingest_module, "time", RealClockNoPause)


#: Seeds of the randomized pipeline test; raise it to hunt for rare interleavings.
PIPELINE_SEEDS = int(os.environ.get("DSPY_RL_INGEST_PIPELINE_SEEDS", "8"))


@pytest.mark.parametrize("seed", range(PIPELINE_SEEDS))
def test_failed_writes_are_retried_until_every_record_is_stored_and_committed(seed, tmp_path, no_retry_pause):
    """Random batch sizes, pipeline depths, poll sizes and failed writes: every rewind is retried, nothing is left
    in flight, and each partition ends committed at its end."""
    rng = random.Random(seed)
    spans = list(synthetic_spans(40, seed=seed))
    consumer = FakeConsumer(_partitions(spans))
    consumer.rng = random.Random(seed)
    store = _FailingStore(tmp_path / "t.db", fail_calls={1, *rng.sample(range(2, 30), 5)})
    cfg = IngestConfig(
        batch_size=rng.randint(3, 30),
        batch_max_wait_ms=0,
        pipeline_depth=rng.randint(1, 4),
        idle_timeout_s=0.3,
        max_seconds=60,
    )
    ingester = KafkaIngester(store, cfg, consumer=consumer, dlq_bus=FileBus(tmp_path / "dlq"))
    metrics = ingester.run()
    assert store.span_ids() == {s.span_id for s in spans}, f"not all stored within max_seconds: {metrics}"
    assert consumer.committed == {tp: len(records) for tp, records in consumer.partitions.items()}
    assert metrics.retried_batches >= 1
    assert metrics.stored == len(spans)
    store.close()


@pytest.mark.parametrize("stall", ["partitions_not_fetched_yet", "stalled_while_behind"])
def test_idle_timeout_only_counts_once_caught_up(stall, fake_time, tmp_path):
    """No records for longer than ``idle_timeout_s`` is not idle while records are waiting: partitions assigned but
    not fetched yet (after a rebalance, or while a leader epoch settles), or a stall of the process or broker
    while behind. The ingester used to stop there with the records unconsumed."""
    spans = list(synthetic_spans(30, seed=11))
    consumer = FakeConsumer(_partitions(spans))
    if stall == "partitions_not_fetched_yet":
        consumer.visible = {}  # assigned, but no fetch response yet
    else:
        consumer.visible = {
            tp: 5 for tp in consumer.partitions
        }  # then polls return nothing, though more exist
    served = sum(consumer._end(tp) for tp in consumer.partitions)
    store = TraceStore(tmp_path / "t.db")
    cfg = IngestConfig(
        batch_size=50,
        batch_max_wait_ms=0,
        poll_timeout_ms=10,  # the real time an empty poll blocks (while a batch is written, say)
        pipeline_depth=1,
        idle_timeout_s=5,
        max_seconds=10_000,
    )
    ingester = KafkaIngester(store, cfg, consumer=consumer, dlq_bus=FileBus(tmp_path / "dlq"))
    stalled_polls = 0

    def on_poll(c: FakeConsumer) -> None:
        nonlocal stalled_polls
        fake_time.now += 1.0  # every poll takes a second of (fake) time
        if (
            c.visible is not None and ingester.metrics.events == served
        ):  # all served records written, committed
            stalled_polls += 1
            if stalled_polls == 20:  # four idle timeouts later, the stall is over: everything is served
                c.visible = None

    consumer.on_poll = on_poll
    metrics = ingester.run()
    assert metrics.events == len(spans), f"stopped as idle with records waiting: {metrics}"
    assert store.span_ids() == {s.span_id for s in spans}
    assert consumer.committed == {tp: len(records) for tp, records in consumer.partitions.items()}
    assert fake_time.now - 1000.0 < 10_000, "ran into max_seconds instead of stopping once idle"
    store.close()
