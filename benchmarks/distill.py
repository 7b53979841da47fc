"""Distillation vs training from scratch at equal time or steps (CPU, CIFAR-10 subset).

    python benchmarks/distill.py --teacher-minutes 20 --student-minutes 8 \
        --data /tmp/data/c10k --out runs/bench_distill

The teacher is a finished `cifar10_small_resnet` run (small_resnet E256, 1024 prototypes,
DINO + Sinkhorn-Knopp), or one trained here for --teacher-minutes when --teacher is absent.
Then, on `<data>/train` (or its first --per-class images of each class) for --epochs each (or
--student-minutes of wall-clock each, the equal-time comparison), a
half-width student (small_resnet E128): (a) distilled from the frozen teacher (`--preset
distill_cpu`), (b) pretrained from scratch with the teacher's own recipe
(`cifar10_small_resnet` at embed_dim 128). Reported: weighted 20-NN
(T = 0.07) and logistic-regression top-1 on `<data>/train` -> `<data>/test` of the teacher,
the distilled student's EMA (the exported backbone) and its raw student, the scratch run's
teacher (its exported backbone), and raw pixels; with each run's training wall-clock seconds.
Prints a markdown table and writes distill.json / distill.md in --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from dinolab.config.loader import load_config
from dinolab.eval.baselines import backbone_scores, probe_scores, raw_pixel_features
from dinolab.models import build_backbone
from dinolab.models.convert import sub_state
from dinolab.models.weights import load_state_dict_strict
from dinolab.run_dir import CHECKPOINT, load_checkpoint, load_run_backbone
from dinolab.train.distill_run import distill
from dinolab.train.pretrain import pretrain

CIFAR = {"data.mean": "[0.4914,0.4822,0.4465]", "data.std": "[0.247,0.243,0.261]"}
QUIET = {"train.progress": "false", "train.loggers": "[]", "train.keep_checkpoints": "0"}


def overrides(d: dict) -> list[str]:
    return [f"{k}={v}" for k, v in d.items()]


def class_subset(src: Path, dst: Path, per_class: int) -> Path:
    """The first `per_class` images of every class folder of `src`, linked into `dst`."""
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / folder.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(folder.iterdir())[:per_class]:
            (dst / folder.name / f.name).symlink_to(f.resolve())
    return dst


def timed(fn, cfg) -> float:
    t0 = time.perf_counter()
    fn(cfg)
    return round(time.perf_counter() - t0, 1)


def raw_student(run: Path) -> torch.nn.Module:
    """The distilled run's student backbone (not its EMA) from its checkpoint."""
    _, cfg = load_run_backbone(run)
    net = build_backbone(cfg.model)
    prefix = "student.backbone."
    state = load_checkpoint(run / CHECKPOINT)["model"]
    weights = sub_state(state, prefix)
    load_state_dict_strict(net, weights, "the distilled student")
    return net.eval()


def table(rows: dict) -> str:
    lines = [
        "| backbone | params | train s | 20-NN top-1 | linear top-1 |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r.get('params', '-')} | {r.get('train_s', '-')} | "
            f"{r['knn_top1']:.2f} | {r['linear_top1']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", help="a finished cifar10_small_resnet run directory")
    p.add_argument("--teacher-minutes", type=float, default=5.0)
    p.add_argument("--data", default="/tmp/data/c10k", help="folder with train/ and test/")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each student run")
    p.add_argument(
        "--student-minutes",
        type=float,
        default=0.0,
        help="give each student run this wall-clock budget instead of --epochs (equal time)",
    )
    p.add_argument("--student-dim", type=int, default=128)
    p.add_argument(
        "--per-class", type=int, default=0, help="train on this many images per class (0: all)"
    )
    p.add_argument(
        "--eval-per-class", type=int, default=0, help="k-NN / probe memory bank per class (0: all)"
    )
    p.add_argument("--out", default="runs/bench_distill")
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    train = data / "train"
    if args.per_class:
        train = class_subset(train, out / "train_subset", args.per_class)
    common = {**CIFAR, **QUIET, "data.path": str(train), "train.epochs": args.epochs}
    result: dict = {"args": vars(args)}
    teacher = Path(args.teacher) if args.teacher else out / "teacher"
    if not args.teacher:
        budget = {"train.time_budget": f"{args.teacher_minutes}min", "train.epochs": 1000}
        t = {**common, **budget, "out_dir": teacher}
        result["teacher_train_s"] = timed(
            pretrain, load_config("cifar10_small_resnet", overrides(t))
        )
    student = {"model.embed_dim": args.student_dim}
    if args.student_minutes:
        student |= {"train.time_budget": f"{args.student_minutes}min", "train.epochs": 1000}
    runs = {"distilled": out / "distilled", "scratch": out / "scratch"}
    cfg = load_config("distill_cpu", overrides({**common, **student, "out_dir": runs["distilled"],
                                                "distill.teacher": teacher}))  # fmt: skip
    distilled_s = timed(distill, cfg)
    cfg = load_config(
        "cifar10_small_resnet", overrides({**common, **student, "out_dir": runs["scratch"]})
    )
    scratch_s = timed(pretrain, cfg)

    nets = {
        f"teacher (small_resnet E256, {teacher})": (load_run_backbone(teacher), None),
        f"distilled student EMA (E{args.student_dim})": (
            load_run_backbone(runs["distilled"]),
            distilled_s,
        ),
        f"distilled raw student (E{args.student_dim})": (
            (raw_student(runs["distilled"]), load_run_backbone(runs["distilled"])[1]),
            distilled_s,
        ),
        f"scratch (E{args.student_dim}, teacher of its run)": (
            load_run_backbone(runs["scratch"]),
            scratch_s,
        ),
    }
    bank = data / "train"
    if args.eval_per_class:
        bank = class_subset(bank, out / "eval_train", args.eval_per_class)
    rows: dict = {}
    for name, ((net, run_cfg), seconds) in nets.items():
        # the whole 32 px frame, the view raw pixels get below (eval.resize_ratio=1.0)
        kw = dict(image_size=32, resize_ratio=1.0, mean=tuple(run_cfg.data.mean),
                  std=tuple(run_cfg.data.std))  # fmt: skip
        rows[name] = backbone_scores(net, bank, data / "test", progress=False, num_workers=0, **kw)
        rows[name]["params"] = f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M"
        rows[name]["train_s"] = seconds
        print(name, rows[name], flush=True)
    pixels = (raw_pixel_features(bank), raw_pixel_features(data / "test"))
    rows["raw pixels"] = probe_scores(*pixels, k=20)
    result["rows"] = rows
    md = table(rows)
    print(md)
    (out / "distill.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "distill.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
