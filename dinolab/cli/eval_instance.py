"""`dinolab eval retrieval | copydetect | copyset`: instance-level evaluations (DINO's).

  dinolab eval retrieval MODEL --db DIR [--queries DIR] --gt gnd.json|gnd_roxford5k.pkl
  dinolab eval copydetect MODEL --db DIR --queries DIR --pairs pairs.csv [--whiten DIR]
  dinolab eval copyset SRC OUT          a Copydays-like set made from any image folder

MODEL is anything `options.resolve_model` reads; results go where the other protocols write
theirs: retrieval.json / .md, copydetect.json / .md, with a feature cache. `dinolab.cli.eval`
registers these commands and hands over its setup / finish steps (no import back, no cycle).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from dinolab.cli.options import add_model_args, add_runtime_args


def _model_and_output(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--batch-size", type=int, default=32, help="images of one shape per forward")
    add_runtime_args(p)
    p.add_argument("--out", help="where to write results (default: the run directory)")
    p.add_argument("--cache-dir", help="descriptor cache (default: OUT/feature_cache)")
    p.add_argument("--no-cache", action="store_true", help="describe images again, keep none")
    p.set_defaults(image_size=0)


def cmd_retrieval(args: argparse.Namespace) -> int:
    from dinolab.eval.retrieval import retrieval_table, run_retrieval

    backbone, _, out, kw = args.setup(args)
    result = run_retrieval(
        backbone,
        args.db,
        args.queries,
        args.gt,
        imsize=args.imsize,
        multiscale=args.multiscale,
        crop_queries=args.crop_queries,
        out_dir=out,
        **kw,
    )
    return args.finish(retrieval_table(result), out, "retrieval")


def cmd_copydetect(args: argparse.Namespace) -> int:
    from dinolab.eval.copy_detection import copydetect_table, run_copydetect

    backbone, _, out, kw = args.setup(args)
    result = run_copydetect(
        backbone,
        args.db,
        args.queries,
        args.pairs,
        whiten_root=args.whiten,
        dino_compat=args.dino_compat,
        imsize=args.imsize,
        topk=args.topk,
        out_dir=out,
        **kw,
    )
    return args.finish(copydetect_table(result), out, "copydetect")


def cmd_copyset(args: argparse.Namespace) -> int:
    from dinolab.eval.copy_set import make_copy_set

    summary = make_copy_set(
        args.source,
        args.out,
        n_originals=args.originals,
        n_distractors=args.distractors,
        n_whiten=args.whiten,
        strong_per_original=args.strong,
        long_side=args.long_side,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        f"{summary['n_queries']} queries of {args.originals} originals, {args.distractors} "
        f"distractors, {args.whiten} whitening images in {args.out}; evaluate with\n"
        f"  dinolab eval copydetect MODEL --db {args.out}/db --queries {args.out}/queries "
        f"--pairs {args.out}/pairs.csv --whiten {args.out}/whiten"
    )
    return 0


def register(sub: argparse._SubParsersAction, setup: Callable, finish: Callable) -> None:
    """Add retrieval, copydetect and copyset to the `dinolab eval` sub-commands.

    setup(args) -> (backbone, image_size, out_dir, descriptor kwargs) and
    finish(table, out_dir, name) are `dinolab.cli.eval`'s, shared by every protocol.
    """
    r = sub.add_parser("retrieval", help="revisited Oxford / Paris-style retrieval, mAP M / H")
    _model_and_output(r)
    r.add_argument("--db", required=True, help="folder of the database images (imlist)")
    r.add_argument("--queries", help="folder of the query images (default: --db)")
    r.add_argument("--gt", required=True, help="revisited ground truth: .json or gnd_*.pkl")
    r.add_argument("--imsize", type=int, default=224, help="long side of every image")
    r.add_argument("--multiscale", action="store_true", help="average scales 1, 1/sqrt2, 1/2")
    r.add_argument(
        "--crop-queries",
        action="store_true",
        help="crop queries to their box (revisited standard; DINO does not)",
    )
    r.set_defaults(func=cmd_retrieval, setup=setup, finish=finish)

    c = sub.add_parser("copydetect", help="Copydays-style copy detection, mAP per block")
    _model_and_output(c)
    c.add_argument("--db", required=True, help="folder of originals and distractors")
    c.add_argument("--queries", required=True, help="folder of the edited copies")
    c.add_argument("--pairs", required=True, help="CSV query,original[,block] or JSON")
    c.add_argument("--whiten", help="separate image folder to learn PCA whitening on")
    c.add_argument(
        "--dino-compat",
        action="store_true",
        help="DINO's uncentred whitening covariance (default: centred)",
    )
    c.add_argument("--imsize", type=int, default=320, help="images resized to imsize^2")
    c.add_argument("--topk", type=int, default=20, help="ranks scored per query")
    c.set_defaults(func=cmd_copydetect, setup=setup, finish=finish)

    s = sub.add_parser("copyset", help="make a Copydays-like set from an image folder")
    s.add_argument("source", metavar="SRC", help="image folder (searched recursively)")
    s.add_argument("out", metavar="OUT", help="new folder for the set")
    s.add_argument("--originals", type=int, default=100, help="images that get edited copies")
    s.add_argument("--distractors", type=int, default=1000, help="database images without copies")
    s.add_argument("--whiten", type=int, default=500, help="images for learning whitening")
    s.add_argument("--strong", type=int, default=2, help="strong copies per original")
    s.add_argument("--long-side", type=int, default=0, help="resize images first (0: keep)")
    s.add_argument("--seed", type=int, default=0, help="of the image picks and the edits")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_copyset)
