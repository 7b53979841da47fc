"""Gram anchoring (DINOv3) on / off at equal steps: a dense metric (DAVIS J&F) and 20-NN.

    python benchmarks/gram_anchoring.py --davis /tmp/h20/davis/davis2016-val-dev \
        --data /tmp/data/c10k --images 1024 --epochs 6 --sequences blackswan --size 120 \
        --out runs/gram_anchoring [k=v ...]

Two runs of the `cifar10_small_resnet` CPU recipe from the same seed on the first `--images`
images of `<data>/train`: without Gram anchoring, and with it from the middle of the run
(`gram.start_iteration` = half the steps, `gram.weight`, the Gram teacher refreshed every
`--refresh-epochs`). Before that step the two differ only in how the first epoch's prototypes
are frozen (Gram runs use the DINOv2 meta-architecture: lr 0, not dropped gradients). Each
final teacher is scored by
DAVIS label propagation (`dinolab.eval.davis.run_davis`, the ResNet's last feature map as
patches) on `--sequences` at `--size` px and by the weighted 20-NN of `teacher_variants.py`.
Writes gram_anchoring.{json,md} in --out. DINOv3's claim is about long runs of large ViTs,
where dense features degrade; a few CPU minutes can only show that the option trains.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from teacher_variants import image_list, knn_subset, subset_config

from dinolab.eval.davis import run_davis
from dinolab.run_dir import METRICS, load_run_backbone
from dinolab.train.monitor import read_metrics
from dinolab.train.pretrain import pretrain


def run(name: str, gram: list[str], listing: Path, knn: tuple[Path, Path], args) -> dict:
    """One pretraining run; its final teacher's DAVIS J&F and 20-NN."""
    out = Path(args.out) / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = subset_config(listing, knn, out, args.epochs, [*gram, *args.overrides])
    t0 = time.perf_counter()
    summary = pretrain(cfg)
    train_minutes = (time.perf_counter() - t0) / 60
    teacher, _ = load_run_backbone(out)
    davis = run_davis(
        teacher,
        args.davis,
        sequences=args.sequences,
        size=args.size,
        progress=False,
        write_masks=False,
        figure=False,
        device="cpu",
    )
    gram_rows = [r["gram_loss"] for r in read_metrics(out / METRICS) if "gram_loss" in r]
    return {
        "run": name,
        "steps": summary["steps"],
        "knn20": summary["knn"]["scores"]["20"]["top1"],
        "davis_jf": 100 * davis["scores"]["J&F-Mean"],
        "davis_j": 100 * davis["scores"]["J-Mean"],
        "davis_f": 100 * davis["scores"]["F-Mean"],
        "gram_loss_first_last": [gram_rows[0], gram_rows[-1]] if gram_rows else None,
        "train_minutes": round(train_minutes, 2),
        "overrides": gram,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--davis", required=True, help="folder with JPEGImages/ and Annotations/")
    p.add_argument("--data", default="/tmp/data/c10k", help="folder with train/ and test/")
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--sequences", nargs="+", default=["blackswan"])
    p.add_argument("--size", type=int, default=120, help="DAVIS frames' shorter side (px)")
    p.add_argument("--weight", type=float, default=2.0, help="gram.weight (DINOv3: 2)")
    p.add_argument("--refresh-epochs", type=float, default=1.0)
    p.add_argument("--knn-images", type=int, nargs=2, default=[2000, 1000])
    p.add_argument("--out", default="runs/gram_anchoring")
    p.add_argument("overrides", nargs="*", help="config overrides key=value for both runs")
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    listing = image_list(data / "train", args.images, out)
    knn = (
        knn_subset(data / "train", args.knn_images[0], out / "knn_train"),
        knn_subset(data / "test", args.knn_images[1], out / "knn_test"),
    )
    steps_per_epoch = len(listing.read_text().split()) // 32  # the preset's batch, drop_last
    start = args.epochs * steps_per_epoch // 2
    gram = [
        f"gram.weight={args.weight}",
        f"gram.start_iteration={start}",
        f"gram.refresh_every={int(args.refresh_epochs * steps_per_epoch)}",
    ]
    results = [run("off", [], listing, knn, args), run("on", gram, listing, knn, args)]
    lines = [
        "| Gram anchoring | DAVIS J&F | J | F | 20-NN | Gram loss first -> last | train min |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        g = r["gram_loss_first_last"]
        g_text = f"{g[0]:.4f} -> {g[1]:.4f}" if g else "-"
        lines.append(
            f"| {r['run']} | {r['davis_jf']:.1f} | {r['davis_j']:.1f} | {r['davis_f']:.1f} | "
            f"{r['knn20']:.2f} | {g_text} | {r['train_minutes']} |"
        )
    text = "\n".join(lines) + f"\n\n{results[0]['steps']} steps each; on: {' '.join(gram)}; "
    text += f"DAVIS {' '.join(args.sequences)} at {args.size} px"
    (out / "gram_anchoring.json").write_text(json.dumps(results, indent=1))
    (out / "gram_anchoring.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
