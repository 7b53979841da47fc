"""`dinolab distill IMAGES --teacher RUN_OR_MODEL --preset P key=value ...`: a frozen teacher
trains a student (`dinolab.train.distill`); `--resume RUN_DIR | auto` as for pretrain."""

from __future__ import annotations

import argparse
from pathlib import Path

from dinolab.cli.options import add_runtime_args
from dinolab.cli.pretrain import _as_dict, _print_summary, _split_overrides, runtime_overrides
from dinolab.config.loader import ConfigError, list_presets, load_config, load_saved_config


def cmd_distill(args: argparse.Namespace) -> int:
    from dinolab.distributed import is_main_process
    from dinolab.train.distill import prepare_distill_config
    from dinolab.train.distill_run import distill

    paths, overrides = _split_overrides(args.items)
    overrides += runtime_overrides(args)
    if args.teacher:
        overrides.append(f"distill.teacher={args.teacher}")
    if len(paths) > 1:
        raise ConfigError(f"Expected one image folder, got {paths}: overrides need key=value.")
    if args.resume and args.resume != "auto":
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(
                f"Run directory '{run_dir}' has no config.yaml to resume from: check the path."
            )
        base = _as_dict(load_saved_config(saved))
        cfg = load_config(base=base, overrides=overrides + [f"out_dir={run_dir}"])
        resume = True
    else:
        cfg = load_config(args.preset, overrides)
        if paths:
            cfg.data.path = paths[0]
        resume = False
        if args.resume == "auto":  # the saved run's config, resolved the same way, or a new run
            from dinolab.train.resume import should_resume

            resume = should_resume(prepare_distill_config(cfg))
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
