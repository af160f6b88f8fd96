"""``dspy-rl rl verify-storage``: check the trace store and the run directories' checkpoints.

Store checks: the file is SQLite; its schema version is this code's and its tables have the expected columns
and keys; ``PRAGMA integrity_check``; orphans (spans whose trace row is missing, traces without spans); duplicate
event ids (read from the table rows, not the index, so a damaged index cannot hide them); trace totals that
disagree with their reward spans. Run checks: every checkpoint under the runs directory loads (through the
project's checkpoint loaders) and each ``latest`` pointer names an existing file.

Every problem is one :class:`Problem` with where and what; none found means the storage is sound.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dspy_rl.inspection.readonly import StoreMissing, open_readonly

logger = logging.getLogger(__name__)

EXPECTED_COLUMNS = {
    "spans": ["span_id", "trace_id", "agent_id", "kind", "name", "parent_id", "start_ts", "end_ts", "reward",
              "attributes", "source"],
    "traces": ["trace_id", "agent_id", "started_at", "ended_at", "status", "total_reward", "metadata"],
}  # fmt: skip
PRIMARY_KEYS = {"spans": "span_id", "traces": "trace_id"}
EXAMPLES = 5


@dataclass
class Problem:
    """One thing wrong: ``where`` (a file, table or run) and ``what``."""

    check: str
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.check}: {self.where}: {self.what}"


@dataclass
class VerifyReport:
    store: str
    runs_root: str
    checks_run: list[str]
    problems: list[Problem]
    stats: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "store": self.store,
            "runs_root": self.runs_root,
            "checks_run": self.checks_run,
            "problems": [asdict(p) for p in self.problems],
            "stats": self.stats,
        }


def _examples(rows: list[tuple]) -> str:
    shown = ", ".join(str(r[0]) for r in rows[:EXAMPLES])
    return shown + (", ..." if len(rows) > EXAMPLES else "")


def verify_store(path: str | os.PathLike[str], report: VerifyReport) -> None:
    """Append the trace store's problems to ``report``."""
    from dspy_rl.traces.store import SCHEMA_VERSION

    where = str(path)
    try:
        conn = open_readonly(path)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except StoreMissing as exc:
        report.problems.append(Problem("store", where, str(exc)))
        return
    except sqlite3.DatabaseError as exc:
        report.problems.append(Problem("store", where, f"not a readable SQLite database ({exc})"))
        return
    try:
        _verify_open_store(conn, where, SCHEMA_VERSION, report)
    except sqlite3.DatabaseError as exc:
        report.problems.append(Problem("store", where, f"reading failed ({exc})"))
    finally:
        conn.close()


def _verify_open_store(
    conn: sqlite3.Connection, where: str, schema_version: int, report: VerifyReport
) -> None:
    problems = report.problems
    usable = _check_schema(conn, where, schema_version, report)

    report.checks_run.append("integrity_check")
    bad = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    if bad != ["ok"]:
        for line in bad:
            problems.append(Problem("integrity_check", where, line))

    if "spans" in usable:
        _check_duplicates(conn, where, report)
    if usable == {"spans", "traces"}:
        _check_traces(conn, where, report)


def _check_schema(
    conn: sqlite3.Connection, where: str, schema_version: int, report: VerifyReport
) -> set[str]:
    """Schema version, tables, columns and primary keys; returns the tables whose layout is as expected."""
    problems = report.problems
    report.checks_run.append("schema")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_migrations" not in tables:
        problems.append(Problem("schema", where, "no schema_migrations table (not a dspy-rl trace store?)"))
    else:
        version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        report.stats["schema_version"] = version
        if version != schema_version:
            problems.append(
                Problem("schema", where, f"schema version {version}, this dspy-rl writes {schema_version}")
            )
    usable = set()
    for table, expected in EXPECTED_COLUMNS.items():
        if table not in tables:
            problems.append(Problem("schema", f"{where}:{table}", "table missing"))
            continue
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        columns = [r[1] for r in info]
        if columns != expected:
            problems.append(Problem("schema", f"{where}:{table}", f"columns {columns}, expected {expected}"))
            continue
        pk = [r[1] for r in info if r[5]]
        if pk != [PRIMARY_KEYS[table]]:
            problems.append(
                Problem("schema", f"{where}:{table}", f"primary key {pk}, expected [{PRIMARY_KEYS[table]!r}]")
            )
        usable.add(table)
    return usable


def _check_duplicates(conn: sqlite3.Connection, where: str, report: VerifyReport) -> None:
    """Event ids stored more than once in ``spans``."""
    problems = report.problems
    report.checks_run.append("duplicate_event_ids")
    # NOT INDEXED: count the table's rows themselves, not the primary-key index.
    dups = conn.execute(
        "SELECT span_id, COUNT(*) FROM spans NOT INDEXED GROUP BY span_id HAVING COUNT(*) > 1"
    ).fetchall()
    if dups:
        problems.append(
            Problem(
                "duplicate_event_ids",
                f"{where}:spans",
                f"{len(dups)} event ids stored more than once: {_examples(dups)}",
            )  # fmt: skip
        )
    report.stats["spans"] = conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]


def _check_traces(conn: sqlite3.Connection, where: str, report: VerifyReport) -> None:
    """Orphan spans, traces without spans, and trace totals that are not the sum of their reward spans."""
    problems = report.problems
    report.checks_run.append("orphans")
    orphan_spans = conn.execute(
        "SELECT DISTINCT s.trace_id FROM spans s LEFT JOIN traces t USING (trace_id) WHERE t.trace_id IS NULL"
    ).fetchall()
    if orphan_spans:
        problems.append(
            Problem(
                "orphans",
                f"{where}:spans",
                f"spans of {len(orphan_spans)} traces with no trace row: {_examples(orphan_spans)}",
            )  # fmt: skip
        )
    empty = conn.execute(
        "SELECT t.trace_id FROM traces t WHERE NOT EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id)"
    ).fetchall()
    if empty:
        problems.append(
            Problem("orphans", f"{where}:traces", f"{len(empty)} traces without spans: {_examples(empty)}")
        )
    report.checks_run.append("trace_totals")
    wrong = conn.execute(
        "SELECT t.trace_id FROM traces t JOIN (SELECT trace_id, SUM(reward) AS total FROM spans "
        "WHERE kind = 'reward' GROUP BY trace_id) r USING (trace_id) "
        "WHERE t.total_reward IS NULL OR ABS(t.total_reward - r.total) > 1e-9 * MAX(1, ABS(r.total))"
    ).fetchall()
    if wrong:
        problems.append(
            Problem(
                "trace_totals",
                f"{where}:traces",
                f"{len(wrong)} traces whose total_reward is not the "
                f"sum of their reward spans: {_examples(wrong)}",
            )  # fmt: skip
        )
    report.stats["traces"] = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]


def _checkpoint_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("tb", "wandb")]
        for name in filenames:
            if name.endswith(".pt") and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return sorted(found)


def _load(path: Path) -> None:
    """Load one checkpoint with the project's loader (raises on a file that cannot be read)."""
    from dspy_rl.utils.checkpoint import load_checkpoint

    load_checkpoint(path)


def verify_runs(root: str | os.PathLike[str], report: VerifyReport) -> None:
    """Append unreadable checkpoints and dangling ``latest`` pointers under ``root`` to ``report``."""
    root = Path(root)
    report.checks_run.append("checkpoints")
    if not root.is_dir():
        report.stats["checkpoints"] = 0
        return
    files = _checkpoint_files(root)
    for path in files:
        try:
            _load(path)
        except Exception as exc:
            problems = report.problems
            problems.append(
                Problem("checkpoints", str(path), f"cannot be read ({type(exc).__name__}: {exc})"[:400])
            )
    for pointer in root.rglob("latest"):
        if not pointer.is_file():
            continue
        if pointer.parent.name == "checkpoints" or pointer.parent.name.startswith("ckpts_"):
            try:
                name = pointer.read_text().strip()
            except OSError as exc:
                report.problems.append(Problem("checkpoints", str(pointer), f"unreadable ({exc})"))
                continue
            if not (pointer.parent / name).is_file():
                report.problems.append(
                    Problem("checkpoints", str(pointer), f"names {name!r}, which does not exist")
                )
    report.stats["checkpoints"] = len(files)


def verify_storage(store: str | os.PathLike[str], runs_root: str | os.PathLike[str]) -> VerifyReport:
    """Every check on the store and the runs under ``runs_root``."""
    report = VerifyReport(str(store), str(runs_root), [], [], {})
    verify_store(store, report)
    verify_runs(runs_root, report)
    return report
