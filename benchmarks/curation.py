"""Data curation (`dinolab curate`) measured: dedup quality, class balance, the five-rings toy.

    python benchmarks/curation.py --teacher /tmp/q/q30/run --out runs/curation \
        [--dedup-images 10000] [--pool-scale 1.0] [--target 2000]

Embeddings come from a trained teacher (a run directory or weights file; a CIFAR-10
small_resnet teacher here), written by `dinolab.curate.embed` into stores under --out.

1. Dedup: the first --dedup-images images of CIFAR-10 train (sorted per class) and a
   near-copy of 20% of them (each: JPEG q 30-75, crop removing 10-30% of the surface, a
   horizontal flip, brightness / contrast / saturation x0.6-1.4, in random order). The exact
   k-NN graph (k = 64) is built once (raw embeddings, and centred as `dedup --center`:
   the pool mean removed, re-normalised); for each threshold the components are formed and scored
   as pairs: precision = true (original, copy) pairs among all pairs joined in a component,
   recall = copies joined with their original. CIFAR-10's own near-duplicates count as false
   positives, so precision is a lower bound.
2. Balance: a long-tailed pool from CIFAR-10 train (class sizes 5000 * 0.01^(c/9): 5000 -> 50,
   x --pool-scale), then --target images by random sampling, by balanced sampling over flat
   k-means, and over hierarchical k-means (with and without resampling); labels only score:
   normalised class entropy, KL to uniform (nats), smallest / largest class count (mean of 5
   seeds for random).
   With --train-minutes M: `cifar10_small_resnet` pretrained for M wall-clock minutes on the
   random subset (seed 0) and on the curated subset (levels 100,10 + resampling), same
   recipe; each teacher scored by weighted 20-NN (T = 0.07) and logistic regression on the
   balanced --eval-data (`train/` as memory bank, `test/` as queries), and with --pixels the
   raw pixels (their logistic regression on 3072 dimensions takes minutes).
3. Five rings (20000 / 200 / 1000 / 500 / 8000 points): 1000 points by random vs balanced
   sampling over k-means levels 50,5 with resampling; points per ring.
Writes <out>/curation.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from dinolab.cli.options import resolve_model
from dinolab.config.loader import load_config
from dinolab.curate.dedup import threshold_edges
from dinolab.curate.embed import embed_images
from dinolab.curate.hierarchy import cluster_tree
from dinolab.curate.knn_search import knn
from dinolab.curate.sampling import sample_tree
from dinolab.curate.store import open_selection
from dinolab.curate.union_find import connected_components
from dinolab.data.datasets import decode_image, find_images
from dinolab.eval.baselines import backbone_scores, probe_scores, raw_pixel_features
from dinolab.eval.copy_attacks import colour, crop_surface, jpeg
from dinolab.models.preprocessing import preprocessing_of
from dinolab.run_dir import load_run_backbone
from dinolab.train.pretrain import pretrain

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)
CLASSES = sorted(p.name for p in Path("/tmp/data/cifar10/train").iterdir())


def embed(resolved, images, out: Path, descriptor="cls") -> tuple[torch.Tensor, list[str], dict]:
    report = embed_images(
        resolved.model, images, out, image_size=resolved.image_size, mean=resolved.mean,
        std=resolved.std, resize_ratio=preprocessing_of(resolved.model).resize_ratio,
        batch_size=256, chunk_size=4096, progress=False, descriptor=descriptor,
    )  # fmt: skip
    sel = open_selection(out)
    return sel.embeddings(), sel.paths(), report


def near_copy(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    edits = [
        lambda im: crop_surface(im, rng.uniform(10, 30), rng).resize(im.size, Image.BICUBIC),
        ImageOps.mirror,
        lambda im: colour(im, rng),
        lambda im: jpeg(im, int(rng.integers(30, 76))),
    ]
    for i in rng.permutation(len(edits)):
        img = edits[i](img)
    return img


def dedup_set(data: Path, n_images: int, out: Path, seed: int = 0):
    """The first n_images of data (n_images // 10 a class) + a near-copy of 20 % of them
    (paths, copies last) and the true (original row, copy row) pairs."""
    per_class = n_images // 10
    originals = [p for c in CLASSES for p in find_images(data / c)[:per_class]]
    rng = np.random.default_rng(seed)
    copied = np.sort(rng.choice(len(originals), len(originals) // 5, replace=False))
    copy_dir = out / "dedup_copies"
    copy_dir.mkdir(parents=True, exist_ok=True)
    copies = []
    for j, i in enumerate(copied.tolist()):
        path = copy_dir / f"copy_{j:05d}.png"  # png: the copy's own JPEG pass is the only one
        if not path.is_file():
            near_copy(decode_image(originals[i]), rng).save(path)
        copies.append(str(path))
    true = np.stack([copied, len(originals) + np.arange(len(copied))], 1)
    return originals + copies, true


def bench_dedup(
    resolved, data: Path, n_images: int, out: Path, descriptor: str = "cls", seed: int = 0
) -> dict:
    images, pairs = dedup_set(data, n_images, out, seed)
    n_orig = len(images) - len(pairs)
    store = out / f"emb_dedup_{descriptor.replace('+', '_')}"
    x, paths, report = embed(resolved, images, store, descriptor)
    assert len(paths) == len(images)
    n = len(x)
    true = {(int(i), int(j)) for i, j in pairs}
    out_rows = {
        "originals": n_orig,
        "copies": len(pairs),
        "embed": report,
        "descriptor": descriptor,
    }
    centred = torch.nn.functional.normalize(x - x.mean(0), dim=1)
    for name, emb in (("raw", x), ("centred", centred)):  # `dedup --center`
        t0 = time.perf_counter()
        sims, idx = knn(emb, k=64)
        rows = []
        for t in THRESHOLDS:
            src, dst = threshold_edges(sims.numpy(), idx.numpy(), t)
            labels = connected_components(n, src, dst)
            sizes = np.bincount(labels)
            pred_pairs = int((sizes * (sizes - 1) // 2).sum())
            hit = sum(labels[a] == labels[b] for a, b in true)
            p, r = hit / max(pred_pairs, 1), hit / len(true)
            rows.append({"threshold": t, "precision": p, "recall": r,
                         "f1": 2 * p * r / (p + r) if p + r else 0.0,
                         "groups": int((sizes > 1).sum()), "largest": int(sizes.max()),
                         "removed": int(n - len(sizes))})  # fmt: skip
        copy_sims = [float(emb[a] @ emb[b]) for a, b in true]
        out_rows[name] = {
            "seconds": time.perf_counter() - t0,
            "rows": rows,
            "best": max(rows, key=lambda r: r["f1"]),
            "copy_sim_p5_p25_p50": np.percentile(copy_sims, [5, 25, 50]).tolist(),
            "originals_nn_sim_p50_p95_p99": np.percentile(sims[:n_orig, 0], [50, 95, 99]).tolist(),
        }
    return out_rows


def class_scores(labels: np.ndarray, k: int = 10) -> dict:
    counts = np.bincount(labels, minlength=k).astype(float)
    p = counts / counts.sum()
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    return {
        "entropy": entropy / math.log(k),
        "kl_uniform": math.log(k) - entropy,
        "min": int(counts.min()),
        "max": int(counts.max()),
        "counts": counts.astype(int).tolist(),
    }


def bench_balance(resolved, data: Path, scale: float, target: int, out: Path) -> dict:
    sizes = [max(1, round(5000 * scale * 0.01 ** (c / 9))) for c in range(10)]
    paths, labels = [], []
    for c, name in enumerate(CLASSES):
        files = find_images(data / name)[: sizes[c]]
        paths += files
        labels += [c] * len(files)
    x, emb_paths, report = embed(resolved, paths, out / "emb_longtail")
    label_of = {str(Path(p).resolve()): c for p, c in zip(paths, labels, strict=True)}
    lab = np.array([label_of[p] for p in emb_paths])  # the store holds resolved paths
    results = {"pool_sizes": sizes, "pool": class_scores(lab), "target": target, "embed": report}
    rand = [class_scores(lab[np.random.default_rng(s).choice(len(lab), target, replace=False)])
            for s in range(5)]  # fmt: skip
    results["random"] = {
        k: float(np.mean([r[k] for r in rand])) for k in ("entropy", "kl_uniform", "min", "max")
    }
    results["random"]["counts"] = rand[0]["counts"]
    variants = {
        "flat k-means 100": ([100], 0),
        "levels 100,10": ([100, 10], 0),
        "levels 100,10 + resampling": ([100, 10], 10),
    }
    for name, (levels, rs) in variants.items():
        t0 = time.perf_counter()
        tree = cluster_tree(x, levels, n_resample=rs, sample_size=10, n_init=3, progress=False)
        picked = sample_tree(tree, target, "random", seed=0)
        results[name] = {**class_scores(lab[picked]), "seconds": time.perf_counter() - t0}
        results[name]["paths"] = [emb_paths[i] for i in picked]
    results["random"]["paths"] = [
        emb_paths[i] for i in np.random.default_rng(0).choice(len(lab), target, replace=False)
    ]
    return results


def bench_training(
    balance: dict, minutes: float, eval_data: Path, out: Path, with_pixels: bool
) -> dict:
    """Equal-time pretraining on the random and the curated subset, scored on balanced data."""
    mean, std = [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]
    # the whole 32 px frame, the view raw pixels get below (eval.resize_ratio=1.0)
    kw = dict(image_size=32, resize_ratio=1.0, mean=tuple(mean), std=tuple(std), progress=False,
              num_workers=0)  # fmt: skip
    rows = {}
    for name in ("random", "levels 100,10 + resampling"):
        run = out / ("train_" + name.split()[0].replace(",", ""))
        run.mkdir(parents=True, exist_ok=True)
        (run / "subset.txt").write_text("\n".join(balance[name]["paths"]) + "\n")
        cfg = load_config("cifar10_small_resnet", [
            f"data.path={run / 'subset.txt'}", f"out_dir={run / 'run'}",
            f"data.mean={mean}", f"data.std={std}", f"train.time_budget={minutes}min",
            "train.epochs=100000", "train.progress=false", "train.loggers=[]",
        ])  # fmt: skip
        t0 = time.perf_counter()
        pretrain(cfg)
        seconds = round(time.perf_counter() - t0, 1)
        net, _ = load_run_backbone(run / "run")
        scores = backbone_scores(net, eval_data / "train", eval_data / "test", **kw)
        rows[name] = {**scores, "train_s": seconds}
        print(name, rows[name], flush=True)
    if with_pixels:
        pixels = (raw_pixel_features(eval_data / "train"), raw_pixel_features(eval_data / "test"))
        rows["raw pixels"] = probe_scores(*pixels, k=20)
    return rows


def bench_rings() -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' toy data
    from tests.curate.toys import RING_SIZES, five_rings

    x, rings = five_rings()
    t0 = time.perf_counter()
    tree = cluster_tree(x, [50, 5], n_resample=10, sample_size=10, n_init=1, progress=False)
    balanced = sample_tree(tree, 1000, "random", seed=0)
    rand = np.random.default_rng(0).choice(len(x), 1000, replace=False)
    return {"sizes": list(RING_SIZES), "random": np.bincount(rings[rand], minlength=5).tolist(),
            "balanced": np.bincount(rings.numpy()[balanced], minlength=5).tolist(),
            "seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="/tmp/q/q30/run")
    ap.add_argument("--data", default="/tmp/data/cifar10/train")
    ap.add_argument("--out", default="runs/curation")
    ap.add_argument("--dedup-images", type=int, default=10000)
    ap.add_argument("--pool-scale", type=float, default=1.0)
    ap.add_argument("--target", type=int, default=2000)
    ap.add_argument("--descriptor", default="cls", choices=["cls", "cls+gem"], help="dedup's")
    ap.add_argument("--skip", nargs="*", default=[], choices=["dedup", "balance", "rings"])
    ap.add_argument(
        "--train-minutes", type=float, default=0.0, help="pretrain on random vs curated (0: no)"
    )
    ap.add_argument("--pixels", action="store_true", help="also score raw pixels (slow logreg)")
    ap.add_argument(
        "--eval-data", default="/tmp/data/c10k", help="balanced train/ + test/ for the 20-NN"
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = resolve_model(args.teacher)
    result = {"teacher": args.teacher, "threads": torch.get_num_threads()}
    if "dedup" not in args.skip:
        result["dedup"] = d = bench_dedup(
            resolved, Path(args.data), args.dedup_images, out, args.descriptor
        )
        print(f"\nDedup ({d['descriptor']}): {d['originals']} originals + {d['copies']} "
              f"near-copies, k=64, embed {d['embed']['images_per_s']} img/s")  # fmt: skip
        for name in ("raw", "centred"):
            v = d[name]
            print(f"\n{name} embeddings (k-NN + sweep {v['seconds']:.1f} s); copy cosine "
                  f"p5/p25/p50 {np.round(v['copy_sim_p5_p25_p50'], 3).tolist()}, originals' "
                  f"nearest-neighbour cosine p50/p95/p99 "
                  f"{np.round(v['originals_nn_sim_p50_p95_p99'], 3).tolist()}")  # fmt: skip
            print("| threshold | precision | recall | F1 | groups | largest | removed |")
            print("|---|---|---|---|---|---|---|")
            for r in v["rows"]:
                cells = [r["threshold"], *(f"{r[k]:.3f}" for k in ("precision", "recall", "f1"))]
                cells += [r["groups"], r["largest"], r["removed"]]
                print("| " + " | ".join(str(c) for c in cells) + " |")
    if "balance" not in args.skip:
        result["balance"] = b = bench_balance(
            resolved, Path(args.data), args.pool_scale, args.target, out
        )
        print(
            f"\nBalance: pool {sum(b['pool_sizes'])} images, class sizes {b['pool_sizes']}, "
            f"target {b['target']}"
        )
        print(
            "| subset | entropy / log 10 | KL to uniform | smallest class | largest class |\n"
            "|---|---|---|---|---|"
        )
        for name in (
            "pool",
            "random",
            "flat k-means 100",
            "levels 100,10",
            "levels 100,10 + resampling",
        ):
            r = b[name]
            print(
                f"| {name} | {r['entropy']:.3f} | {r['kl_uniform']:.3f} | {r['min']:.0f} "
                f"| {r['max']:.0f} |"
            )
        if args.train_minutes:
            result["training"] = t = bench_training(
                b, args.train_minutes, Path(args.eval_data), out, args.pixels
            )
            print("| pretrained on | train s | 20-NN top-1 | linear top-1 |\n|---|---|---|---|")
            for name, r in t.items():
                print(f"| {name} | {r.get('train_s', '-')} | {r['knn_top1']:.2f} | "
                      f"{r['linear_top1']:.2f} |")  # fmt: skip
    if "rings" not in args.skip:
        result["rings"] = r = bench_rings()
        print(
            f"\nFive rings {r['sizes']}: 1000 points, random {r['random']}, balanced "
            f"(levels 50,5, resampling 10) {r['balanced']} ({r['seconds']:.1f} s)"
        )
    (out / f"curation{'_' + '_'.join(args.skip) if args.skip else ''}.json").write_text(
        json.dumps(result, indent=1, default=float)
    )


if __name__ == "__main__":
    main()
