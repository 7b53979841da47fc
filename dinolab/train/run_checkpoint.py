"""What a run's checkpoint holds and how 1 or N processes write and read it.

One file, `checkpoint.pth` (rank 0, atomic), for single-process and DDP runs; under FSDP2 every
rank writes its shards (`sharded_checkpoint`) and checkpoint.pth keeps only counters, RNG states
and config, plus a whole teacher backbone exported next to it. RNG states of every rank are kept,
so a resume on the same process count is exact; a different count resumes with fresh streams.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from dinolab import distributed as dist
from dinolab.config.loader import to_yaml
from dinolab.models.weights import load_state_dict_strict
from dinolab.run_dir import (
    CHECKPOINT,
    METRICS,
    CheckpointWriteError,
    export_teacher,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
    snapshot_name,
    snapshots,
    trim_metrics,
)
from dinolab.train import parallel
from dinolab.train.checkpoint import rng_state, set_rng_state
from dinolab.train.optim import load_optimizer_state
from dinolab.train.sharded_checkpoint import FORMAT, load_sharded, remove_stale, save_sharded

log = logging.getLogger("dinolab")
__all__ = ["CHECKPOINT", "RunCheckpoints", "has_checkpoint", "read_newest_good", "snapshots"]


def read_newest_good(run_dir: Path) -> tuple[Path, dict]:
    """checkpoint.pth, or if it is missing or unreadable (a truncated file) the newest snapshot
    that reads; a warning names both files. No readable one at all is one clear error."""
    latest = run_dir / CHECKPOINT
    candidates = ([latest] if latest.is_file() else []) + snapshots(run_dir)
    if not candidates:
        raise FileNotFoundError(
            f"Run directory '{run_dir}' has no {CHECKPOINT} to resume from: start a new "
            "run or point --resume at a run directory that has one."
        )
    unreadable = []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except ValueError as e:
            unreadable.append(path)
            log.debug("%s", e)
            continue
        if path != latest:
            gone = "is truncated or unreadable" if latest.is_file() else "is missing"
            also = [f"'{p}'" for p in unreadable if p != latest]
            more = f" (so is {', '.join(also)})" if also else ""
            log.warning(
                "'%s' %s%s: resuming from the snapshot '%s' instead", latest, gone, more, path
            )
        return path, state
    names = ", ".join(p.name for p in candidates)
    raise ValueError(
        f"No readable checkpoint in '{run_dir}' ({names}: all truncated or unreadable): "
        "restore one from a backup, or start the run again in a new out_dir=..."
    )


def _write(path: Path, state: dict) -> None:
    """`save_checkpoint`, whose OSError names `path` (not the temp file it was writing)."""
    try:
        save_checkpoint(path, state)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e


def remove_partial_writes(run_dir: Path) -> None:
    """Delete temp files that a kill in the middle of an atomic save left behind."""
    for tmp in run_dir.glob("*.tmp-*"):
        tmp.unlink(missing_ok=True)


class RunCheckpoints:
    """Checkpoint methods of `Trainer` (a mixin: they use the trainer's model, optimizer, ...)."""

    def _state(self, rngs: list[dict]) -> dict:
        state = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "global_batch": self.global_batch,
            "rng": rngs[0],
            "config": to_yaml(self.cfg),
            "skipped": list(self.skipped),
            "teacher_update": self.train_step.teacher_update.state_dict(),
        }
        if len(rngs) > 1:
            state["rng_per_rank"] = rngs
        if self.budget is not None:
            state["budget"] = self.budget.plan.state_dict()
        if not self.sharded:
            state["model"] = self.model.state_dict()
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def save(self) -> None:
        """Checkpoint the run (call on every rank: RNG states and FSDP shards are collective).

        A failed write (full disk, ...) leaves the previous checkpoint as it was and stops the
        run with a `CheckpointWriteError` that says so (saves are atomic: temp file + rename).
        """
        self.logger.flush()  # raises on a non-finite loss before anything is written
        with dist.collective_errors("saving a checkpoint"), self._write_errors():
            rngs = dist.gather_objects(rng_state())
            if self.sharded:
                self._save_sharded(rngs)
            elif self.is_main:
                state = self._state(rngs)
                _write(self.run_dir / CHECKPOINT, state)
                keep = self.cfg.train.keep_checkpoints
                if keep > 0 and self.step_in_epoch == 0:
                    _write(self.run_dir / snapshot_name(self.epoch), state)
                    for old in snapshots(self.run_dir)[keep:]:
                        old.unlink()
            dist.barrier()

    @contextlib.contextmanager
    def _write_errors(self) -> Iterator[None]:
        """Turn an OSError while writing into one sentence naming the file and the way on."""
        had_checkpoint = has_checkpoint(self.run_dir)
        try:
            yield
        except CheckpointWriteError:
            raise
        except OSError as e:
            where = e.filename or self.run_dir
            kept = (
                "the previous checkpoint is intact"
                if had_checkpoint
                else "no checkpoint was written before this one"
            )
            raise CheckpointWriteError(
                f"could not write checkpoint to '{where}': {e.strerror or e}; {kept}; free "
                f"space and resume with `dinolab pretrain --resume {self.run_dir}`."
            ) from e

    def _save_sharded(self, rngs: list[dict]) -> None:
        """FSDP2: every rank writes its shard, then rank 0 points checkpoint.pth at them."""
        name = save_sharded(self.run_dir, self.model, self.optimizer, self.global_step)
        teacher = self._plain_backbone(self.model.teacher.backbone)
        if self.is_main:
            state = {**self._state(rngs), "format": FORMAT, "sharded": name}
            _write(self.run_dir / CHECKPOINT, state)
            remove_stale(self.run_dir, keep=name)
            export_teacher(teacher, self.cfg, self.run_dir)

    def _load(self, path: Path) -> None:
        """Continue from `path`, or when it is unreadable from the newest good snapshot."""
        path, state = read_newest_good(path.parent)
        if self.is_main:
            remove_partial_writes(path.parent)
            trim_metrics(path.parent / METRICS, state["global_step"])
        saved_batch = state.get("global_batch", self.global_batch)
        if saved_batch != self.global_batch:
            raise ValueError(
                f"'{path}' was trained with a global batch of {saved_batch} images, this run has "
                f"{self.global_batch}: set train.global_batch_size={saved_batch} to resume it."
            )
        if state.get("format") == FORMAT:
            load_sharded(self.run_dir / state["sharded"], self.model, self.optimizer)
        elif self.sharded:
            raise ValueError(f"'{path}' was saved without FSDP: resume it with train.parallel=ddp.")
        else:
            load_state_dict_strict(self.model, state["model"], "this run's model")
            load_optimizer_state(self.optimizer, state["optimizer"], path)
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.skipped = dict.fromkeys(state.get("skipped", []))
        self.train_step.teacher_update.load_state_dict(state.get("teacher_update", {}))
        if self.budget is not None and "budget" in state:
            self.budget.load_state(state["budget"])
            self.schedules = self.budget.schedules(self.schedules)
        rngs = state.get("rng_per_rank", [state["rng"]])
        rank = dist.get_rank()
        if len(rngs) == self.world_size:
            set_rng_state(rngs[rank])
        else:  # another process count: exactness is impossible, keep streams distinct
            set_rng_state(state["rng"])
            if rank > 0:
                torch.manual_seed(self.cfg.train.seed + 1_000_003 * rank + self.global_step)
        log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.global_step)

    def _plain_backbone(self, backbone: nn.Module) -> nn.Module | None:
        """`backbone` itself, or under FSDP a whole copy on rank 0 (collective; None elsewhere)."""
        if not self.sharded:
            return backbone
        state = parallel.full_state_dict(backbone)
        if not self.is_main:
            return None
        from dinolab.models import build_backbone

        with torch.random.fork_rng(devices=[]):  # a fresh init must not shift the run's RNG
            copy = build_backbone(self.cfg.model).to(self.device)
        load_state_dict_strict(copy, state, "the backbone copy")
        return copy.eval()
