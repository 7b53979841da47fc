"""`dinolab eval davis MODEL --davis DIR`: DAVIS video object segmentation (DINO's protocol).

MODEL is anything `options.resolve_model` reads. Label propagation with DINO's defaults (short
side 480, first frame + 7 last frames, top-5, temperature 0.1, 12-patch window); masks as
indexed PNGs in OUT/davis/<sequence>/, davis.json / .md / _per_sequence.csv and davis.png in
OUT (the run directory by default). `dinolab.cli.eval` registers this command and hands over
its setup / finish steps (no import back, no cycle).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from dinolab.cli.options import add_model_args, add_runtime_args


def cmd_davis(args: argparse.Namespace) -> int:
    from dinolab.eval.davis import davis_table, run_davis

    args.no_cache = args.cache_dir is None  # frame features are large: kept only when asked
    backbone, _, out, kw = args.setup(args)
    result = run_davis(
        backbone,
        args.davis,
        out,
        sequences=args.sequences,
        mean=kw["mean"],
        std=kw["std"],
        progress=kw["progress"],
        write_masks=not args.no_masks,
        size=args.size,
        multiple=args.multiple,
        n_last_frames=args.n_last_frames,
        topk=args.topk,
        temperature=args.temperature,
        radius=args.size_mask_neighborhood,
        device=kw["device"],
        precision=kw["precision"],
        cache_dir=kw["cache_dir"],
    )
    return args.finish(davis_table(result), out, "davis")


def register(sub: argparse._SubParsersAction, setup: Callable, finish: Callable) -> None:
    """Add `davis` to the `dinolab eval` sub-commands (setup / finish: `dinolab.cli.eval`'s)."""
    d = sub.add_parser("davis", help="DAVIS video segmentation by label propagation, J&F")
    add_model_args(d)
    d.add_argument("--davis", required=True, help="folder with JPEGImages/ and Annotations/")
    d.add_argument("--sequences", nargs="+", help="only these sequences (default: all)")
    d.add_argument("--size", type=int, default=480, help="shorter side of the frames (px)")
    d.add_argument("--multiple", type=int, default=64,
                   help="longer side floored to a multiple of it (else of the patch)")  # fmt: skip
    d.add_argument("--n-last-frames", type=int, default=7, help="previous frames in the context")
    d.add_argument("--topk", type=int, default=5, help="source patches averaged per patch")
    d.add_argument("--temperature", type=float, default=0.1, help="of exp(cosine / T)")
    d.add_argument("--size-mask-neighborhood", type=int, default=12,
                   help="window radius in patches (0: the whole frame)")  # fmt: skip
    d.add_argument("--no-masks", action="store_true", help="score only, write no PNG masks")
    add_runtime_args(d, workers=False)
    d.add_argument("--out", help="where to write results (default: the run directory)")
    d.add_argument("--cache-dir", help="keep each sequence's frame features here (large)")
    d.set_defaults(func=cmd_davis, setup=setup, finish=finish, image_size=0, batch_size=1)
