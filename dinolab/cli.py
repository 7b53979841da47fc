"""`dinolab <command>`: pretrain, eval, config. Errors a user can cause are one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from dinolab.cli_eval import register_eval
from dinolab.cli_models import register as register_models
from dinolab.cli_viz import register_viz
from dinolab.config.loader import ConfigError, list_presets, load_config, load_saved_config, to_yaml
from dinolab.distributed import DistributedError
from dinolab.train.checkpoint import CheckpointWriteError
from dinolab.train.monitor import NonFiniteLossError

log = logging.getLogger("dinolab")


def _split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """Positional words without '=' are paths; words with '=' are config overrides."""
    paths = [s for s in items if "=" not in s]
    return paths, [s for s in items if "=" in s]


def cmd_pretrain(args: argparse.Namespace) -> int:
    from dinolab.distributed import is_main_process
    from dinolab.train.pretrain import pretrain

    paths, overrides = _split_overrides(args.items)
    if len(paths) > 1:
        raise ConfigError(f"Expected one image folder, got {paths}: overrides need key=value.")
    if args.resume == "auto":  # start the run in out_dir=..., or continue it (requeued jobs)
        from dinolab.train.resume import should_resume

        cfg = load_config(args.preset, overrides)
        if paths:
            cfg.data.path = paths[0]
        resume = should_resume(cfg)
    elif args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(
                f"Run directory '{run_dir}' has no config.yaml and no "
                "checkpoint to resume from: check the path."
            )
        cfg = load_saved_config(saved)
        cfg = load_config(base=_as_dict(cfg), overrides=overrides + [f"out_dir={run_dir}"])
        resume = True
    else:
        cfg = load_config(args.preset, overrides)
        if paths:
            cfg.data.path = paths[0]
        resume = False
    summary = pretrain(cfg, resume=resume)
    if is_main_process():  # under torchrun only rank 0 prints
        _print_summary(summary)
    return 0


def _as_dict(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg))


def _print_summary(summary: dict) -> None:
    run = summary["run_dir"]
    print(f"\nrun directory   {run}")
    print(f"epochs / steps  {summary['epochs']} / {summary['steps']}")
    print(f"checkpoint      {run}/checkpoint.pth")
    print(f"teacher         {summary.get('teacher_backbone')}")
    print(f"metrics         {run}/metrics.jsonl  (TensorBoard: {run}/tensorboard)")
    if summary.get("curves"):
        print(f"curves          {summary['curves']}")
    if summary.get("skipped_images"):
        print(f"skipped images  {summary['skipped_images']} unreadable files (see the log)")
    if "knn" in summary:
        from dinolab.eval.knn import knn_table

        print("\n" + knn_table(summary["knn"]))


def cmd_config(args: argparse.Namespace) -> int:
    print(to_yaml(load_config(args.preset, args.overrides)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dinolab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="self-supervised DINO pretraining on a folder of images")
    p.add_argument(
        "items",
        nargs="*",
        metavar="PATH | key=value",
        help="image folder (or .txt file list) and config overrides",
    )
    p.add_argument("--preset", help=f"one of {', '.join(list_presets())} or a .yaml path")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR | auto",
        help="continue the run in RUN_DIR (from step 0 if it has no checkpoint yet); 'auto': "
        "start the run in out_dir=..., or continue it if it is there (same config)",
    )
    p.set_defaults(func=cmd_pretrain)

    e = sub.add_parser("eval", help="evaluate a backbone").add_subparsers(
        dest="protocol", required=True
    )
    register_eval(e)

    c = sub.add_parser("config", help="print the resolved config (every key with its value)")
    c.add_argument("overrides", nargs="*", metavar="key=value")
    c.add_argument("--preset")
    c.set_defaults(func=cmd_config)
    register_models(sub)
    register_viz(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `pretrain PATH --preset P key=value ...`: words after an option are overrides too
    if extra and args.command == "pretrain" and not any(x.startswith("-") for x in extra):
        args.items = [*args.items, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (
        ConfigError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        NonFiniteLossError,
        DistributedError,
        CheckpointWriteError,
    ) as exc:
        if os.environ.get("DINOLAB_DEBUG"):
            raise
        print(f"dinolab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "dinolab: interrupted; resume with `dinolab pretrain --resume RUN_DIR`.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
