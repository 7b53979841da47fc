"""Dedup descriptors and post-processing measured on CIFAR-10 near copies (issue 18).

    python benchmarks/curation_dedup.py --teacher /tmp/q/teacher_c10k --out /tmp/cur_dedup \
        [--dedup-images 5000] [--white-images 5000]

The set of `benchmarks/curation.py` (the first --dedup-images CIFAR-10 train images, sorted
per class, and a near copy of 20 % of them: JPEG q 30-75, crop removing 10-30 % of the
surface, horizontal flip, brightness / contrast / saturation x0.6-1.4, in random order; same
seed, same copies). Every descriptor is written by `dinolab.curate.embed` (the product's path,
the model's own preprocessing and precision) for the pool and for a whitening set of
--white-images CIFAR-10 *test* images (500 a class: images the pool does not hold). Each is
scored raw, centred (`dedup --center`), and PCA-whitened (`dedup --whiten all`, power 0.5)
learned on the pool itself or on the separate set (`--whiten-on`), each also at power 0.75.
Pairs scored as in curation.py: components of the k = 64 exact cosine k-NN graph above a
threshold; precision = true (original, copy) pairs among all pairs joined in a component,
recall = copies joined with their original; the threshold sweeps 0.10..0.89 by 0.01 and
0.900..0.999 by 0.001 (raw cosines crowd near 1); the best F1 is reported with its
threshold. top-1 = the copy's nearest neighbour is its original. Last, the best setting is
run end to end through `curate.dedup.dedup` at its threshold (whitening saved, then
reloaded), scored from its components.npy.
Writes <out>/curation_dedup.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curation import CLASSES, dedup_set  # noqa: E402  (the same copies as curation.py)

from dinolab.cli.options import resolve_model  # noqa: E402
from dinolab.curate.dedup import apply_whitening, dedup, fit_whitening, threshold_edges  # noqa: E402
from dinolab.curate.embed import embed_images  # noqa: E402
from dinolab.curate.knn_search import knn  # noqa: E402
from dinolab.curate.store import open_selection  # noqa: E402
from dinolab.curate.union_find import connected_components  # noqa: E402
from dinolab.data.datasets import find_images  # noqa: E402
from dinolab.models.preprocessing import preprocessing_of  # noqa: E402

THRESHOLDS = np.round(np.r_[np.arange(0.10, 0.90, 0.01), np.arange(0.90, 1.0, 0.001)], 3)
# (name, descriptor, layers, cells)
DESCRIPTORS = [
    ("CLS", "cls", None, None),
    ("CLS+GeM", "cls+gem", None, None),
    ("grid 2x2, stage 4", "grid", [4], 2),
    ("grid 2x2, stages 1,2", "grid", [1, 2], 2),
    ("grid 3x3, stage 2", "grid", [2], 3),
    ("grid 3x3, stages 1,2", "grid", [1, 2], 3),
    ("grid 3x3, stages 1-4", "grid", [1, 2, 3, 4], 3),
]


# post-processing of the embeddings: name -> `curate.dedup.dedup` options (the end-to-end run
# takes them as they are; whiten_on=True stands for the separate set's store)
POSTS = {
    "raw": {},
    "centred": {"center": True},
    "whitened on the pool": {"whiten": "all"},
    "whitened on the pool, power 0.75": {"whiten": "all", "whiten_power": 0.75},
    "whitened on a separate set": {"whiten": "all", "whiten_on": True},
    "whitened on a separate set, power 0.75": {
        "whiten": "all",
        "whiten_on": True,
        "whiten_power": 0.75,
    },
}


def post_process(x: torch.Tensor, w: torch.Tensor, opts: dict) -> torch.Tensor:
    """The pool's rows `x` as `dedup` with `opts` compares them (`w`: the separate set)."""
    if opts.get("center"):
        return F.normalize(x - x.mean(0), dim=1)
    if "whiten" not in opts:
        return x
    fit_on = w if opts.get("whiten_on") else x
    power = {"power": opts["whiten_power"]} if "whiten_power" in opts else {}
    return apply_whitening(fit_whitening(fit_on, **power), x)


def store_tag(descriptor: str, layers, cells) -> str:
    grid = "" if layers is None else f"_l{''.join(map(str, layers))}_c{cells}"
    return descriptor.replace("+", "_") + grid


def embed(resolved, paths, out: Path, descriptor: str, layers, cells) -> torch.Tensor:
    extra = {} if layers is None else {"layers": layers, "cells": cells}
    embed_images(
        resolved.model, paths, out, image_size=resolved.image_size, mean=resolved.mean,
        std=resolved.std, resize_ratio=preprocessing_of(resolved.model).resize_ratio,
        batch_size=256, chunk_size=4096, progress=False, descriptor=descriptor, **extra,
    )  # fmt: skip
    sel = open_selection(out)
    assert len(sel) == len(paths)
    return sel.embeddings()


def pair_scores(labels: np.ndarray, true: np.ndarray) -> dict:
    sizes = np.bincount(labels)
    pairs = int((sizes * (sizes - 1) // 2).sum())
    hit = int((labels[true[:, 0]] == labels[true[:, 1]]).sum())
    p, r = hit / max(pairs, 1), hit / len(true)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "groups": int((sizes > 1).sum()), "largest": int(sizes.max()),
            "removed": int(len(labels) - len(sizes))}  # fmt: skip


def sweep(x: torch.Tensor, true: np.ndarray) -> dict:
    n = len(x)
    sims, idx = knn(x, k=64)
    sims, idx = sims.numpy(), idx.numpy()
    best = {"f1": -1.0}
    for t in THRESHOLDS:
        src, dst = threshold_edges(sims, idx, t)
        if len(src) > 50 * n:  # one giant component: nothing to learn from the union
            continue
        row = {"threshold": float(t), **pair_scores(connected_components(n, src, dst), true)}
        if row["f1"] > best["f1"]:
            best = row
    copy_sims = (x[true[:, 0]] * x[true[:, 1]]).sum(1).numpy()
    originals = np.setdiff1d(np.arange(true[0, 1]), true[:, 0])  # originals without a copy
    return {
        "best": best,
        "top1": float(np.mean(idx[true[:, 1], 0] == true[:, 0])),
        "copy_sim_p50": float(np.median(copy_sims)),
        "uncopied_nn_sim_p50": float(np.median(sims[originals, 0])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="/tmp/q/teacher_c10k")
    ap.add_argument("--data", default="/tmp/data/cifar10/train")
    ap.add_argument("--white-data", default="/tmp/data/cifar10/test")
    ap.add_argument("--out", default="runs/curation_dedup")
    ap.add_argument("--dedup-images", type=int, default=5000)
    ap.add_argument("--white-images", type=int, default=5000)
    args = ap.parse_args()
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = resolve_model(args.teacher)
    paths, true = dedup_set(Path(args.data), args.dedup_images, out)
    per_class = args.white_images // 10
    white_paths = [p for c in CLASSES for p in find_images(Path(args.white_data) / c)[:per_class]]
    result = {"teacher": args.teacher, "threads": torch.get_num_threads(), "rows": []}
    print("| descriptor | dim | post-processing | best F1 | at threshold | precision | recall "
          "| copy's NN is its original | copy cos p50 | NN cos p50 |\n"
          "|---|---|---|---|---|---|---|---|---|---|", flush=True)  # fmt: skip
    for name, descriptor, layers, cells in DESCRIPTORS:
        tag = store_tag(descriptor, layers, cells)
        t0 = time.perf_counter()
        x = embed(resolved, paths, out / f"emb_{tag}", descriptor, layers, cells)
        w = embed(resolved, white_paths, out / f"white_{tag}", descriptor, layers, cells)
        embed_s = time.perf_counter() - t0
        posts = {post: post_process(x, w, opts) for post, opts in POSTS.items()}
        for post, emb in posts.items():
            r = {"descriptor": name, "dim": int(x.shape[1]), "post": post,
                 "embed_s": embed_s, **sweep(emb, true)}  # fmt: skip
            result["rows"].append(r)
            b = r["best"]
            print(f"| {name} | {r['dim']} | {post} | {b['f1']:.3f} | {b['threshold']} | "
                  f"{b['precision']:.3f} | {b['recall']:.3f} | {r['top1']:.3f} | "
                  f"{r['copy_sim_p50']:.3f} | {r['uncopied_nn_sim_p50']:.3f} |")  # fmt: skip
    # the best row end to end through the product's dedup (whitening saved, then reloaded)
    best = max(result["rows"], key=lambda r: r["best"]["f1"])
    spec = next(d for d in DESCRIPTORS if d[0] == best["descriptor"])
    tag = store_tag(*spec[1:])
    kw = dict(POSTS[best["post"]])
    if "whiten_on" in kw:  # the separate set's store of this descriptor
        kw["whiten_on"] = out / f"white_{tag}"
    t = best["best"]["threshold"]
    e2e = {}
    for run, extra in (("fit", {}), ("reload", {})):
        if run == "reload" and "whiten" in kw:
            extra = {"whiten_on": out / "e2e_fit" / "whitening.pt"}
        report = dedup(open_selection(out / f"emb_{tag}"), out / f"e2e_{run}", threshold=t,
                       progress=False, figure_groups=0, **{**kw, **extra})  # fmt: skip
        labels = np.load(out / f"e2e_{run}" / "components.npy")
        e2e[run] = {**pair_scores(labels, true), "images_kept": report["images"]}
        print(f"end to end ({run}): `dedup` with {best['descriptor']}, {best['post']}, "
              f"threshold {t}: {e2e[run]}", flush=True)  # fmt: skip
    result["end_to_end"] = {"descriptor": best["descriptor"], "post": best["post"],
                            "threshold": t, **e2e}  # fmt: skip
    (out / "curation_dedup.json").write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
