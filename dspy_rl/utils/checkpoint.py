"""Training checkpoints, written atomically (:mod:`dspy_rl.utils.atomic`).

A reader sees either the previous checkpoint or the new one, never a torn file, even if the process is SIGKILLed
mid-write. ``latest`` names the newest checkpoint and is itself replaced atomically.

Format versions (``format_version`` in the saved dict, :data:`FORMAT_VERSION` is the one this code writes):

1. No ``format_version`` field. Each policy's Adam optimizer holds one state per weight tensor (one param per
   tensor in its ``param_groups``), as the learner had before its parameters became views of one flat tensor.
2. Each policy's parameters are one flat tensor (:func:`dspy_rl.learners.ppo.flat_parameter`) with one Adam state.

:func:`load_checkpoint` refuses a version newer than :data:`FORMAT_VERSION`; :func:`upgrade_checkpoint` converts
an older checkpoint's state to the current layout (``dspy-rl train resume=<run>`` does so on its own and logs it).

Loading never runs code from the file: :func:`safe_torch_load` unpickles with ``torch.load(weights_only=True)``,
which accepts tensors, plain containers and numbers, and (:data:`SAFE_GLOBALS`) the numpy arrays and dtypes of the
saved RNG states; any other object in the pickle is refused. A file that does not load (truncated, zero bytes,
corrupted, or holding code) is a :class:`CheckpointError` naming the file in one line, and
:func:`load_latest_checkpoint` falls back to the newest checkpoint that loads, with a warning.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dspy_rl.config import ConfigError
from dspy_rl.utils.atomic import atomic_torch_save, atomic_write_bytes

log = logging.getLogger(__name__)
CKPT_DIR = "checkpoints"
#: The checkpoint layout this code writes (see the module docstring); a checkpoint without the field is version 1.
FORMAT_VERSION = 2


#: The only globals a checkpoint's pickle may name besides torch's own allow-list (tensors, containers): what
#: ``np.random.get_state()`` saves (a uint32 ndarray) and numpy scalars/dtypes. None of them runs code.
SAFE_GLOBALS: list[Any] = [
    np.ndarray,
    np.dtype,
    np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
    np._core.multiarray.scalar,  # type: ignore[attr-defined]
    *(
        getattr(np.dtypes, name)
        for name in dir(np.dtypes)
        if name.endswith("DType") and isinstance(getattr(np.dtypes, name), type)
    ),
]


class CheckpointError(ConfigError):
    """A checkpoint file that cannot be loaded; the message names the file and the reason in one line."""


def _load_failure(exc: BaseException) -> str:
    """A one-line reason for a failed ``torch.load`` (torch's own messages span a page)."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in text:
        for line in text.splitlines():
            if "Unsupported global" in line or "Unsupported operand" in line or "Trying to call" in line:
                detail = line.strip().removeprefix("WeightsUnpickler error:").strip()
                return (
                    f"it holds Python objects that are not tensors or plain data ({detail[:160]}); refusing to "
                    "unpickle it, since that could run code from the file"
                )
        return "it holds Python objects that are not tensors or plain data; refusing to unpickle it"
    if isinstance(exc, EOFError) or "EOF" in text:
        return "the file is truncated"
    if isinstance(exc, zipfile.BadZipFile) or "zip archive" in text or "central directory" in text:
        return "the file is corrupted or truncated (not a complete torch zip archive)"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"the file is corrupted ({type(exc).__name__}: {first[:160]})"


def _check_zip_crcs(path: Path) -> None:
    """Check the CRC-32 of every member of a torch zip checkpoint: ``torch.load`` does not, so flipped bytes in
    tensor data would otherwise load as silently different weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded: the file is corrupted or truncated (not a complete torch zip "
            "archive)"
        ) from exc
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded: the file is corrupted (checksum mismatch in {bad.split('/')[-1]!r})"
        )


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` onto the CPU that never executes code from the file (``weights_only=True`` plus
    :data:`SAFE_GLOBALS`). Any failure is a :class:`CheckpointError` naming ``path`` and the reason."""
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise CheckpointError(f"checkpoint {p} cannot be loaded: the file is empty (0 bytes)")
        _check_zip_crcs(p)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(p, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {p} cannot be loaded: no such file") from exc
    except Exception as exc:  # noqa: BLE001 -- any unpickling/zip/format failure becomes one line
        raise CheckpointError(f"checkpoint {p} cannot be loaded: {_load_failure(exc)}") from exc


def save_checkpoint(run_dir: str | Path, iteration: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``checkpoints/ckpt_<iteration>.pt`` atomically, point ``latest`` at it, prune old ones."""
    ckpt_dir = Path(run_dir) / CKPT_DIR
    path = ckpt_dir / f"ckpt_{iteration:07d}.pt"
    atomic_torch_save(state, path)
    atomic_write_bytes(ckpt_dir / "latest", path.name.encode())
    for old in sorted(ckpt_dir.glob("ckpt_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    log.info("checkpoint %s", path)
    return path


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpt_dir = Path(run_dir) / CKPT_DIR
    pointer = ckpt_dir / "latest"
    if pointer.exists():
        path = ckpt_dir / pointer.read_text().strip()
        if path.exists():
            return path
    found = sorted(ckpt_dir.glob("ckpt_*.pt"))
    return found[-1] if found else None


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, newest first: the one ``latest`` names, then the others by iteration."""
    ckpt_dir = Path(run_dir) / CKPT_DIR
    found = sorted(ckpt_dir.glob("ckpt_*.pt"), reverse=True)
    first = latest_checkpoint(run_dir)
    return ([first] if first is not None else []) + [p for p in found if p != first]


def load_latest_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``run_dir`` that loads, and its state (``None`` if the run has none).

    A newer checkpoint that fails to load (truncated, empty, corrupted, or refused as unsafe) is skipped with a
    warning naming it; if none loads, a :class:`CheckpointError` lists each file and why.
    """
    candidates = checkpoint_candidates(run_dir)
    if not candidates:
        return None
    failures: list[str] = []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            failures.append(str(exc))
            log.warning("%s; trying the previous checkpoint", exc)
            continue
        if failures:
            log.warning(
                "resuming from %s, the newest checkpoint that loads (%d newer one(s) skipped)",
                path.name,
                len(failures),
            )
        return path, state
    raise CheckpointError(f"no checkpoint of {run_dir} loads: " + "; ".join(failures))


def checkpoint_version(state: dict[str, Any]) -> int:
    return int(state.get("format_version", 1))


def _require_known_version(state: dict[str, Any], where: str) -> int:
    """The state's format version; a :class:`~dspy_rl.config.ConfigError` if this code cannot read it."""
    version = checkpoint_version(state)
    if 1 <= version <= FORMAT_VERSION:
        return version
    raise ConfigError(
        f"{where} has checkpoint format version {version}, but this dspy-rl reads versions 1 to {FORMAT_VERSION}"
        + (
            ": it was written by a newer dspy-rl; upgrade dspy-rl to load it"
            if version > FORMAT_VERSION
            else ""
        )
    )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's state on the CPU, as saved (an older version is not converted: see
    :func:`upgrade_checkpoint`). A checkpoint from a newer dspy-rl, whose layout this code does not know, is a
    :class:`~dspy_rl.config.ConfigError`."""
    state = safe_torch_load(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} cannot be loaded: it is not a `dspy-rl train` checkpoint")
    _require_known_version(state, str(path))
    return state


def upgrade_checkpoint(state: dict[str, Any], where: str = "checkpoint") -> dict[str, Any]:
    """``state`` (a `dspy-rl train` checkpoint as loaded) in the current format, :data:`FORMAT_VERSION`.

    A pure function: no Ray, no learner; the input is not modified. A current checkpoint is returned as is.
    Version 1 -> 2 turns each policy's per-tensor Adam states into the flat layout (:func:`flatten_adam_state`).
    A state that cannot be converted is a :class:`~dspy_rl.config.ConfigError` naming ``where`` and the reason.
    """
    if _require_known_version(state, where) == FORMAT_VERSION:
        return state
    learner = state.get("learner", {})
    algo = state.get("config", {}).get("algo", {}).get("name", "ppo")
    model = learner.get("model")
    optimizers = {
        policy: flatten_adam_state(
            opt,
            _trained_shapes(model, policy, algo) if model is not None else None,
            f"{where}, policy {policy}",
        )
        for policy, opt in learner.get("optimizers", {}).items()
    }
    return {**state, "learner": {**learner, "optimizers": optimizers}, "format_version": FORMAT_VERSION}


def _trained_shapes(model: dict[str, torch.Tensor], policy: str, algo: str) -> list[tuple[int, ...]]:
    """Shapes of the tensors a learner trains for ``policy``, in the order of its flat parameter: the order of
    ``model.nets[policy].parameters()`` (``.actor`` only for env GRPO, which trains no critic), which is the
    order of their keys in the model's state dict (the policy networks hold parameters only, no buffers)."""
    prefix = f"nets.{policy}.actor." if algo in ("grpo", "gigpo") else f"nets.{policy}."
    return [tuple(v.shape) for k, v in model.items() if k.startswith(prefix)]


def flatten_adam_state(
    opt: dict[str, Any], shapes: list[tuple[int, ...]] | None = None, where: str = "optimizer state"
) -> dict[str, Any]:
    """A per-tensor ``torch.optim.Adam`` state dict (version 1) as the state of one Adam over the flat
    concatenation of the same tensors, in their param-group order (version 2).

    The moments (``exp_avg``, ``exp_avg_sq``, and any other per-element state) are flattened and concatenated in
    that order; ``step`` is shared and must be equal for every tensor; the hyperparameters of the param group are
    kept. ``shapes``, when given, are the shapes the learner's parameters have, in flat order: the states must match
    them. A state that is already flat (one param) is returned with its moments flattened.
    """

    def fail(reason: str) -> ConfigError:
        return ConfigError(
            f"{where}: cannot convert the optimizer state to the flat layout: {reason}; start a new run (the "
            "policies still load with `dspy-rl eval policy=checkpoint checkpoint=...`)"
        )

    groups = opt["param_groups"]
    if not groups:
        raise fail("it has no param groups")
    hyper = {k: v for k, v in groups[0].items() if k != "params"}
    for g in groups[1:]:
        if {k: v for k, v in g.items() if k != "params"} != hyper:
            raise fail("its param groups have different hyperparameters")
    ids = [i for g in groups for i in g["params"]]
    states = [opt["state"].get(i) for i in ids]
    if shapes is not None and len(ids) != 1:
        if len(ids) != len(shapes):
            raise fail(f"it holds {len(ids)} tensors but the policy trains {len(shapes)}")
    group = {**hyper, "params": [0]}
    present = [s for s in states if s]
    if not present:  # no optimizer step yet
        return {"state": {}, "param_groups": [group]}
    if len(present) != len(states):
        raise fail(
            f"{len(states) - len(present)} of its {len(states)} tensors have no Adam state (never stepped) while "
            "the others have one, so they cannot share one step count"
        )
    steps = [float(s["step"]) for s in states]
    if any(step != steps[0] for step in steps):
        raise fail(f"its tensors were stepped different numbers of times ({sorted(set(steps))})")
    keys = [k for k in states[0] if k != "step"]
    flat: dict[str, Any] = {
        "step": states[0]["step"].clone() if torch.is_tensor(states[0]["step"]) else steps[0]
    }
    for key in keys:
        pieces = []
        for n, s in enumerate(states):
            t = s.get(key)
            if not torch.is_tensor(t):
                raise fail(f"tensor {n} has no {key!r}")
            if shapes is not None and len(ids) == len(shapes) and tuple(t.shape) != shapes[n]:
                raise fail(
                    f"{key!r} of tensor {n} has shape {tuple(t.shape)}, but the parameter is {shapes[n]}"
                )
            pieces.append(t.reshape(-1))
        flat[key] = torch.cat(pieces)
    if shapes is not None:
        total = sum(int(torch.Size(s).numel()) for s in shapes)
        for key in keys:
            if flat[key].numel() != total:
                raise fail(
                    f"{key!r} has {flat[key].numel()} elements, but the policy's parameters have {total}"
                )
    return {"state": {0: flat}, "param_groups": [group]}
