"""Real workspaces of ShellEnv: the small projects in ``envs/workspaces/`` and their per-episode copies.

A workspace directory holds ``workspace.json`` (the project's name, its bug and git history), ``project/`` (the
files at HEAD, bug included), ``history/`` (older versions of files used by earlier commits) and the bug's fix as
a unified diff. :func:`build_template` replays the history into a real git repository (every git command runs in
the sandbox) and packs the result in memory; :class:`EpisodeDirs` writes a fresh copy of that pack for every
episode (a few hundred microseconds to a few milliseconds for the ~60 files of a project and its ``.git``).

Inside the sandbox the episode directory is ``/workspace`` and the project is ``/workspace/<project>``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import struct
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dspy_rl import envs_dir

logger = logging.getLogger(__name__)

#: git with every setting it needs on the command line: no HOME, no global config, no pager, no colors.
GIT = (
    "git -c user.name=agent -c user.email=agent@localhost -c safe.directory='*' -c core.pager=cat "
    "-c color.ui=false -c init.defaultBranch=main -c advice.detachedHead=false"
)
#: Fixed commit dates make the history (and every commit hash) the same on every machine.
_DATE = "2024-01-{day:02d}T12:00:00+00:00"
#: Files that are never argument candidates: tests and hidden files.
_MAX_WORKSPACE_FILES = 200


class WorkspaceError(ValueError):
    """A workspace directory is missing or malformed (the message names the file and the field)."""


@dataclass(frozen=True)
class Bug:
    """The defect a workspace's tasks are about, and what finds and fixes it."""

    issue: str
    """One line describing the symptom (given to text policies)."""
    file: str
    """Path of the defective file relative to the project root (an argument candidate: the task's target)."""
    patch: str
    """The fix as a unified diff of ``file``."""
    grep: str
    """A pattern that occurs in ``file`` and in no other candidate (what ``grep`` searches for)."""
    find: str
    """The file name ``find`` looks for."""


@dataclass(frozen=True)
class Commit:
    """One commit of the replayed history: ``files`` (project paths) take their HEAD content unless overridden."""

    message: str
    files: tuple[str, ...]
    overrides: dict[str, str]


@dataclass(frozen=True)
class WorkspaceSpec:
    """A loaded and validated ``envs/workspaces/<name>``."""

    name: str
    root: Path
    project: str
    description: str
    bug: Bug
    commits: tuple[Commit, ...]
    files: tuple[str, ...]
    """Every project file at HEAD (relative, sorted)."""

    @property
    def candidates(self) -> list[str]:
        """Argument candidates discovered in the project: its files except tests and hidden files, sorted."""
        return [f for f in self.files if not _is_test_or_hidden(f)]


def _is_test_or_hidden(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return (
        any(p.startswith(".") for p in parts)
        or parts[0] in ("tests", "test")
        or name.startswith("test_")
        or name == "conftest.py"
    )


def workspaces_dir() -> Path:
    """Directory holding the shipped workspaces (``envs/workspaces``)."""
    return envs_dir() / "workspaces"


def available_workspaces() -> list[str]:
    """Names of the shipped workspaces (sorted)."""
    d = workspaces_dir()
    return sorted(p.parent.name for p in d.glob("*/workspace.json")) if d.is_dir() else []


def _field(doc: dict[str, Any], key: str, path: Path, kind: type, where: str = "") -> Any:
    if key not in doc:
        raise WorkspaceError(f"{path}: missing field `{where}{key}`")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, str) and not value):
        raise WorkspaceError(f"{path}: field `{where}{key}` must be a non-empty {kind.__name__}")
    return value


def load_workspace(name_or_path: str | Path) -> WorkspaceSpec:
    """Load ``envs/workspaces/<name>`` (or a workspace directory) and check it: the history reproduces the
    project, the bug's file is a candidate and only it contains the grep pattern."""
    root, meta, doc = _read_meta(name_or_path)
    project = _field(doc, "project", meta, str)
    if "/" in project or project.startswith("."):
        raise WorkspaceError(f"{meta}: field `project` must be a plain directory name, got {project!r}")
    pdir = root / "project"
    if not pdir.is_dir():
        raise WorkspaceError(f"{root}: missing the project directory {pdir}")
    files = tuple(sorted(str(p.relative_to(pdir)) for p in pdir.rglob("*") if p.is_file()))
    if not files or len(files) > _MAX_WORKSPACE_FILES:
        raise WorkspaceError(
            f"{pdir}: a project must hold 1 to {_MAX_WORKSPACE_FILES} files, has {len(files)}"
        )
    b = _field(doc, "bug", meta, dict)
    bug_file = _field(b, "file", meta, str, "bug.")
    patch_path = root / _field(b, "patch", meta, str, "bug.")
    if not patch_path.is_file():
        raise WorkspaceError(f"{meta}: field `bug.patch`: {patch_path} does not exist")
    bug = Bug(
        issue=_field(b, "issue", meta, str, "bug."),
        file=bug_file,
        patch=patch_path.read_text(encoding="utf-8"),
        grep=_field(b, "grep", meta, str, "bug."),
        find=_field(b, "find", meta, str, "bug."),
    )
    commits = _load_commits(doc, meta, root, pdir, files)
    spec = WorkspaceSpec(
        root.name, root, project, str(doc.get("description", "")), bug, tuple(commits), files
    )
    if bug.file not in spec.candidates:
        raise WorkspaceError(
            f"{meta}: field `bug.file`: {bug.file!r} is not an argument candidate of the project"
        )
    _check_grep(spec, meta, pdir)
    return spec


def _read_meta(name_or_path: str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """(workspace root, its workspace.json, the parsed document)."""
    root = Path(name_or_path)
    if not (root / "workspace.json").is_file():
        root = workspaces_dir() / str(name_or_path)
    meta = root / "workspace.json"
    if not meta.is_file():
        raise WorkspaceError(
            f"unknown workspace {str(name_or_path)!r}: no {meta}; available: {', '.join(available_workspaces())}"
        )
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkspaceError(f"{meta}: cannot read: {exc}") from exc
    if not isinstance(doc, dict):
        raise WorkspaceError(f"{meta}: expected a JSON object")
    return root, meta, doc


def _load_commits(
    doc: dict[str, Any], meta: Path, root: Path, pdir: Path, files: tuple[str, ...]
) -> list[Commit]:
    """The history's commits; checked to end at the project's files."""
    commits = []
    for j, c in enumerate(_field(doc, "commits", meta, list)):
        where = f"commits[{j}]."
        if not isinstance(c, dict):
            raise WorkspaceError(f"{meta}: field `commits[{j}]` must be an object")
        listed = c.get("files")
        if listed == "*":
            listed = list(files)
        if not isinstance(listed, list) or not listed:
            raise WorkspaceError(
                f'{meta}: field `{where}files` must be "*" or a non-empty list of project paths'
            )
        for f in listed:
            if f not in files:
                raise WorkspaceError(f"{meta}: field `{where}files`: {f!r} is not a file of {pdir}")
        overrides = c.get("overrides", {})
        if not isinstance(overrides, dict):
            raise WorkspaceError(f"{meta}: field `{where}overrides` must be an object")
        for f, src in overrides.items():
            if f not in listed or not (root / src).is_file():
                raise WorkspaceError(
                    f"{meta}: field `{where}overrides.{f}`: not in `files`, or {src} is missing"
                )
        commits.append(Commit(_field(c, "message", meta, str, where), tuple(listed), dict(overrides)))
    if not commits:
        raise WorkspaceError(f"{meta}: field `commits` must list at least one commit")
    last: dict[str, bool] = {}
    for c in commits:
        for f in c.files:
            last[f] = f in c.overrides
    stale = [f for f in files if last.get(f, True)]
    if stale:
        raise WorkspaceError(
            f"{meta}: field `commits`: the history does not end at the project's files: {', '.join(stale)} "
            "(never committed, or last committed from history/)"
        )
    return commits


def _check_grep(spec: WorkspaceSpec, meta: Path, pdir: Path) -> None:
    """The bug's file is an argument candidate and the only candidate holding the grep pattern."""
    bug = spec.bug
    holders = [
        f for f in spec.candidates if bug.grep in (pdir / f).read_text(encoding="utf-8", errors="replace")
    ]
    if holders != [bug.file]:
        raise WorkspaceError(
            f"{meta}: field `bug.grep`: {bug.grep!r} must occur in {bug.file} only among the candidates, "
            f"found in {holders}"
        )


# -----------------------------------------------------------------------------------------------------------------
# In-memory packs of a directory tree.

_ENTRY = struct.Struct("<HIH")  # path length, data length, mode


@dataclass(frozen=True)
class Pack:
    """A directory tree held in memory: directories and (path, mode, bytes) files, relative paths."""

    dirs: tuple[str, ...]
    files: tuple[tuple[str, int, bytes], ...]

    @classmethod
    def read(cls, root: Path) -> Pack:
        """Pack every directory and regular file under ``root`` (symlinks are refused)."""
        dirs, files = [], []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            if rel != ".":
                dirs.append(rel)
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if not os.path.isfile(p) or os.path.islink(p):
                    raise WorkspaceError(f"{p}: only regular files can be packed")
                with open(p, "rb") as f:
                    files.append((os.path.relpath(p, root), st.st_mode & 0o777, f.read()))
        return cls(tuple(dirs), tuple(files))

    def write(self, root: Path) -> None:
        """Create the tree under ``root`` (which must not exist yet)."""
        os.mkdir(root)
        base = str(root)
        for d in self.dirs:
            os.mkdir(os.path.join(base, d))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        for rel, mode, data in self.files:
            fd = os.open(os.path.join(base, rel), flags, mode)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def to_bytes(self) -> bytes:
        parts = [struct.pack("<II", len(self.dirs), len(self.files))]
        for d in self.dirs:
            b = d.encode()
            parts.append(struct.pack("<H", len(b)) + b)
        for rel, mode, data in self.files:
            b = rel.encode()
            parts.append(_ENTRY.pack(len(b), len(data), mode) + b + data)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Pack:
        try:
            nd, nf = struct.unpack_from("<II", blob, 0)
            off, dirs, files = 8, [], []
            for _ in range(nd):
                (n,) = struct.unpack_from("<H", blob, off)
                dirs.append(blob[off + 2 : off + 2 + n].decode())
                off += 2 + n
            for _ in range(nf):
                n, size, mode = _ENTRY.unpack_from(blob, off)
                off += _ENTRY.size
                rel = blob[off : off + n].decode()
                files.append((rel, mode, blob[off + n : off + n + size]))
                off += n + size
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"not a workspace pack: {exc}") from exc
        if off != len(blob) or any(_unsafe(p) for p in dirs + [f[0] for f in files]):
            raise ValueError("not a workspace pack (trailing bytes or a path leaving the workspace)")
        return cls(tuple(dirs), tuple(files))


def _unsafe(rel: str) -> bool:
    return rel.startswith("/") or ".." in rel.split("/") or rel in ("", ".")


# -----------------------------------------------------------------------------------------------------------------
# Templates: the workspace with its git history, built once per process.

_templates: dict[tuple[str, int], Pack] = {}
_templates_lock = threading.Lock()


def _history_script(spec: WorkspaceSpec, index: int) -> str:
    day = index + 1
    date = _DATE.format(day=day)
    init = f"{GIT} init -q --template= . && " if index == 0 else ""
    return (
        f"cd {shlex.quote(spec.project)} && {init}{GIT} add -A && "
        f"GIT_AUTHOR_DATE={date} GIT_COMMITTER_DATE={date} {GIT} commit -q -m {shlex.quote(spec.commits[index].message)}"
    )


def build_template(spec: WorkspaceSpec, limits: Any = None) -> Pack:
    """The episode start state of ``spec``: ``<project>/`` with its replayed git history, packed in memory.

    Each commit's files are written here; ``git init/add/commit`` run in the sandbox (one command per commit).
    Cached per process (keyed by the workspace directory and its ``workspace.json`` mtime).
    """
    from dspy_rl.shell.sandbox import Sandbox

    key = (str(spec.root.resolve()), (spec.root / "workspace.json").stat().st_mtime_ns)
    with _templates_lock:
        if key in _templates:
            return _templates[key]
        tmp = Path(tempfile.mkdtemp(prefix=f"dspy-rl-template-{spec.name}-"))
        try:
            proj = tmp / spec.project
            proj.mkdir()
            src = spec.root / "project"
            with Sandbox(tmp, limits) as box:
                for i, commit in enumerate(spec.commits):
                    for f in commit.files:
                        origin = spec.root / commit.overrides[f] if f in commit.overrides else src / f
                        dest = proj / f
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(origin, dest)
                    res = box.run(_history_script(spec, i))
                    if res.exit_code != 0:
                        raise WorkspaceError(
                            f"workspace {spec.name}: replaying commit {i} ({commit.message!r}) failed "
                            f"(exit {res.exit_code}): {(res.stderr or res.stdout).strip()[:500]}"
                        )
            pack = Pack.read(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _templates[key] = pack
        logger.debug("built workspace template %s: %d files", spec.name, len(pack.files))
        return pack


_ROOT_PREFIX = "dspy-rl-shell-"


def _remove_orphans(base: Path) -> None:
    """Delete episode roots left by processes that died without cleaning up (killed actors): their pid is gone."""
    try:
        entries = list(base.glob(f"{_ROOT_PREFIX}*-*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(_ROOT_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


class EpisodeDirs:
    """One directory per env under a private temp root; :meth:`reset` replaces env ``i``'s with a fresh copy.

    ``close()`` (also called on garbage collection) removes the root. ``base``: where the root is created
    (``None``: ``/dev/shm`` when writable, since a reset there takes ~1 ms where a busy disk takes 100 ms and
    more, else the system temp dir).
    """

    def __init__(self, num_envs: int, base: str | None = None) -> None:
        if base is None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            base = "/dev/shm"
        _remove_orphans(Path(base or tempfile.gettempdir()))
        self.root = Path(tempfile.mkdtemp(prefix=f"{_ROOT_PREFIX}{os.getpid()}-", dir=base))
        self.paths = [self.root / f"env{i}" for i in range(num_envs)]
        self._generation = [0] * num_envs
        # A process that exits without close() (an EnvRunner actor at shutdown) still removes its copies.
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.root), True)

    def path(self, i: int) -> Path:
        return self.paths[i]

    def reset(self, i: int, pack: Pack) -> Path:
        """Write a fresh copy of ``pack`` as env ``i``'s workspace (the old one is removed first)."""
        old = self.paths[i]
        if old.exists():
            shutil.rmtree(old)
        self._generation[i] += 1
        pack.write(old)
        return old

    def close(self) -> None:
        """Remove every env's copy (idempotent; also runs at garbage collection and interpreter exit)."""
        self._finalizer()
