"""`dinolab <command>`: one module per command group, the shared flags in `options`.

  pretrain, config             dinolab.cli.pretrain
  eval knn|fewshot|linear|...  dinolab.cli.eval
  hub, extract, export         dinolab.cli.models
  viz attention|pca|...        dinolab.cli.viz

Errors a user can cause are one line on stderr and exit code 2 (DINOLAB_DEBUG=1: traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dinolab import __version__
from dinolab.cli import curate, distill, finetune, models, pretrain, viz
from dinolab.cli import eval as eval_commands
from dinolab.config.loader import ConfigError
from dinolab.distributed import DistributedError
from dinolab.run_dir import CheckpointWriteError
from dinolab.train.interrupt import TrainingInterrupted
from dinolab.train.monitor import NonFiniteLossError

log = logging.getLogger("dinolab")
DESCRIPTION = (
    "DINO / DINOv2 self-supervised learning: pretrain a backbone on a folder of images "
    "(pretrain; config prints its settings), distil a frozen teacher into a smaller student "
    "(distill), evaluate it (eval), fine-tune it into a classifier (finetune) and label images "
    "with that classifier (predict), compute features (extract), "
    "convert it (export), load published checkpoints (hub), draw what it learned (viz) and "
    "curate a big image folder into a balanced, deduplicated list (curate)."
)
USER_ERRORS = (
    ConfigError,
    FileNotFoundError,
    FileExistsError,
    ValueError,
    NonFiniteLossError,
    DistributedError,
    CheckpointWriteError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dinolab", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"dinolab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    pretrain.register(sub)
    distill.register(sub)
    eval_commands.register(sub)
    models.register(sub)
    viz.register(sub)
    finetune.register(sub)
    curate.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `pretrain PATH --preset P key=value ...`: words after an option are overrides too
    if (
        extra
        and args.command in ("pretrain", "distill", "finetune")
        and not any(x.startswith("-") for x in extra)
    ):
        args.items = [*args.items, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    level = log.level
    if getattr(args, "quiet", False):
        log.setLevel(logging.WARNING)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        if os.environ.get("DINOLAB_DEBUG"):
            raise
        print(f"dinolab: error: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:  # a signal, a checkpoint saved: exc says how to resume
        print(f"dinolab: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # `pretrain` adds what was saved and how to go on
        print(f"dinolab: interrupted{'; ' + str(exc) if str(exc) else ''}.", file=sys.stderr)
        return 130
    finally:
        log.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
