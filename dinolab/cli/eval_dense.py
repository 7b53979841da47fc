"""`dinolab eval segment | depth MODEL --train DIR --val DIR`: linear dense probes.

MODEL is anything `options.resolve_model` reads. segment: DIR/images + DIR/masks (indexed
PNG, 255 = ignore), --mode lin | ms; depth: DIR/images + DIR/depth (16-bit PNG mm or .npy m),
--mode lin1 | lin4. Feature maps are cached in OUT/feature_cache (--no-cache: none kept);
segment.json / .md / .png or depth.json / .md / .png go to OUT (the run directory by default).
`dinolab.cli.eval` registers these commands and hands over its setup / finish steps.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from dinolab.cli.options import add_model_args, add_runtime_args


def _kwargs(args: argparse.Namespace) -> tuple:
    backbone, _, out, kw = args.setup(args)
    common = {
        "size": args.size,
        "crop": args.crop,
        "steps": args.steps,
        "batch": args.batch,
        "seed": args.seed,
        "mean": kw["mean"],
        "std": kw["std"],
        "device": kw["device"],
        "precision": kw["precision"],
        "cache_dir": kw["cache_dir"],
        "progress": kw["progress"],
    }
    if args.lr is not None:
        common["lr"] = args.lr
    return backbone, out, common


def cmd_segment(args: argparse.Namespace) -> int:
    from dinolab.eval.segmentation import run_segmentation, segmentation_table

    backbone, out, kw = _kwargs(args)
    result = run_segmentation(backbone, args.train, args.val, out, mode=args.mode,
                              train_scales=args.train_scales, **kw)  # fmt: skip
    return args.finish(segmentation_table(result), out, "segment")


def cmd_depth(args: argparse.Namespace) -> int:
    from dinolab.eval.depth import depth_table, run_depth

    backbone, out, kw = _kwargs(args)
    result = run_depth(backbone, args.train, args.val, out, mode=args.mode,
                       max_depth=args.max_depth, min_depth=args.min_depth, **kw)  # fmt: skip
    return args.finish(depth_table(result), out, "depth")


def _common(p: argparse.ArgumentParser, what: str, lr: float) -> None:
    add_model_args(p)
    p.add_argument("--train", required=True, help=f"folder with images/ and {what}/")
    p.add_argument("--val", required=True, help=f"folder with images/ and {what}/ to score")
    p.add_argument("--size", type=int, default=224, help="shorter side at scale 1 (px)")
    p.add_argument("--crop", type=int, default=0,
                   help="training crop and sliding window (px; default: --size)")  # fmt: skip
    p.add_argument("--steps", type=int, default=1000, help="head training steps")
    p.add_argument("--batch", type=int, default=8, help="crops per step")
    p.add_argument("--lr", type=float, help=f"AdamW peak learning rate (default {lr})")
    p.add_argument("--seed", type=int, default=0, help="of head init and crops")
    add_runtime_args(p, workers=False)
    p.add_argument("--out", help="where to write results (default: the run directory)")
    p.add_argument("--cache-dir", help="feature cache (default: OUT/feature_cache)")
    p.add_argument("--no-cache", action="store_true", help="extract features again, keep none")


def register(sub: argparse._SubParsersAction, setup: Callable, finish: Callable) -> None:
    """Add `segment` and `depth` to `dinolab eval` (setup / finish: `dinolab.cli.eval`'s)."""
    s = sub.add_parser("segment", help="linear semantic segmentation on patch features, mIoU")
    _common(s, "masks", 1e-3)
    s.add_argument("--mode", choices=["lin", "ms"], default="lin",
                   help="lin: last block; ms: last 4 blocks, multi-scale + flip test")  # fmt: skip
    s.add_argument("--train-scales", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0],
                   help="image scales cached for training crops")  # fmt: skip
    s.set_defaults(func=cmd_segment, setup=setup, finish=finish, image_size=0, batch_size=1)

    d = sub.add_parser("depth", help="linear monocular depth on patch features, RMSE")
    _common(d, "depth", 3e-4)
    d.add_argument("--mode", choices=["lin1", "lin4"], default="lin1",
                   help="lin1: last block + CLS; lin4: 4 evenly spaced blocks + CLS")  # fmt: skip
    d.add_argument("--max-depth", type=float, default=10.0, help="metres: bins and valid range")
    d.add_argument("--min-depth", type=float, default=1e-3, help="metres: smallest valid depth")
    d.set_defaults(func=cmd_depth, setup=setup, finish=finish, image_size=0, batch_size=1)
