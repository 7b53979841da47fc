"""`dinolab eval knn | linear | logreg | fewshot`: frozen-backbone evaluations of a run.

Every protocol loads the run's teacher, extracts (and caches) features of the labelled folders,
writes `<protocol>.json` and `<protocol>.md` into the run directory (or --out) and prints the
table. Wired into `dinolab.cli` by `register_eval(eval_subparsers)`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run directory (or a teacher .safetensors)")
    p.add_argument("--train", required=True, help="labelled image folder (class subfolders)")
    p.add_argument("--val", required=True, help="labelled image folder to evaluate on")
    p.add_argument("--image-size", type=int, default=0, help="default: the run's eval size")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto: bf16 where the hardware has it natively, fp32 elsewhere",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--num-workers", type=int, default=-1, help="data-loader processes (-1 = from the cores)"
    )
    p.add_argument("--out", help="where to write results (default: the run directory)")
    p.add_argument("--cache-dir", help="feature cache (default: OUT/feature_cache)")
    p.add_argument("--no-cache", action="store_true", help="extract features again, keep none")
    p.add_argument("--no-progress", action="store_true")


def _setup(args: argparse.Namespace) -> tuple:
    """(backbone, image_size, out_dir, feature kwargs) shared by every protocol."""

    from dinolab.distributed import resolve_device
    from dinolab.hardware import plan_threads
    from dinolab.train.export import load_run_backbone

    backbone, cfg = load_run_backbone(args.run)
    run = Path(args.run)
    out_dir = Path(args.out) if args.out else (run.parent if run.is_file() else run)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = None if args.no_cache else Path(args.cache_dir or out_dir / "feature_cache")
    kwargs = {
        "batch_size": args.batch_size,
        "num_workers": plan_threads(0, args.num_workers).num_workers,
        "device": resolve_device(args.device),
        "precision": args.precision,
        "mean": tuple(cfg.data.mean),
        "std": tuple(cfg.data.std),
        "progress": not args.no_progress,
        "cache_dir": cache,
    }
    image_size = args.image_size or cfg.eval.image_size or cfg.data.global_size
    return backbone, image_size, out_dir, kwargs


def _finish(table: str, out_dir: Path, name: str) -> int:
    print(table)
    print(f"written to {out_dir / name}.json and {name}.md")
    return 0


def cmd_knn(args: argparse.Namespace) -> int:
    from dinolab.eval.knn import knn_table, run_knn

    backbone, size, out, kw = _setup(args)
    result = run_knn(
        backbone, args.train, args.val, size, args.k, args.temperature, out_dir=out, **kw
    )
    return _finish(knn_table(result), out, "knn")


def cmd_fewshot(args: argparse.Namespace) -> int:
    from dinolab.eval.fewshot import fewshot_table, run_fewshot

    backbone, size, out, kw = _setup(args)
    result = run_fewshot(
        backbone,
        args.train,
        args.val,
        size,
        shots=args.shots,
        tries=args.tries,
        ks=args.k,
        temperature=args.temperature,
        seed=args.seed,
        out_dir=out,
        **kw,
    )
    return _finish(fewshot_table(result), out, "fewshot")


def cmd_linear(args: argparse.Namespace) -> int:
    from dinolab.eval.linear import DEFAULT_LRS, linear_table, run_linear
    from dinolab.eval.linear_heads import Variant

    variants = [Variant.parse(v) for v in args.variants] if args.variants else None
    backbone, size, out, kw = _setup(args)
    result = run_linear(
        backbone,
        args.train,
        args.val,
        size,
        mode=args.mode,
        test_root=args.test,
        variants=variants,
        lrs=args.lr or DEFAULT_LRS,
        epochs=args.epochs,
        seed=args.seed,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        out_dir=out,
        **kw,
    )
    return _finish(linear_table(result), out, "linear")


def cmd_logreg(args: argparse.Namespace) -> int:
    from dinolab.eval.linear_heads import Variant
    from dinolab.eval.logreg import DEFAULT_CS, logreg_table, run_logreg

    v = Variant.parse(args.variant)
    backbone, size, out, kw = _setup(args)
    result = run_logreg(
        backbone,
        args.train,
        args.val,
        size,
        Cs=args.C or DEFAULT_CS,
        variant=(v.n_blocks, v.avgpool),
        test_root=args.test,
        max_iter=args.max_iter,
        out_dir=out,
        **kw,
    )
    return _finish(logreg_table(result), out, "logreg")


def register_eval(sub: argparse._SubParsersAction) -> None:
    """Add the knn, fewshot, linear and logreg protocols to `dinolab eval`."""
    k = sub.add_parser("knn", help="weighted k-NN on frozen teacher features")
    _common(k)
    k.add_argument("--k", type=int, nargs="+", default=[10, 20, 100, 200])
    k.add_argument("--temperature", type=float, default=0.07)
    k.set_defaults(func=cmd_knn)

    f = sub.add_parser("fewshot", help="k-NN with n training images per class, several draws")
    _common(f)
    f.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10], help="images per class")
    f.add_argument("--tries", type=int, default=5, help="random draws per shot count")
    f.add_argument("--k", type=int, nargs="+", default=[10, 20])
    f.add_argument("--temperature", type=float, default=0.07)
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=cmd_fewshot)

    lin = sub.add_parser("linear", help="grid of linear probes, best chosen on --val")
    _common(lin)
    lin.add_argument(
        "--mode",
        choices=["full", "fast"],
        default="full",
        help="full: augmented images; fast: cached features, many epochs",
    )
    lin.add_argument("--epochs", type=int, default=0, help="default: 10 full, 100 fast")
    lin.add_argument("--lr", type=float, nargs="+", help="base lrs at batch 256 (DINOv2 grid)")
    lin.add_argument("--variants", nargs="+", help="feature variants, e.g. 4 1+avgpool")
    lin.add_argument("--test", help="optional labelled folder: report the chosen head on it")
    lin.add_argument("--momentum", type=float, default=0.9)
    lin.add_argument("--weight-decay", type=float, default=0.0)
    lin.add_argument("--seed", type=int, default=0)
    lin.set_defaults(func=cmd_linear)

    lr = sub.add_parser("logreg", help="L2 logistic regression (L-BFGS), C chosen on --val")
    _common(lr)
    lr.add_argument("--C", type=float, nargs="+", help="inverse L2 strengths (default 1e-3..100)")
    lr.add_argument("--variant", default="1", help="feature variant, e.g. 1 or 1+avgpool")
    lr.add_argument("--test", help="optional labelled folder: report the chosen C on it")
    lr.add_argument("--max-iter", type=int, default=200)
    lr.set_defaults(func=cmd_logreg)
