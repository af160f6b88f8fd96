"""No function or method in ``dspy_rl/`` is longer than :data:`MAX_LINES` lines (issue 13: readable drivers).

Length is ``end_lineno - lineno + 1`` of the ``def`` (decorators excluded, docstring and body included), read
with ``ast``. A long function is split into named steps; only the ones in :data:`ALLOWED` may stay longer, each
with the reason it is kept whole and its current length as a ceiling (it may shrink, never grow).
"""

from __future__ import annotations

import ast
from pathlib import Path

import dspy_rl

PACKAGE = Path(dspy_rl.__file__).resolve().parent
MAX_LINES = 80

#: "path relative to dspy_rl/::qualified name" -> the most lines it may have, each with a comment saying why it
#: stays whole (or why it is not split yet).
ALLOWED: dict[str, int] = {}


def _visit(node: ast.AST, prefix: str, rel: str, found: dict[str, int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                length = child.end_lineno - child.lineno + 1  # type: ignore[operator]
                if length > MAX_LINES:
                    found[f"{rel}::{name}"] = length
            _visit(child, f"{name}.", rel, found)
        else:
            _visit(child, prefix, rel, found)


def _long_functions(root: Path = PACKAGE) -> dict[str, int]:
    """``"path::Class.method"`` -> lines, for every function under ``root`` longer than :data:`MAX_LINES`."""
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        _visit(ast.parse(path.read_text(), filename=str(path)), "", path.relative_to(root).as_posix(), found)
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    too_long = {name: n for name, n in _long_functions().items() if name not in ALLOWED or n > ALLOWED[name]}
    assert not too_long, f"functions over {MAX_LINES} lines (split them into named steps): " + ", ".join(
        f"{k} ({v} lines)" for k, v in sorted(too_long.items())
    )


def test_allow_list_has_no_stale_entries() -> None:
    long_now = _long_functions()
    stale = sorted(name for name in ALLOWED if name not in long_now)
    assert not stale, f"no longer over {MAX_LINES} lines, remove from ALLOWED: {stale}"


def test_the_check_finds_long_functions_and_methods(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES - 1))
    (tmp_path / "m.py").write_text(
        f"class C:\n    def short(self):\n        pass\n\n    def long(self):\n{body}\n        return x0\n"
        f"\n\nasync def edge():\n" + "\n".join(f"    y{i} = {i}" for i in range(MAX_LINES - 1)) + "\n"
    )
    assert _long_functions(tmp_path) == {"m.py::C.long": MAX_LINES + 1}
