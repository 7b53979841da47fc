"""The teacher variants of DINO (section 5.2, Figure 6) at equal steps: k-NN, entropy, KL.

    python benchmarks/teacher_variants.py --data /tmp/data/c10k --images 1024 --epochs 4 \
        --out runs/teacher_variants [--variants ema,student_copy,prev_iter,prev_epoch] \
        [--knn-images 2000 1000] [k=v ...]

Each variant (`train.teacher_update`, optionally `:centering`, e.g. `student_copy:sinkhorn`
for the paper's "no momentum" rows) trains the `cifar10_small_resnet` CPU recipe from the same
seed for the same number of steps on the first `--images` images of `<data>/train` (a small
set, so that `prev_epoch` sees several epochs), with DINO's EMA centring unless a variant names
another. The teacher's weighted 20-NN (T = 0.07) on `<data>/train` -> `<data>/test` (the first
`--knn-images` of each, per class; 0 0 = all) is measured at the end; the per-step teacher
entropy and KL(teacher || student) show a collapse (entropy at 0 or at log K, KL at 0).
Writes teacher_variants.{json,md,png} in --out and prints the table. DINO's finding: student
copy and previous iteration collapse, previous epoch does not, the momentum teacher is best.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

from dinolab.config.loader import load_config
from dinolab.run_dir import METRICS
from dinolab.train.monitor import read_metrics
from dinolab.train.pretrain import pretrain

VARIANTS = "ema,student_copy,prev_iter,prev_epoch"


def image_list(train: Path, n: int, out: Path) -> Path:
    """A .txt of the first n/classes images of every class of `train` (sorted: reproducible)."""
    classes = sorted(p for p in train.iterdir() if p.is_dir())
    per_class = max(n // len(classes), 1)
    paths = [str(f.resolve()) for c in classes for f in sorted(c.iterdir())[:per_class]]
    out.mkdir(parents=True, exist_ok=True)
    listing = out / "train_subset.txt"
    listing.write_text("\n".join(paths) + "\n")
    return listing


def knn_subset(split: Path, n: int, out: Path) -> Path:
    """An ImageFolder of symlinks to the first n/classes images of each class (n=0: `split`)."""
    if n <= 0:
        return split
    per_class = max(n // sum(1 for p in split.iterdir() if p.is_dir()), 1)
    for c in sorted(p for p in split.iterdir() if p.is_dir()):
        (out / c.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(c.iterdir())[:per_class]:
            link = out / c.name / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    return out


def subset_config(listing: Path, knn: tuple[Path, Path], out: Path, epochs: int, extra: list[str]):
    """The CPU recipe on the image list, with the 20-NN of the teacher on `knn` at the end."""
    return load_config(
        "cifar10_small_resnet",
        [
            f"data.path={listing}",
            "data.format=filelist",
            f"out_dir={out}",
            f"train.epochs={epochs}",
            f"eval.train={knn[0]}",
            f"eval.val={knn[1]}",
            "eval.k=[20]",
            "train.progress=false",
            "train.tensorboard=false",
            "train.keep_checkpoints=0",
            *extra,
        ],
    )


def run_variant(variant: str, listing: Path, knn: tuple[Path, Path], out: Path, args) -> dict:
    """One pretraining run of `variant` (rule[:centering]); its 20-NN and step curves."""
    rule, _, centering = variant.partition(":")
    run = out / variant.replace(":", "_")
    shutil.rmtree(run, ignore_errors=True)
    rules = [f"train.teacher_update={rule}", f"loss.centering={centering or 'ema'}"]
    cfg = subset_config(listing, knn, run, args.epochs, [*rules, *args.overrides])
    t0 = time.perf_counter()
    summary = pretrain(cfg)
    rows = [r for r in read_metrics(run / METRICS) if "teacher_entropy" in r]
    return {
        "variant": variant,
        "knn20": summary["knn"]["scores"]["20"]["top1"],
        "steps": summary["steps"],
        "epochs": summary["epochs"],
        "wall_minutes": round((time.perf_counter() - t0) / 60, 2),
        "step": [r["step"] for r in rows],
        "teacher_entropy": [r["teacher_entropy"] for r in rows],
        "kl": [r["kl"] for r in rows],
        "out_dim": cfg.head.out_dim,
    }


def tail_mean(values: list[float], n: int = 20) -> float:
    part = values[-n:]
    return sum(part) / len(part)


def plot(results: list[dict], path: Path) -> None:
    """20-NN bars, teacher entropy and KL per step, side by side in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_knn, ax_h, ax_kl) = plt.subplots(1, 3, figsize=(15, 4.2))
    names = [r["variant"] for r in results]
    bars = ax_knn.bar(
        names, [r["knn20"] for r in results], color=[f"C{i}" for i in range(len(results))]
    )
    ax_knn.bar_label(bars, fmt="%.1f")
    ax_knn.set_ylabel("teacher 20-NN top-1 (%)")
    ax_knn.tick_params(axis="x", rotation=20)
    for i, r in enumerate(results):
        ax_h.plot(r["step"], r["teacher_entropy"], color=f"C{i}", label=r["variant"], lw=1)
        ax_kl.plot(r["step"], r["kl"], color=f"C{i}", label=r["variant"], lw=1)
    ax_h.axhline(math.log(results[0]["out_dim"]), color="grey", ls=":", lw=1, label="log K")
    ax_h.set_title("teacher entropy (0 or log K: collapse)")
    ax_kl.set_title("KL(teacher || student) (0: collapse)")
    for ax in (ax_h, ax_kl):
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.suptitle(f"DINO teacher variants, {results[0]['steps']} steps each")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/tmp/data/c10k", help="folder with train/ and test/")
    p.add_argument("--images", type=int, default=1024, help="training images (first per class)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--knn-images", type=int, nargs=2, default=[2000, 1000],
                   help="k-NN memory bank and queries (first per class; 0 0: all)")  # fmt: skip
    p.add_argument("--variants", default=VARIANTS, help="comma list of rule[:centering]")
    p.add_argument("--out", default="runs/teacher_variants")
    p.add_argument("overrides", nargs="*", help="config overrides key=value for every run")
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    listing = image_list(data / "train", args.images, out)
    knn = (
        knn_subset(data / "train", args.knn_images[0], out / "knn_train"),
        knn_subset(data / "test", args.knn_images[1], out / "knn_test"),
    )
    results = []
    for variant in args.variants.split(","):
        results.append(run_variant(variant, listing, knn, out, args))
        r = results[-1]
        print(f"{variant}: 20-NN {r['knn20']:.2f} in {r['wall_minutes']} min", flush=True)
    table = [
        "| teacher | 20-NN top-1 | teacher entropy, last 20 steps | KL, last 20 steps | min |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        table.append(
            f"| {r['variant']} | {r['knn20']:.2f} | {tail_mean(r['teacher_entropy']):.3f} | "
            f"{tail_mean(r['kl']):.3f} | {r['wall_minutes']} |"
        )
    text = "\n".join(table)
    text += f"\n\n{results[0]['steps']} steps ({results[0]['epochs']} epochs) of {args.images} "
    text += f"images each; log K = {math.log(results[0]['out_dim']):.3f}; k-NN bank / queries "
    text += f"{args.knn_images} (0 = all)"
    (out / "teacher_variants.json").write_text(json.dumps(results, indent=1))
    (out / "teacher_variants.md").write_text(text + "\n")
    plot(results, out / "teacher_variants.png")
    print(text)


if __name__ == "__main__":
    main()
