"""SQLite trace store: one file, WAL journal, versioned schema, idempotent on event id.

Spans are the rows (``spans``, primary key ``span_id`` = event id; ``ON CONFLICT (span_id) DO NOTHING`` makes
redelivered events no-ops). Traces (``traces``) are derived from their spans on every write: start = earliest span,
end = latest span end, ``total_reward`` = sum of the trace's reward spans (recomputed, so redelivery never
double-counts), status and metadata from the SDK's ``trace.end`` span. Schema changes are numbered migrations
recorded in ``schema_migrations``; opening a file applies the pending ones and refuses a file written by a newer
version.

One :class:`TraceStore` holds one connection; share it between threads only through its own lock (every public
method takes it), or open one store per thread (WAL lets readers run beside the single writer).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dspy_rl.traces.spans import Span, span_row

logger = logging.getLogger(__name__)

#: Name of the span the SDK writes when a trace ends (kind ``content``); it carries status and metadata.
TRACE_END = "trace.end"

#: (version, description, SQL). Append only: never edit a released migration.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "traces and spans",
        """
        CREATE TABLE traces (
            trace_id     TEXT PRIMARY KEY,
            agent_id     TEXT NOT NULL,
            started_at   REAL NOT NULL,
            ended_at     REAL,
            status       TEXT NOT NULL DEFAULT 'open',
            total_reward REAL,
            metadata     TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX traces_agent_time ON traces (agent_id, started_at);
        CREATE INDEX traces_time ON traces (started_at);
        CREATE TABLE spans (
            span_id    TEXT PRIMARY KEY,
            trace_id   TEXT NOT NULL,
            agent_id   TEXT NOT NULL,
            kind       TEXT NOT NULL,
            name       TEXT NOT NULL,
            parent_id  TEXT,
            start_ts   REAL NOT NULL,
            end_ts     REAL,
            reward     REAL,
            attributes TEXT NOT NULL,
            source     TEXT NOT NULL
        );
        CREATE INDEX spans_trace ON spans (trace_id, kind);
        CREATE INDEX spans_kind_time ON spans (kind, start_ts);
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def check_store_path(path: str | Path, key: str, must_exist: bool = False) -> None:
    """:class:`~dspy_rl.config.ConfigError` (one line: the key, the value, what is allowed) unless ``path`` is
    an SQLite trace store, or (``must_exist=False``) a new one can be created there. Checked before any work
    starts, so a wrong ``store=``/``db=`` never surfaces as a traceback from deep inside a run."""
    from dspy_rl.config import ConfigError

    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"{key}={str(path)!r} is a directory; expected the path of an SQLite trace store file"
        )
    if p.exists():
        try:
            with p.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise ConfigError(
                f"{key}={str(path)!r} cannot be read ({exc.strerror}); expected an SQLite trace store"
            ) from None
        if head and head != SQLITE_HEADER:
            raise ConfigError(
                f"{key}={str(path)!r} is not an SQLite database (its first bytes are {head[:16]!r}); expected the "
                "path of a trace store written by `dspy-rl stream ingest` or the TraceCollector SDK"
            )
        return
    if must_exist:
        raise ConfigError(
            f"{key}={str(path)!r} does not exist; expected the path of a trace store written by `dspy-rl stream "
            "ingest` or the TraceCollector SDK"
        )
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{key}={str(path)!r} cannot be created: {parent} is not a directory")


def _sql_text(value: str) -> str:
    """``value`` as the body of a SQL string literal (quotes doubled)."""
    return value.replace("'", "''")


class StoreError(RuntimeError):
    """The store file cannot be used (newer schema, not a database, ...)."""


@dataclass
class TraceRecord:
    """One trace row, with its spans when loaded through :meth:`TraceStore.get_trace`."""

    trace_id: str
    agent_id: str
    started_at: float
    ended_at: float | None
    status: str
    total_reward: float | None
    metadata: dict[str, Any]
    spans: list[Span] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (spans in wire format)."""
        return {
            "trace_id": self.trace_id,
            "agent_id": self.agent_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "status": self.status,
            "total_reward": self.total_reward,
            "metadata": self.metadata,
            "spans": [span.to_event() for span in self.spans],
        }


def _span_from_row(row: sqlite3.Row | tuple) -> Span:
    span_id, trace_id, agent_id, kind, name, parent_id, start_ts, end_ts, reward, attributes = row[:10]
    return Span(
        kind=kind,
        trace_id=trace_id,
        agent_id=agent_id,
        name=name,
        span_id=span_id,
        parent_id=parent_id,
        start_ts=start_ts,
        end_ts=end_ts,
        reward=reward,
        attributes=json.loads(attributes),
    )


_SPAN_COLUMNS = "span_id, trace_id, agent_id, kind, name, parent_id, start_ts, end_ts, reward, attributes"
_TRACE_COLUMNS = "trace_id, agent_id, started_at, ended_at, status, total_reward, metadata"


class TraceStore:
    """The SQLite trace store (see module docstring).

    ``synchronous`` is SQLite's durability level for WAL commits: ``FULL`` (default) fsyncs the WAL on every
    commit, so a committed batch survives power loss; ``NORMAL`` survives a crash of this process but not of
    the machine.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", timeout_s: float = 30.0) -> None:
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous={synchronous!r}; expected one of {SYNCHRONOUS_MODES}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable SQLite database: {exc}") from exc
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: could not switch to WAL journal (got {mode!r}); is it on NFS?")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    # -- schema ---------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {current}, newer than this dspy-rl ({SCHEMA_VERSION}); "
                    "upgrade dspy-rl or use another store file"
                )
            for version, description, sql in MIGRATIONS:
                if version <= current:
                    continue
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in filter(str.strip, sql.split(";")):
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, time.time())
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                logger.info("trace store %s: applied migration %d (%s)", self.path, version, description)

    def schema_version(self) -> int:
        """The highest migration applied to this file (0 for a new file)."""
        row = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        return int(row[0])

    # -- writes ---------------------------------------------------------------------------------------
    def insert_spans(self, spans: Sequence[Span], source: str = "sdk") -> int:
        """Store ``spans`` in one transaction; returns how many were new (duplicates by span id are skipped).

        When this returns, the transaction is committed (durable per ``synchronous``), which is what the
        Kafka ingester waits for before committing offsets.
        """
        return self.insert_rows([span_row(s) for s in spans], source)

    def insert_rows(self, rows: Sequence[tuple], source: str) -> int:
        """:meth:`insert_spans` for rows already in column order (see :func:`~dspy_rl.traces.spans.span_row`);
        the ingester's fast path. Returns how many rows were new."""
        if not rows:
            return 0
        traces: dict[str, list[Any]] = {}
        rewarded: set[str] = set()
        ends: list[tuple[str, str]] = []  # (attributes, trace id) of trace.end spans
        for _span_id, trace_id, agent_id, kind, name, _, start, end, _, attributes in rows:
            end = start if end is None else end
            agg = traces.get(trace_id)
            if agg is None:
                traces[trace_id] = [trace_id, agent_id, start, end]
            else:
                if start < agg[2]:
                    agg[2] = start
                if end > agg[3]:
                    agg[3] = end
            if kind == "reward":
                rewarded.add(trace_id)
            elif kind == "content" and name == TRACE_END:
                ends.append((attributes, trace_id))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.executemany(
                    f"INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{_sql_text(source)}') "
                    # Only a duplicate span id is skipped; any other constraint violation fails the batch.
                    "ON CONFLICT (span_id) DO NOTHING",
                    rows,
                )
                inserted = cur.rowcount
                self._conn.executemany(
                    "INSERT INTO traces (trace_id, agent_id, started_at, ended_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (trace_id) DO UPDATE SET "
                    "started_at = MIN(started_at, excluded.started_at), "
                    "ended_at = MAX(COALESCE(ended_at, excluded.ended_at), excluded.ended_at)",
                    traces.values(),
                )
                if rewarded:
                    self._conn.executemany(
                        # INDEXED BY: with kind in spans_kind_time too, the planner may otherwise scan every
                        # reward span per trace (quadratic in the store size).
                        "UPDATE traces SET total_reward = (SELECT SUM(reward) FROM spans INDEXED BY spans_trace "
                        "WHERE spans.trace_id = traces.trace_id AND kind = 'reward') WHERE trace_id = ?",
                        [(t,) for t in rewarded],
                    )
                if ends:
                    # SQLite's JSON functions parse the attributes in C: no Python JSON work per row.
                    self._conn.executemany(
                        "UPDATE traces SET status = COALESCE(json_extract(?1, '$.status'), 'ok'), "
                        "metadata = CASE json_type(?1, '$.metadata') WHEN 'object' "
                        "THEN json_extract(?1, '$.metadata') ELSE '{}' END WHERE trace_id = ?2",
                        ends,
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return inserted

    # -- reads ----------------------------------------------------------------------------------------
    def count_spans(self, kind: str | None = None) -> int:
        """Number of stored spans (of one kind, if given)."""
        with self._lock:
            if kind is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
            return int(self._conn.execute("SELECT COUNT(*) FROM spans WHERE kind = ?", (kind,)).fetchone()[0])

    def count_traces(self) -> int:
        """Number of stored traces."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])

    def span_ids(self) -> set[str]:
        """Every stored span id (for audits and tests; loads them all)."""
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT span_id FROM spans")}

    def query_traces(
        self,
        *,
        agent_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        min_reward: float | None = None,
        max_reward: float | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[TraceRecord]:
        """Traces filtered by agent, start time in ``[since, until)``, total reward in
        ``[min_reward, max_reward]`` and status, oldest first (spans not loaded)."""
        clauses, params = self._trace_filters(agent_id, since, until, min_reward, max_reward, status)
        sql = f"SELECT {_TRACE_COLUMNS} FROM traces"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY started_at, trace_id"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit={limit} must be >= 0")
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [
            TraceRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else {}) for r in rows
        ]

    @staticmethod
    def _trace_filters(
        agent_id: str | None,
        since: float | None,
        until: float | None,
        min_reward: float | None,
        max_reward: float | None,
        status: str | None,
    ) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("agent_id", "=", agent_id),
            ("started_at", ">=", since),
            ("started_at", "<", until),
            ("total_reward", ">=", min_reward),
            ("total_reward", "<=", max_reward),
            ("status", "=", status),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        return clauses, params

    def get_trace(self, trace_id: str) -> TraceRecord | None:
        """One trace with its spans in start order, or None."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_TRACE_COLUMNS} FROM traces WHERE trace_id = ?", (trace_id,)
            ).fetchone()
            if row is None:
                return None
            spans = [
                _span_from_row(r)
                for r in self._conn.execute(
                    f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ts, span_id",
                    (trace_id,),
                )
            ]
        return TraceRecord(
            row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]) if row[6] else {}, spans
        )

    def iter_spans(
        self,
        *,
        kinds: Iterable[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        agent_id: str | None = None,
    ) -> Iterator[Span]:
        """Spans of the given kinds whose start time is in ``[since, until)``, in start order."""
        clauses: list[str] = []
        params: list[Any] = []
        if kinds is not None:
            kinds = list(kinds)
            clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
            params += kinds
        for column, op, value in (
            ("start_ts", ">=", since),
            ("start_ts", "<", until),
            ("agent_id", "=", agent_id),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        sql = f"SELECT {_SPAN_COLUMNS} FROM spans"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY start_ts, span_id"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        for row in rows:
            yield _span_from_row(row)

    def span_cursor(self) -> int:
        """The newest span's rowid. Rowids only grow (spans are never deleted) and a writer holds the write lock
        while it assigns them, so every span stored later has a larger one: a consumer that remembers the cursor
        it processed up to sees each later span exactly once."""
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM spans").fetchone()[0])

    def ended_traces(self, after: int, upto: int, since: float | None = None) -> list[str]:
        """Traces whose ``trace.end`` span has a rowid in ``(after, upto]`` (see :meth:`span_cursor`), started at
        or after ``since``; in the order they ended."""
        sql = (
            "SELECT s.trace_id FROM spans s JOIN traces t USING (trace_id) WHERE s.kind = 'content' AND "
            "s.name = ? AND s.rowid > ? AND s.rowid <= ?"
        )
        params: list[Any] = [TRACE_END, after, upto]
        if since is not None:
            sql += " AND t.started_at >= ?"
            params.append(since)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY s.rowid", params).fetchall()
        return list(dict.fromkeys(r[0] for r in rows))

    def spans_of_traces(self, trace_ids: Sequence[str], kinds: Iterable[str] | None = None) -> list[Span]:
        """The spans of ``trace_ids`` (of the given kinds), in start order."""
        out: list[Span] = []
        kinds = list(kinds) if kinds is not None else None
        ids = list(trace_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id IN ({', '.join('?' * len(chunk))})"
            params: list[Any] = list(chunk)
            if kinds is not None:
                sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
                params += kinds
            with self._lock:
                out.extend(_span_from_row(r) for r in self._conn.execute(sql, params).fetchall())
        out.sort(key=lambda s: (s.start_ts, s.span_id))
        return out

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close the connection."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # another connection holds a read lock; the WAL stays valid
                logger.debug("WAL checkpoint skipped: %s", exc)
            self._conn.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
