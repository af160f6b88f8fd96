"""TraceStore: WAL, versioned schema, idempotent inserts, derived traces, queries."""

from __future__ import annotations

import sqlite3

import pytest

from dspy_rl.traces.spans import Span
from dspy_rl.traces.store import SCHEMA_VERSION, StoreError, TraceStore


def _span(
    kind: str, trace: str, agent: str, ts: float, sid: str, reward: float | None = None, **attrs
) -> Span:
    return Span(
        kind=kind,
        trace_id=trace,
        agent_id=agent,
        name=kind,
        span_id=sid,
        start_ts=ts,
        reward=reward,
        attributes=attrs,
    )


@pytest.fixture
def store(tmp_path):
    s = TraceStore(tmp_path / "traces.db")
    yield s
    s.close()


def test_new_file_is_wal_and_migrated(store, tmp_path):
    assert store.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "traces.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = conn.execute("SELECT version, description FROM schema_migrations").fetchall()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    conn.close()


def test_reopen_keeps_data_and_does_not_reapply_migrations(tmp_path):
    with TraceStore(tmp_path / "t.db") as s:
        s.insert_spans([_span("prompt", "t1", "a", 1.8e9, "s1")])
    with TraceStore(tmp_path / "t.db") as s:
        assert s.count_spans() == 1
        assert s.schema_version() == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    with TraceStore(tmp_path / "t.db"):
        pass
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        TraceStore(tmp_path / "t.db")


def test_not_a_database_is_reported(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        TraceStore(bad)


def test_inserts_are_idempotent_and_rewards_not_double_counted(store):
    spans = [
        _span("prompt", "t1", "a", 1.8e9, "p1"),
        _span("reward", "t1", "a", 1.8e9 + 1, "r1", reward=1.0),
        _span("reward", "t1", "a", 1.8e9 + 2, "r2", reward=-0.25),
    ]
    assert store.insert_spans(spans) == 3
    assert store.insert_spans(spans) == 0  # redelivery
    assert store.insert_spans(spans[1:2] + [_span("reward", "t1", "a", 1.8e9 + 3, "r3", reward=2.0)]) == 1
    assert store.count_spans() == 4
    (trace,) = store.query_traces()
    assert trace.total_reward == pytest.approx(2.75)
    assert trace.started_at == 1.8e9 and trace.ended_at == 1.8e9 + 3


def test_trace_end_sets_status_and_metadata(store):
    store.insert_spans(
        [
            _span("prompt", "t1", "a", 1.8e9, "p1"),
            Span(
                kind="content",
                trace_id="t1",
                agent_id="a",
                name="trace.end",
                span_id="e1",
                start_ts=1.8e9 + 5,
                attributes={"status": "success", "metadata": {"repo": "x"}},
            ),
        ]
    )
    trace = store.get_trace("t1")
    assert trace.status == "success" and trace.metadata == {"repo": "x"}
    assert [s.span_id for s in trace.spans] == ["p1", "e1"]
    assert store.get_trace("missing") is None


def test_query_by_agent_date_and_reward(store):
    day = 86400.0
    t0 = 1.8e9
    for i, (agent, reward) in enumerate([("a", 1.0), ("a", -1.0), ("b", 0.5), ("b", 3.0)]):
        store.insert_spans(
            [
                _span("prompt", f"t{i}", agent, t0 + i * day, f"p{i}"),
                _span("reward", f"t{i}", agent, t0 + i * day + 1, f"r{i}", reward=reward),
            ]
        )
    assert [t.trace_id for t in store.query_traces(agent_id="a")] == ["t0", "t1"]
    assert [t.trace_id for t in store.query_traces(since=t0 + day, until=t0 + 3 * day)] == ["t1", "t2"]
    assert [t.trace_id for t in store.query_traces(min_reward=0.5)] == ["t0", "t2", "t3"]
    assert [t.trace_id for t in store.query_traces(min_reward=0.0, max_reward=1.0)] == ["t0", "t2"]
    assert [t.trace_id for t in store.query_traces(agent_id="b", min_reward=1.0)] == ["t3"]
    assert len(store.query_traces(limit=2)) == 2
    with pytest.raises(ValueError, match="limit"):
        store.query_traces(limit=-1)
    kinds = {s.kind for s in store.iter_spans(kinds=["reward"], agent_id="b")}
    assert kinds == {"reward"}


def test_bad_synchronous_mode_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="synchronous"):
        TraceStore(tmp_path / "t.db", synchronous="SOMETIMES")


def test_failed_transaction_rolls_back(store):
    store.insert_spans([_span("prompt", "t1", "a", 1.8e9, "p1")])
    bad_row = ("p2", "t1", "a", "prompt", "x", None, 1.8e9, None, None, None)  # attributes NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_rows([("p3", "t1", "a", "prompt", "x", None, 1.8e9, None, None, "{}"), bad_row], "test")
    assert store.span_ids() == {"p1"}


def test_trace_end_with_odd_metadata_does_not_fail_the_batch(store):
    for i, metadata in enumerate(["just text", 42, None, ["a"], {"ok": True}]):
        store.insert_spans(
            [
                Span(
                    kind="content",
                    trace_id=f"t{i}",
                    agent_id="a",
                    name="trace.end",
                    span_id=f"e{i}",
                    start_ts=1.8e9,
                    attributes={"metadata": metadata},
                )
            ]
        )
    assert [t.metadata for t in store.query_traces()] == [{}, {}, {}, {}, {"ok": True}]
    assert {t.status for t in store.query_traces()} == {"ok"}
