"""Sharded checkpoints for FSDP2 runs, with `torch.distributed.checkpoint` (DCP).

Every rank writes its own shard of the model and optimizer into `run_dir/checkpoint_dcp_<step>/`;
rank 0 then atomically rewrites `checkpoint.pth`, which holds the step counters, RNG states and
config and names that folder. Reading re-shards: a run saved on N processes resumes on M
(including M = 1, without a process group). Tensors only travel through DCP's own format, so
loading never unpickles code.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from dinolab import distributed as dist
from dinolab.train.optim import other_groups_error

FORMAT = "dcp"
PREFIX = "checkpoint_dcp_"


def _states(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    return {
        "model": get_model_state_dict(model),
        "optimizer": get_optimizer_state_dict(model, optimizer),
    }


def save_sharded(
    run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int
) -> str:
    """Write this rank's shards for `step` (call on every rank); returns the folder's name."""
    name = f"{PREFIX}{step:09d}"
    with dist.collective_errors("writing a sharded checkpoint"):
        dcp.save(_states(model, optimizer), checkpoint_id=str(run_dir / name))
        dist.barrier()
    return name


def remove_stale(run_dir: Path, keep: str) -> None:
    """Delete sharded folders other than `keep` (rank 0, after checkpoint.pth points at keep)."""
    for old in run_dir.glob(f"{PREFIX}*"):
        if old.is_dir() and old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def load_sharded(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Fill `model` and `optimizer` (sharded or not) from a folder written by `save_sharded`."""
    if not (folder / ".metadata").is_file():
        raise FileNotFoundError(
            f"Sharded checkpoint '{folder}' is missing or incomplete (no .metadata): the run was "
            "interrupted while saving; restore the folder or start a new run."
        )
    states = _states(model, optimizer)
    saved = set(dcp.FileSystemReader(str(folder)).read_metadata().state_dict_metadata)
    missing = [k for k in states["model"] if f"model.{k}" not in saved]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(
            f"Sharded checkpoint '{folder}' does not fit this run's model: missing keys "
            f"{missing[:5]}{more}; was it saved for another architecture?"
        )
    groups = {k.split(".")[2] for k in saved if k.startswith("optimizer.param_groups.")}
    if len(groups) != len(states["optimizer"]["param_groups"]):
        raise other_groups_error(
            folder, f"{len(groups)} vs {len(states['optimizer']['param_groups'])}"
        )
    # parameters that never had a gradient (e.g. mask_token without iBOT) have no AdamW state
    states["optimizer"]["state"] = {
        fqn: {k: v for k, v in st.items() if f"optimizer.state.{fqn}.{k}" in saved}
        for fqn, st in states["optimizer"]["state"].items()
        if any(f"optimizer.state.{fqn}.{k}" in saved for k in st)
    }
    try:
        with warnings.catch_warnings():  # "assuming ... a single process" is what we want
            warnings.filterwarnings("ignore", "torch.distributed is disabled")
            dcp.load(states, checkpoint_id=str(folder))
    except (Exception, dcp.CheckpointException) as e:  # noqa: BLE001 - assorted, foreign layouts
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"Sharded checkpoint '{folder}' does not fit this run's model ({first}): was it "
            "saved for another architecture?"
        ) from e
    set_model_state_dict(model, states["model"])
    loose = StateDictOptions(strict=False)  # model keys were checked above
    set_optimizer_state_dict(model, optimizer, states["optimizer"], options=loose)
