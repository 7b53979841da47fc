"""`dinolab distill IMAGES --teacher RUN_OR_MODEL --preset P key=value ...`: a frozen teacher
trains a student (`dinolab.train.distill`); `--resume RUN_DIR | auto` as for pretrain."""

from __future__ import annotations

import argparse

from dinolab.cli.options import add_runtime_args
from dinolab.cli.pretrain import _print_summary, run_config
from dinolab.config.loader import list_presets


def cmd_distill(args: argparse.Namespace) -> int:
    from dinolab.distributed import is_main_process
    from dinolab.train.distill import prepare_distill_config
    from dinolab.train.distill_run import distill

    extra = [f"distill.teacher={args.teacher}"] if args.teacher else []
    cfg, resume = run_config(args, extra, prepare=prepare_distill_config)
    summary = distill(cfg, resume=resume)
    if is_main_process():
        _print_summary(summary)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dinolab distill`."""
    p = sub.add_parser(
        "distill", help="train a (smaller) student from a frozen teacher (DINOv2 distillation)"
    )
    p.add_argument(
        "items", nargs="*", metavar="PATH | key=value", help="image folder and config overrides"
    )
    p.add_argument(
        "--teacher",
        metavar="RUN_DIR | MODEL",
        help="a dinolab run directory (recipe mode: its backbone and heads), or a hub name or "
        "weights file (feature mode); sets distill.teacher",
    )
    p.add_argument("--preset", help=f"one of {', '.join(list_presets())} or a .yaml path")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR | auto",
        help="continue the distillation in RUN_DIR; 'auto': start it in out_dir=..., or "
        "continue it if it is there (same config)",
    )
    add_runtime_args(p, config=True)
    p.set_defaults(func=cmd_distill)
