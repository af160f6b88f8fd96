"""(a) Stop the broker in the middle of ingesting 100k events, restart it: exactly the 100k are stored.

Uses a private broker (own ports and state dir) so the shared one keeps serving the other tests. Slow: starting
and restarting a broker plus producing 100k events takes minutes on a small machine. Set
``DSPY_RL_RESTART_EVENTS`` to run it with fewer events.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from dspy_rl.stream.ingest import IngestConfig, KafkaIngester
from dspy_rl.traces.spans import Span
from dspy_rl.traces.store import TraceStore
from tests.stream.conftest import KAFKA_CLIENTS

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOPICS = ("agent.actions", "agent.rewards", "agent.tool_usage")


def _events(n: int) -> list[Span]:
    kinds = (("prompt", None), ("reward", 1.0), ("tool", None))
    return [
        Span(
            kind=kinds[i % 3][0],
            trace_id=f"trace-{i // 10}",
            agent_id=f"agent-{i % 7}",
            name="x",
            span_id=f"event-{i:07d}",
            start_ts=1.8e9 + i,
            reward=kinds[i % 3][1],
            attributes={"i": i},
        )
        for i in range(n)
    ]


def _count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_broker_restart_mid_ingest_stores_every_event_once(
    private_kafka_broker, topic_prefix, produce, tmp_path, client
):
    n = int(os.environ.get("DSPY_RL_RESTART_EVENTS", "100000"))
    spans = _events(n)
    produce(private_kafka_broker.bootstrap, [(topic_prefix + s.topic, s.to_json_bytes()) for s in spans])
    db = tmp_path / "t.db"
    store = TraceStore(db)
    ingester = KafkaIngester(
        store,
        IngestConfig(
            client=client,
            bootstrap_servers=private_kafka_broker.bootstrap,
            topic_prefix=topic_prefix,
            group_id=topic_prefix + "g",
            batch_size=2000,
            commit_timeout_ms=5000,
        ),
    )
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(metrics=ingester.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 600
    while _count(db) < n // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped_at = _count(db)
    private_kafka_broker.stop()
    assert stopped_at < n, "the broker stopped after ingest had finished; nothing was tested"
    time.sleep(3)  # the ingester keeps running against a dead broker
    assert thread.is_alive()
    private_kafka_broker.start()
    while _count(db) < n and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.2)
    time.sleep(2)  # anything redelivered after reaching n would show up as a failed dedupe below
    ingester.request_stop()
    thread.join(timeout=120)
    assert not thread.is_alive()
    metrics = result["metrics"]
    assert store.count_spans() == n
    assert store.span_ids() == {s.span_id for s in spans}
    assert metrics.dlq == 0 and metrics.events == metrics.stored + metrics.duplicates
    store.close()
