"""Open a trace store read-only (inspection never creates, migrates or writes a store)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class StoreMissing(FileNotFoundError):
    """The trace store file does not exist."""


def open_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path`` (:class:`StoreMissing` if it does not exist)."""
    p = Path(path)
    if not p.is_file():
        raise StoreMissing(f"trace store {str(p)!r} does not exist (store=<sqlite file>)")
    conn = sqlite3.connect(f"{p.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    return conn
