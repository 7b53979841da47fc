"""`dinolab curate embed|dedup|cluster|sample|retrieve`: from a big uncurated folder to a
curated image list (`dinolab pretrain DIR/list.txt`). See `dinolab.curate`.

Every step resumes when run again with the same arguments (embed and the k-NN graph by chunk,
cluster by level; sample and retrieve take seconds), shows progress and writes report.json.
"""

from __future__ import annotations

import argparse
import json

from dinolab.cli.options import add_model_args, add_runtime_args, model_from_args, runtime


def _print(report: dict, out: str) -> int:
    short = {k: v for k, v in report.items() if not isinstance(v, list) or len(v) <= 10}
    print(json.dumps(short, indent=1))
    print(f"written to {out} (report.json, list.txt)")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from dinolab.curate.embed import embed_images

    rt = runtime(args)
    resolved = model_from_args(args)
    report = embed_images(
        resolved.model,
        args.images,
        args.out,
        image_size=args.image_size or resolved.image_size,
        mean=resolved.mean,
        std=resolved.std,
        resize_ratio=resolved.resize_ratio,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        device=rt.device,
        precision=rt.precision,
        num_workers=rt.num_workers,
        progress=rt.progress,
        descriptor=args.descriptor,
        layers=args.layers,
        cells=args.cells,
    )
    report.pop("bad_examples")
    print(json.dumps(report, indent=1))
    print(f"written to {args.out}")
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from dinolab.curate.dedup import dedup
    from dinolab.curate.store import open_selection

    report = dedup(
        open_selection(args.embeddings),
        args.out,
        [open_selection(a) for a in args.against],
        k=args.k,
        threshold=args.threshold,
        against_threshold=args.against_threshold,
        chunk_size=args.chunk_size,
        backend=args.backend,
        progress=not args.quiet,
        center=args.center,
        whiten=args.whiten,
        whiten_on=args.whiten_on,
        whiten_power=args.whiten_power,
    )
    return _print(report, args.out)


def _levels(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': give cluster counts like 1000,100") from None


def cmd_cluster(args: argparse.Namespace) -> int:
    from dinolab.curate.hierarchy import cluster
    from dinolab.curate.store import open_selection

    report = cluster(
        open_selection(args.embeddings),
        args.out,
        args.levels,
        n_resample=args.resample,
        sample_size=args.sample_size,
        n_iter=args.iterations,
        n_init=args.restarts,
        seed=args.seed,
        progress=not args.quiet,
    )
    return _print(report, args.out)


def cmd_sample(args: argparse.Namespace) -> int:
    from dinolab.curate.sampling import sample

    report = sample(args.clusters, args.out, args.target, args.strategy, args.multiplier, args.seed)
    return _print(report, args.out)


def cmd_retrieve(args: argparse.Namespace) -> int:
    from dinolab.curate.retrieve import retrieve
    from dinolab.curate.store import open_selection

    pool = open_selection(args.pool) if args.pool else None
    report = retrieve(
        pool,
        open_selection(args.seeds),
        args.out,
        per_seed=args.per_seed,
        cluster_dir=args.clusters,
        per_cluster=args.per_cluster,
        min_seeds=args.min_seeds,
        max_images=args.max_images,
        backend=args.backend,
    )
    return _print(report, args.out)


def _layers(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': give layer numbers like 1,2") from None


def _whiten(text: str) -> str | int:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': give dimensions to keep, or all") from None


def _common(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `curate` and its five steps to dinolab's parser."""
    c = sub.add_parser(
        "curate", help="curate a big folder: embed, dedup, cluster, sample, retrieve"
    )
    steps = c.add_subparsers(dest="curate_command", required=True)
    backend = {"choices": ["auto", "torch", "faiss"], "default": "auto",
               "help": "exact k-NN: faiss if installed (dinolab[curate]), else torch"}  # fmt: skip

    e = steps.add_parser("embed", help="L2-normalised embeddings of every image (resumable)")
    add_model_args(e)
    e.add_argument("images", help="image folder (recursive) or .txt list of image paths")
    e.add_argument("--out", required=True, help="embedding folder (resumes a matching one)")
    e.add_argument("--image-size", type=int, default=0, help="default: the model's own")
    e.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    e.add_argument("--chunk-size", type=int, default=4096, help="images between checkpoints")
    e.add_argument("--descriptor", choices=["cls", "cls+gem", "grid"], default="cls",
                   help="cls+gem: CLS and GeM of the patch tokens (copy detection); "
                        "grid: early layers pooled over a grid, flip-averaged (dedup)")  # fmt: skip
    e.add_argument("--layers", type=_layers, default=[1, 2],
                   help="grid: ResNet stages / ViT blocks read, 1-based (default 1,2)")  # fmt: skip
    e.add_argument("--cells", type=int, default=3, help="grid: cells per side (default 3)")
    add_runtime_args(e)
    e.set_defaults(func=cmd_embed)

    d = steps.add_parser("dedup", help="drop exact and near copies (and eval-set overlap)")
    d.add_argument("embeddings", help="embedding folder or a stage folder")
    d.add_argument("--against", nargs="*", default=[], help="evaluation sets' embedding folders")
    d.add_argument("--k", type=int, default=64, help="neighbours per image in the k-NN graph")
    d.add_argument("--threshold", type=float, default=0.6, help="cosine for a pool copy")
    d.add_argument("--against-threshold", type=float, default=0.45, help="cosine vs eval sets")
    d.add_argument("--center", action="store_true",
                   help="subtract the pool's mean embedding first (weak models)")  # fmt: skip
    d.add_argument("--whiten", type=_whiten, default=None,
                   help="PCA-whiten first, keeping N dimensions (or all); saved as "
                        "whitening.pt and applied to --against too")  # fmt: skip
    d.add_argument("--whiten-on", default=None,
                   help="learn the whitening on this embedding folder, not on the pool "
                        "(or reuse a saved whitening.pt as it is)")  # fmt: skip
    d.add_argument("--whiten-power", type=float, default=0.5,
                   help="eigenvalue power of the whitening (0.5: full whitening)")  # fmt: skip
    d.add_argument("--chunk-size", type=int, default=4096, help="k-NN queries per saved chunk")
    d.add_argument("--backend", **backend)
    _common(d, "stage folder (list.txt, report.json, duplicate_groups.png)")
    d.set_defaults(func=cmd_dedup)

    k = steps.add_parser("cluster", help="hierarchical k-means with resampling")
    k.add_argument("embeddings", help="embedding folder or a stage folder (e.g. dedup's)")
    k.add_argument("--levels", type=_levels, required=True, help="clusters per level: 1000,100")
    k.add_argument("--resample", type=int, default=10, help="resampling rounds per level")
    k.add_argument("--sample-size", type=int, default=10, help="points per cluster when resampling")
    k.add_argument("--iterations", type=int, default=20, help="Lloyd iterations per fit")
    k.add_argument("--restarts", type=int, default=3, help="k-means++ restarts, best kept")
    k.add_argument("--seed", type=int, default=0, help="random seed of the seeding")
    _common(k, "cluster folder")
    k.set_defaults(func=cmd_cluster)

    s = steps.add_parser("sample", help="balanced top-down sampling of a cluster folder")
    s.add_argument("clusters", help="a `curate cluster` folder")
    s.add_argument("--target", type=int, required=True, help="images to sample")
    s.add_argument("--strategy", choices=["random", "closest"], default="random",
                   help="per level-1 cluster: random, or nearest its centroid")  # fmt: skip
    s.add_argument("--multiplier", type=float, default=1.0, help="> 1: small clusters repeat")
    s.add_argument("--seed", type=int, default=0, help="random seed of the picks")
    _common(s, "stage folder (list.txt for `dinolab pretrain`)")
    s.set_defaults(func=cmd_sample)

    r = steps.add_parser("retrieve", help="pool images near a curated seed set")
    r.add_argument("pool", nargs="?", help="the pool's embedding (or stage) folder")
    r.add_argument("--seeds", required=True, help="the seed images' embedding folder")
    r.add_argument("--per-seed", type=int, default=4, help="sample-based: neighbours per seed")
    r.add_argument("--clusters", help="cluster-based: the pool's `curate cluster` folder")
    r.add_argument("--per-cluster", type=int, default=1000, help="images per chosen cluster")
    r.add_argument("--min-seeds", type=int, default=3, help="a cluster needs more seeds than this")
    r.add_argument("--max-images", type=int, default=None, help="cap for the whole seed set")
    r.add_argument("--backend", **backend)
    _common(r, "stage folder")
    r.set_defaults(func=cmd_retrieve)
