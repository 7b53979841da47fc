"""Fine-tuning a dinolab backbone vs fine-tuning random init vs the frozen linear probe.

    python benchmarks/finetune.py --model /tmp/q/q30/run/teacher_backbone.safetensors \
        --train dinolab_data/clothing-64/train --val dinolab_data/clothing-64/validation \
        --epochs 6 --out runs/bench_finetune/clothing [key=value ...]
    python benchmarks/finetune.py --model ... --train /tmp/data/c10k/train \
        --val /tmp/data/c10k/test --per-class 200 --val-per-class 100 --epochs 6 \
        --out runs/bench_finetune/cifar

Three `dinolab finetune` runs of the same recipe (preset finetune_cpu unless --preset) and the
same number of epochs, on the same images and augmentation:
  pretrained   the backbone of MODEL, fine-tuned end to end (the preset's head-first epoch,
               layer-wise lr decay)
  random init  the same architecture from random weights (pretrained=false), no head-first
               epoch and no layer decay (both only make sense for a pretrained backbone)
  linear probe the backbone of MODEL frozen for every epoch (head_epochs = epochs), the head at
               --probe-lr-mult x the lr (a lone linear head wants a larger lr)
`--per-class N` / `--val-per-class N` take the first N images of each class (symlinks in OUT).
Prints a markdown table (best and last val top-1 / top-5, minutes) and writes finetune.json /
finetune.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from dinolab.cli.options import resolve_model
from dinolab.config.finetune import load_finetune_config
from dinolab.data.datasets import find_images
from dinolab.finetune.classifier import model_config_of_source
from dinolab.finetune.loop import run_finetune


def subset(root: Path, per_class: int, out: Path) -> Path:
    """The first `per_class` images of each class of `root` as symlinks under `out`."""
    if per_class <= 0:
        return root
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        target = out / cls.name
        target.mkdir(parents=True, exist_ok=True)
        for path in find_images(cls)[:per_class]:
            link = target / Path(path).name
            if not link.exists():
                os.symlink(Path(path).resolve(), link)
    return out


def arms(epochs: int, probe_lr_mult: float, base_lr: float) -> dict[str, list[str]]:
    return {
        "pretrained": [],
        "random init": ["pretrained=false", "head_epochs=0", "layer_decay=1.0"],
        "linear probe": [f"head_epochs={epochs}", f"lr={base_lr * probe_lr_mult}"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="run directory, weights file or hub name")
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--per-class", type=int, default=0, help="training images per class (0: all)")
    ap.add_argument("--val-per-class", type=int, default=0, help="val images per class (0: all)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--preset", default="finetune_cpu")
    ap.add_argument("--probe-lr-mult", type=float, default=10.0)
    ap.add_argument("--only", nargs="*", help="run only these arms (pretrained, random, probe)")
    ap.add_argument("--out", default="runs/bench_finetune")
    ap.add_argument("items", nargs="*", help="key=value overrides for every arm")
    args = ap.parse_args()
    out = Path(args.out)
    train = subset(Path(args.train), args.per_class, out / "data" / "train")
    val = subset(Path(args.val), args.val_per_class, out / "data" / "val")
    base = load_finetune_config(args.preset, args.items)
    results = {}
    for name, extra in arms(args.epochs, args.probe_lr_mult, base.lr).items():
        if args.only and not any(o in name for o in args.only):
            continue
        run = out / name.replace(" ", "_")
        overrides = [
            f"model={args.model}", f"train_dir={train}", f"val_dir={val}", f"out_dir={run}",
            f"epochs={args.epochs}", "progress=false", *args.items, *extra,
        ]  # fmt: skip
        cfg = load_finetune_config(args.preset, overrides)
        resolved = resolve_model(args.model)
        model_cfg = model_config_of_source(resolved.model, args.model)
        start = time.perf_counter()
        summary = run_finetune(cfg, resolved.model, model_cfg)
        minutes = (time.perf_counter() - start) / 60
        results[name] = {**summary, "minutes": minutes, "overrides": overrides}
        print(f"{name}: best top-1 {summary['best']['top1']:.2f} in {minutes:.1f} min", flush=True)
    n_train, n_val = len(find_images(train)), len(find_images(val))
    lines = [
        f"Fine-tuning {args.model} ({args.preset}, {args.epochs} epochs; {n_train} training / "
        f"{n_val} val images)",
        "",
        "| start | val top-1 best (epoch) | top-1 last | top-5 last | minutes |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        best, last = r["best"], r["last"]
        lines.append(
            f"| {name} | {best['top1']:.2f} ({best['epoch']}) | {last['top1']:.2f} | "
            f"{last['top5']:.2f} | {r['minutes']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    (out / "finetune.md").write_text(table + "\n")
    (out / "finetune.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
