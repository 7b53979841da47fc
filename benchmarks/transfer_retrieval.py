"""Instance retrieval and copy detection on sets built from the bundled clothing photos:
a dinolab run vs the same net at random init vs raw pixels.

    python benchmarks/transfer_retrieval.py --run runs/demo-20261130-224523 --out /tmp/ir_bench

How the two sets are made (seeded, rebuilt exactly; written under OUT/sets, never committed):

- Copy detection: `dinolab.eval.copy_set.make_copy_set` on dinolab_data/clothing-64/train
  (seed 0): 100 originals, 1,000 distractors, 500 whitening images, disjoint; 20 copies per
  original: JPEG q 3-75 (9), crops removing 10-80% of the surface (9), 2 "strong" (three of
  crop 30-60% / rotation 5-30 deg / blur / colour / text + shape overlay / print-scan, then
  JPEG 30-75). 2,000 queries against 1,100 database images, 64 px.
- Retrieval (revisited format): 50 "objects" from clothing-64/test (seed 0). Database: per
  object 2 easy views (10-20% of the surface cropped away, JPEG 50-75), 2 hard views (40-60%
  cropped away, then two of rotation / blur / colour / overlay), 1 junk view (85% cropped
  away), plus 500 distractor photos from clothing-64/validation. Query: a 128 px 2x2 collage
  of the object (intact) and three other test photos, its box = the object's quadrant.

Descriptors follow `dinolab eval retrieval / copydetect` (`image_descriptors`): long side 64
and CLS for retrieval (queries whole, DINO's way, or cropped to the box, the revisited
standard); 64x64 and CLS + GeM(p=4) for copy detection, PCA-whitened on the whitening images
(centred covariance) or not. Raw pixels: the (boxed) image at 32x32, flattened, mean-centred,
through the same whitening / L2 / cosine. --check-official checks our Medium / Hard scores
against the revisited code (filipradenovic/revisitop python/evaluate.py, run from a copy of
that repository; nothing of it is copied here) on the trained model's rankings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dinolab.config.loader import load_saved_config  # noqa: E402
from dinolab.data.datasets import decode_image, find_images  # noqa: E402
from dinolab.eval import copy_attacks as attacks  # noqa: E402
from dinolab.eval.baselines import random_init_backbone  # noqa: E402
from dinolab.eval.copy_detection import copy_detection_scores, match_pairs, read_pairs  # noqa: E402
from dinolab.eval.copy_set import make_copy_set  # noqa: E402
from dinolab.eval.descriptors import image_descriptors, raw_pixel_descriptors  # noqa: E402
from dinolab.eval.retrieval import rank_database, retrieval_scores  # noqa: E402
from dinolab.eval.retrieval_gt import image_paths, read_ground_truth  # noqa: E402
from dinolab.eval.whitening import PCAWhitening  # noqa: E402
from dinolab.hub import load  # noqa: E402
from dinolab.models.preprocessing import preprocessing_of  # noqa: E402

DATA = ROOT / "dinolab_data" / "clothing-64"
REVISITOP = os.environ.get("REVISITOP_REPO", "/work/.mirror/filipradenovic+revisitop/repo")


def make_retrieval_set(out: Path, n_objects: int = 50, n_distractors: int = 500, seed: int = 0):
    """The revisited-format set described in the module docstring; returns the gt path."""
    rng = np.random.default_rng(seed)
    tests = find_images(DATA / "test")
    order = rng.permutation(len(tests))
    objects, fillers = order[:n_objects], order[n_objects:]
    distractors = rng.permutation(find_images(DATA / "validation"))[:n_distractors]
    (out / "db").mkdir(parents=True)
    (out / "queries").mkdir()
    imlist, gnd = [], []

    def add(img: Image.Image, name: str, quality: int = 90) -> int:
        img.save(out / "db" / f"{name}.jpg", quality=quality)
        imlist.append(name)
        return len(imlist) - 1

    hard_edits = ["rotate", "blur", "colour", "overlay"]
    for j, i in enumerate(objects):
        img = decode_image(tests[i])
        easy = [add(attacks.crop_surface(img, rng.uniform(10, 20), rng), f"o{j:02d}_easy{v}",
                    int(rng.integers(50, 76))) for v in range(2)]  # fmt: skip
        hard = []
        for v in range(2):
            view = attacks.crop_surface(img, rng.uniform(40, 60), rng)
            for name in rng.choice(hard_edits, size=2, replace=False):
                view = attacks.STRONG_EDITS[str(name)](view, rng)
            hard.append(add(view, f"o{j:02d}_hard{v}"))
        junk = [add(attacks.crop_surface(img, 85, rng), f"o{j:02d}_junk")]
        collage, quadrant = Image.new("RGB", (128, 128)), int(rng.integers(4))
        others = iter(rng.choice(fillers, size=3, replace=False))
        for q in range(4):
            tile = img if q == quadrant else decode_image(tests[next(others)])
            collage.paste(tile.resize((64, 64)), (64 * (q % 2), 64 * (q // 2)))
        collage.save(out / "queries" / f"q{j:02d}.jpg", quality=95)
        x, y = 64 * (quadrant % 2), 64 * (quadrant // 2)
        gnd.append({"easy": easy, "hard": hard, "junk": junk, "bbx": [x, y, x + 64, y + 64]})
    for k, path in enumerate(distractors):
        add(decode_image(str(path)), f"d{k:03d}")
    gt = {"imlist": imlist, "qimlist": [f"q{j:02d}" for j in range(n_objects)], "gnd": gnd}
    (out / "gnd.json").write_text(json.dumps(gt))
    return out / "gnd.json"


def describer(name: str, model, mean, std):
    """paths, imsize, kind, square, boxes -> descriptors, for one of the three models."""

    def describe(paths, imsize, kind="cls", square=False, boxes=None):
        if model is None:
            return raw_pixel_descriptors(paths, 32, boxes)
        return image_descriptors(model, paths, imsize, kind=kind, square=square, boxes=boxes,
                                 mean=mean, std=std, precision="fp32", batch_size=64,
                                 progress=False, desc=name)  # fmt: skip

    return describe


def check_official(rankings: np.ndarray, gt, ours: dict) -> float:
    """Largest |ours - revisitop's| over mAP and mP@1/5/10, Medium and Hard (percent)."""
    src = subprocess.run(["git", "-C", REVISITOP, "show", "HEAD:python/evaluate.py"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType("revisitop_evaluate")
    np.in1d = getattr(np, "in1d", np.isin)  # removed in numpy 2.4; same meaning
    exec(compile(src, "revisitop/python/evaluate.py", "exec"), module.__dict__)
    worst = 0.0
    for protocol in ("medium", "hard"):
        ok, junk = gt.protocol(protocol)
        g = [{"ok": o, "junk": j} for o, j in zip(ok, junk, strict=True)]
        m, _, pr, _ = module.compute_map(rankings.T, g, [1, 5, 10])
        theirs = [100 * m, *(100 * pr)]
        mine = [ours[protocol][k] for k in ("mAP", "mP@1", "mP@5", "mP@10")]
        worst = max(worst, *(abs(a - b) for a, b in zip(theirs, mine, strict=True)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a dinolab run directory")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check-official", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    sets = out / "sets"
    if not (sets / "copy" / "pairs.csv").exists():
        make_copy_set(DATA / "train", sets / "copy", 100, 1000, 500, progress=False)
    gt_file = sets / "retrieval" / "gnd.json"
    if not gt_file.exists():
        make_retrieval_set(sets / "retrieval")
    trained = load(args.run)
    pre = preprocessing_of(trained)
    models = {
        "dinolab run": trained,
        "random init": random_init_backbone(load_saved_config(Path(args.run) / "config.yaml")),
        "raw pixels": None,
    }
    gt = read_ground_truth(gt_file)
    r_db = image_paths(sets / "retrieval" / "db", gt.db_names)
    r_q = image_paths(sets / "retrieval" / "queries", gt.query_names)
    boxes = [q.box for q in gt.queries]
    pairs = read_pairs(sets / "copy" / "pairs.csv")
    c_q, c_db, positives = match_pairs(pairs, sets / "copy" / "queries", sets / "copy" / "db")
    blocks = [pairs[q]["block"] for q in pairs]
    c_wh = find_images(sets / "copy" / "whiten")
    results = {}
    for name, model in models.items():
        describe = describer(name, model, pre.mean, pre.std)
        t0 = time.perf_counter()
        db, q_full = describe(r_db, 64), describe(r_q, 64)
        q_crop = describe(r_q, 64, boxes=boxes)
        n_images = len(r_db) + 2 * len(r_q)
        full, crop = retrieval_scores(q_full, db, gt), retrieval_scores(q_crop, db, gt)
        if args.check_official and model is trained:
            diff = max(check_official(rank_database(q, db), gt, s)
                       for q, s in ((q_full, full), (q_crop, crop)))  # fmt: skip
            results["official_check_max_abs_diff"] = diff
        kw = {"kind": "cls+gem", "square": True}
        cdb, cq, cwh = describe(c_db, 64, **kw), describe(c_q, 64, **kw), describe(c_wh, 64, **kw)
        n_images += len(c_db) + len(c_q) + len(c_wh)
        seconds = time.perf_counter() - t0
        pca = PCAWhitening.fit(cwh)
        white = copy_detection_scores(pca.apply(cq), pca.apply(cdb), positives, blocks, 20)
        plain = copy_detection_scores(cq, cdb, positives, blocks, 20)
        results[name] = {
            "retrieval_full_queries": {
                p: {k: v for k, v in full[p].items() if k != "ap_per_query"} for p in full
            },  # fmt: skip
            "retrieval_cropped_queries": {
                p: {k: v for k, v in crop[p].items() if k != "ap_per_query"} for p in crop
            },
            "copydetect_whitened": {k: v for k, v in white.items() if k != "ap_per_query"},
            "copydetect_unwhitened": {k: v for k, v in plain.items() if k != "ap_per_query"},
            "whitening_floored": pca.n_floored,
            "ms_per_image": 1000 * seconds / n_images,
        }
        print(name, json.dumps(results[name]["copydetect_whitened"]["blocks"]["strong"]))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))


def _block_mean(blocks: dict, prefix: str) -> float:
    return float(np.mean([v["mAP"] for k, v in blocks.items() if k.startswith(prefix)]))


def table(results: dict) -> str:
    head = (
        "| model | retr. M full | retr. H full | retr. M crop | retr. H crop | copy strong "
        "(whit.) | copy strong (no whit.) | JPEG 3-75 | crops 10-80 | ms / image |"
    )
    lines = [head, "|---|" + "---:|" * 9]
    for name, r in results.items():
        if not isinstance(r, dict):
            continue
        w, p = r["copydetect_whitened"], r["copydetect_unwhitened"]
        cells = [r["retrieval_full_queries"]["medium"]["mAP"],
                 r["retrieval_full_queries"]["hard"]["mAP"],
                 r["retrieval_cropped_queries"]["medium"]["mAP"],
                 r["retrieval_cropped_queries"]["hard"]["mAP"],
                 w["blocks"]["strong"]["mAP"], p["blocks"]["strong"]["mAP"],
                 _block_mean(w["blocks"], "jpegqual/"), _block_mean(w["blocks"], "crops/"),
                 r["ms_per_image"]]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
