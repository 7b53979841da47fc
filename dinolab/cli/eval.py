"""`dinolab eval knn | linear | logreg | fewshot MODEL`: frozen-backbone evaluations of a model.

MODEL (first, as in every command) is anything `options.resolve_model` reads: a run
directory, a teacher .safetensors (or other weights file) or a hub name (`--weights PATH`
offline); `--run MODEL`, the old spelling, still works with a warning. Every protocol
extracts (and caches) features of the labelled folders with the model's normalisation, writes
`<protocol>.json` and `<protocol>.md` into the run directory (the file's folder; for hub
models runs/eval-NAME; or --out) and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dinolab.cli.options import add_model_args, add_runtime_args, model_from_args, runtime


def _common(p: argparse.ArgumentParser) -> None:
    add_model_args(p, run_alias=True)
    p.add_argument("--train", required=True, help="labelled image folder (class subfolders)")
    p.add_argument("--val", required=True, help="labelled image folder to evaluate on")
    p.add_argument("--image-size", type=int, default=0,
                   help="default: the run's eval size (224 for hub models)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass")
    add_runtime_args(p)
    p.add_argument("--out", help="where to write results (default: the run directory)")
    p.add_argument("--cache-dir", help="feature cache (default: OUT/feature_cache)")
    p.add_argument("--no-cache", action="store_true", help="extract features again, keep none")


def default_out_dir(spec: str, run_dir: Path | None) -> Path:
    """The run directory, a weights file's folder, or runs/eval-NAME for a hub model."""
    if run_dir is not None:
        return run_dir
    path = Path(spec).expanduser()
    if path.exists():
        return path if path.is_dir() else path.parent
    return Path("runs") / f"eval-{spec}"


def _setup(args: argparse.Namespace, with_view: bool = False) -> tuple:
    """(backbone, image_size, out_dir, feature kwargs) shared by every protocol; `with_view`
    adds the model's resize ratio before the centre crop, which the classification protocols
    share (retrieval, video and dense tasks have views of their own)."""
    rt = runtime(args)
    resolved = model_from_args(args)
    out_dir = Path(args.out) if args.out else default_out_dir(args.model, resolved.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = None if args.no_cache else Path(args.cache_dir or out_dir / "feature_cache")
    kwargs = {
        "batch_size": args.batch_size,
        "num_workers": rt.num_workers,
        "device": rt.device,
        "precision": rt.precision,
        "mean": resolved.mean,
        "std": resolved.std,
        "progress": rt.progress,
        "cache_dir": cache,
    }
    if with_view:
        kwargs["resize_ratio"] = resolved.resize_ratio
    return resolved.model, args.image_size or resolved.image_size, out_dir, kwargs


def _finish(table: str, out_dir: Path, name: str) -> int:
    print(table)
    print(f"written to {out_dir / name}.json and {name}.md")
    return 0


def cmd_knn(args: argparse.Namespace) -> int:
    from dinolab.eval.knn import knn_table, run_knn

    backbone, size, out, kw = _setup(args, with_view=True)
    result = run_knn(
        backbone, args.train, args.val, size, args.k, args.temperature, out_dir=out, **kw
    )
    return _finish(knn_table(result), out, "knn")


def cmd_fewshot(args: argparse.Namespace) -> int:
    from dinolab.eval.fewshot import fewshot_table, run_fewshot

    backbone, size, out, kw = _setup(args, with_view=True)
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
    backbone, size, out, kw = _setup(args, with_view=True)
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
    backbone, size, out, kw = _setup(args, with_view=True)
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dinolab eval knn | fewshot | linear | logreg`."""
    sub = sub.add_parser("eval", help="evaluate a backbone").add_subparsers(
        dest="protocol", required=True
    )
    k = sub.add_parser("knn", help="weighted k-NN on frozen teacher features")
    _common(k)
    k.add_argument("--k", type=int, nargs="+", default=[10, 20, 100, 200],
                   help="numbers of neighbours to vote (one score each)")  # fmt: skip
    k.add_argument("--temperature", type=float, default=0.07, help="of the similarity weights")
    k.set_defaults(func=cmd_knn)

    f = sub.add_parser("fewshot", help="k-NN with n training images per class, several draws")
    _common(f)
    f.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10], help="images per class")
    f.add_argument("--tries", type=int, default=5, help="random draws per shot count")
    f.add_argument("--k", type=int, nargs="+", default=[10, 20], help="numbers of neighbours")
    f.add_argument("--temperature", type=float, default=0.07, help="of the similarity weights")
    f.add_argument("--seed", type=int, default=0, help="of the draws of training images")
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
    lin.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    lin.add_argument("--weight-decay", type=float, default=0.0, help="SGD weight decay")
    lin.add_argument("--seed", type=int, default=0, help="of head init and data order")
    lin.set_defaults(func=cmd_linear)

    lr = sub.add_parser("logreg", help="L2 logistic regression (L-BFGS), C chosen on --val")
    _common(lr)
    lr.add_argument("--C", type=float, nargs="+", help="inverse L2 strengths (default 1e-3..100)")
    lr.add_argument("--variant", default="1", help="feature variant, e.g. 1 or 1+avgpool")
    lr.add_argument("--test", help="optional labelled folder: report the chosen C on it")
    lr.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations per C")
    lr.set_defaults(func=cmd_logreg)

    from dinolab.cli import eval_instance  # retrieval, copydetect, copyset

    eval_instance.register(sub, _setup, _finish)

    from dinolab.cli import eval_video  # davis

    eval_video.register(sub, _setup, _finish)

    from dinolab.cli import eval_dense  # segment, depth

    eval_dense.register(sub, _setup, _finish)
