"""Run by tests/train/test_distributed.py under `torchrun --nproc_per_node=2`.

argv: OUT_DIR key=value...  With the given overrides: 3 FSDP2 steps, then a stop (OUT_DIR/fsdp);
a DDP run with drop-path straight through (OUT_DIR/ddp_straight) and one that only rank 1
signals to stop after 4 steps, then resumed (OUT_DIR/ddp_split). Then checks that a config
differing across ranks and a rank that stops answering both raise clear errors. Each rank
writes what it saw to OUT_DIR/rank<R>.json.
"""

import json
import sys
from datetime import timedelta
from pathlib import Path

import torch.distributed as tdist

from dinolab import distributed as dist
from dinolab.config.loader import load_config
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.pretrain import pretrain
from tests.train.conftest import stop_after


def main() -> None:
    out, base = Path(sys.argv[1]), sys.argv[2:]
    fsdp = ["train.parallel=fsdp", f"out_dir={out / 'fsdp'}"]
    try:
        with stop_after(3):  # 3 steps of the whole run's schedules, then a checkpoint
            pretrain(load_config(overrides=[*base, *fsdp]))
    except TrainingInterrupted as e:
        fsdp_steps = e.step
    ddp = ["train.parallel=ddp", "model.drop_path_rate=0.2"]
    pretrain(load_config(overrides=[*base, *ddp, f"out_dir={out / 'ddp_straight'}"]))
    split = [*base, *ddp, f"out_dir={out / 'ddp_split'}"]
    rank = dist.get_rank()
    seen = {"steps": fsdp_steps, "world": dist.get_world_size()}
    try:
        with stop_after(4, only_rank=1):  # a SIGTERM that only rank 1 gets, mid-epoch 2
            pretrain(load_config(overrides=split))
    except TrainingInterrupted as e:  # every rank stops at the same step, with one checkpoint
        seen["stopped_at"] = e.step
    pretrain(load_config(overrides=split), resume=True)
    try:
        dist.check_same_config(f"out_dir: same\ntrain.seed: {rank}\n")
    except ValueError as e:
        seen["mismatch"] = str(e)
    group = tdist.new_group(backend="gloo", timeout=timedelta(seconds=3))
    if rank == 0:  # rank 1 never joins this barrier: a hung or dead peer
        try:
            with dist.collective_errors("waiting at a barrier"):
                tdist.barrier(group=group)
        except dist.DistributedError as e:
            seen["timeout"] = str(e)
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    tdist.barrier()  # keep rank 1 alive until rank 0 has seen the timeout


if __name__ == "__main__":
    main()
