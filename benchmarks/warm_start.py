"""Continuing from a trained backbone (`model.init`) on new photos: k-NN must not fall, and rise.

    python benchmarks/warm_start.py --init RUN_OR_WEIGHTS --data dinolab_data/clothing-64 \
        --budget-minutes 5 --preset cpu_fast [key=value ...] --out runs/warm_start

Users of DINOv2 report that continuing pretraining with fresh heads wrecks the features (k-NN
from ~80% to ~10%, dinov2 issue #204): the fresh heads' first gradients reach the backbone
before they mean anything. dinolab's cure: the backbone frozen while the heads warm up
(`train.freeze_backbone_epochs`, 1 here) and a lower backbone lr after that
(`optim.backbone_lr_mult`, 0.1 here); both are overridable, e.g. `train.freeze_backbone_epochs=0
optim.backbone_lr_mult=1` shows what happens without them.

One `pretrain` run on `<data>/train` with `model.init=<init>` and `train.time_budget`; the
teacher's weighted 20-NN (T = 0.07) on `<data>/train` -> `<data>/validation` is measured for the
starting backbone (minute 0), after every epoch (the trainer's online k-NN) and at the end,
beside raw pixels and the same network at random init. Prints a markdown table and writes
warm_start.json / warm_start.md in --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from dinolab import hub
from dinolab.config.loader import load_config
from dinolab.eval.baselines import compare_with_baselines
from dinolab.eval.knn import run_knn
from dinolab.run_dir import METRICS, SUMMARY, load_run_backbone
from dinolab.train.monitor import read_metrics
from dinolab.train.pretrain import pretrain

WARM_START = ["train.freeze_backbone_epochs=1", "optim.backbone_lr_mult=0.1"]


def teacher_knn(backbone, data: Path, cfg) -> float:
    """Weighted 20-NN top-1 of `backbone` on data/train -> data/validation."""
    result = run_knn(
        backbone,
        str(data / "train"),
        str(data / "validation"),
        cfg.data.global_size,
        ks=[20],
        resize_ratio=cfg.eval.resize_ratio,
        progress=False,
        mean=tuple(cfg.data.mean),
        std=tuple(cfg.data.std),
    )
    return next(iter(result["scores"].values()))["top1"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", required=True, help="dinolab run, weights file or hub name")
    p.add_argument("--data", required=True, help="folder with train/ and validation/ classes")
    p.add_argument("--budget-minutes", type=float, default=5.0)
    p.add_argument("--preset", default="cpu_fast")
    p.add_argument("--out", default="runs/warm_start")
    p.add_argument("--reuse", action="store_true", help="evaluate the finished run in --out again")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (win over defaults)")
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not args.reuse:
        shutil.rmtree(out / "run", ignore_errors=True)
    cfg = load_config(
        args.preset,
        [
            f"data.path={data / 'train'}",
            f"out_dir={out / 'run'}",
            f"model.init={args.init}",
            f"train.time_budget={args.budget_minutes}min",
            f"eval.train={data / 'train'}",
            f"eval.val={data / 'validation'}",
            "eval.every_epochs=1",
            "train.progress=false",
            "train.tensorboard=false",
            *WARM_START,
            *args.overrides,
        ],
    )
    start = teacher_knn(hub.load(args.init), data, cfg)
    print(f"start ({args.init}): 20-NN {start:.2f}", flush=True)
    t0 = time.perf_counter()
    if args.reuse:
        summary = json.loads((out / "run" / SUMMARY).read_text())
    else:
        summary = pretrain(cfg)
    minutes = (time.perf_counter() - t0) / 60
    teacher, _ = load_run_backbone(out / "run")
    rows = compare_with_baselines(cfg, teacher, data / "train", data / "validation", 20)
    curve = [  # (step, 20-NN) of the trainer's online k-NN
        (r["step"], r["knn/teacher_k20_top1"])
        for r in read_metrics(out / "run" / METRICS)
        if "knn/teacher_k20_top1" in r
    ]
    result = {
        "init": args.init,
        "start_k20": start,
        "curve_k20": curve,
        "end_k20": rows["trained"]["knn_top1"],
        "end_linear": rows["trained"]["linear_top1"],
        "raw_pixels": rows["raw pixels"],
        "random_init": rows["random init"],
        "steps": summary["steps"],
        "epochs": summary["epochs"],
        "wall_minutes": round(minutes, 2),
        "overrides": WARM_START + args.overrides,
    }
    table = "\n".join(
        [
            "| features | 20-NN top-1 | linear top-1 |",
            "|---|---:|---:|",
            f"| raw pixels | {rows['raw pixels']['knn_top1']:.2f} | "
            f"{rows['raw pixels']['linear_top1']:.2f} |",
            f"| random init | {rows['random init']['knn_top1']:.2f} | "
            f"{rows['random init']['linear_top1']:.2f} |",
            f"| start: {args.init} | {start:.2f} | - |",
            f"| after {summary['epochs']} epochs ({summary['steps']} steps) | "
            f"{rows['trained']['knn_top1']:.2f} | {rows['trained']['linear_top1']:.2f} |",
        ]
    )
    table += "\n\nonline 20-NN (step: top-1): " + ", ".join(f"{m}: {v:.2f}" for m, v in curve)
    out.mkdir(parents=True, exist_ok=True)
    (out / "warm_start.json").write_text(json.dumps(result, indent=1))
    (out / "warm_start.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
