"""Saving and resuming runs safely.

Saves are atomic (a crash mid-save leaves the previous checkpoint intact), loads never run
code from the file (`weights_only=True`), and state dicts load strictly with errors that name
the offending keys.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINT_NAME = "checkpoint.pth"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, lost mount, ...); the message says what
    survived and how to go on."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint saved by `save_checkpoint` (tensors and plain Python types only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at '{path}': check the path, or pass a run directory to --resume."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, disallowed globals, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"'{path}' is not a readable dinolab checkpoint ({reason}): it may be truncated "
            "by an interrupted copy or saved by another program."
        ) from e
    if not isinstance(state, dict):
        raise ValueError(
            f"'{path}' is not a readable dinolab checkpoint (it holds a "
            f"{type(state).__name__}, not a dict)."
        )
    return state


def find_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint to resume a run from: `run_dir/checkpoint.pth`."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"Run directory '{run_dir}' has no {CHECKPOINT_NAME} to resume from: start a new "
            "run or point --resume at a run directory."
        )
    return path


def rng_state() -> dict[str, Any]:
    """Every global RNG state (torch CPU, CUDA, Python, numpy) as weights_only-safe types."""
    version, py_state, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` captured; CUDA states beyond the visible devices are skipped."""
    torch.set_rng_state(state["torch"].cpu())
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    keys = npy["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)


def load_state_dict_strict(module: nn.Module, state_dict: dict[str, Any], what: str) -> None:
    """Load every key or none; otherwise a ValueError naming missing, unexpected and
    mis-shaped keys (`what` names the module in the message, e.g. "student")."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict
        and hasattr(state_dict[k], "shape")
        and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches {_first(mismatched)}")
        hint = "was it saved for another architecture?"
        prefix = _common_prefix(unexpected)
        if prefix and missing:
            hint = f"the checkpoint keys carry a '{prefix}' prefix (a wrapped model?)"
        raise ValueError(f"Checkpoint does not fit the {what}: {', '.join(parts)} — {hint}")
    module.load_state_dict(state_dict, strict=True)


def _first(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return f"[{shown}{more}]"


def _common_prefix(keys: list[str]) -> str | None:
    """'module.' or '_orig_mod.' when every unexpected key starts with it (DDP, compile)."""
    for prefix in ("module.", "_orig_mod."):
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return None
