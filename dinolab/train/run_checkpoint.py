"""What a run's checkpoint holds and how 1 or N processes write and read it.

One file, `checkpoint.pth` (rank 0, atomic), for single-process and DDP runs; under FSDP2 every
rank writes its shards (`sharded_checkpoint`) and checkpoint.pth keeps only counters, RNG states
and config, plus a whole teacher backbone exported next to it. RNG states of every rank are kept,
so a resume on the same process count is exact; a different count resumes with fresh streams.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from dinolab import distributed as dist
from dinolab.config.loader import to_yaml
from dinolab.train import parallel
from dinolab.train.checkpoint import (
    load_checkpoint,
    load_state_dict_strict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dinolab.train.export import TEACHER_FILE, export_backbone
from dinolab.train.sharded_checkpoint import FORMAT, load_sharded, remove_stale, save_sharded

log = logging.getLogger("dinolab")
CHECKPOINT = "checkpoint.pth"


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
            "skipped": self.skipped,
        }
        if len(rngs) > 1:
            state["rng_per_rank"] = rngs
        if not self.sharded:
            state["model"] = self.model.state_dict()
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def save(self) -> None:
        """Checkpoint the run (call on every rank: RNG states and FSDP shards are collective)."""
        self.logger.flush()  # raises on a non-finite loss before anything is written
        with dist.collective_errors("saving a checkpoint"):
            rngs = dist.gather_objects(rng_state())
            if self.sharded:
                self._save_sharded(rngs)
            elif self.is_main:
                state = self._state(rngs)
                save_checkpoint(self.run_dir / CHECKPOINT, state)
                keep = self.cfg.train.keep_checkpoints
                if keep > 0 and self.step_in_epoch == 0:
                    save_checkpoint(self.run_dir / f"checkpoint_{self.epoch:04d}.pth", state)
                    for old in sorted(self.run_dir.glob("checkpoint_[0-9]*.pth"))[:-keep]:
                        old.unlink()
            dist.barrier()

    def _save_sharded(self, rngs: list[dict]) -> None:
        """FSDP2: every rank writes its shard, then rank 0 points checkpoint.pth at them."""
        name = save_sharded(self.run_dir, self.model, self.optimizer, self.global_step)
        teacher = self._plain_backbone(self.model.teacher.backbone)
        if self.is_main:
            state = {**self._state(rngs), "format": FORMAT, "sharded": name}
            save_checkpoint(self.run_dir / CHECKPOINT, state)
            remove_stale(self.run_dir, keep=name)
            export_backbone(teacher, self.cfg, self.run_dir / TEACHER_FILE)

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
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
            self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.skipped = list(state.get("skipped", []))
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
