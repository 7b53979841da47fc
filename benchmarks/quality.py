"""Quality under a wall-clock budget: DINO pretraining on CIFAR-10, then k-NN and a linear probe.

    python benchmarks/quality.py --data /tmp/data/cifar10 --budget-minutes 20 \
        --preset cifar10_vit_tiny [key=value ...] --out runs/quality

One `pretrain(cfg)` run (dinolab.train.pretrain) on `<data>/train` with
`train.time_budget=<budget>`: the trainer fits every schedule (lr warm-up + cosine, weight
decay, teacher momentum, teacher-temperature warm-up) to the budget from its measured step time
and re-plans as the machine gets faster or slower, so the cosine ends when the budget does; the
warm-ups keep the share of the run the config gives them (`optim.warmup_epochs / train.epochs`,
see dinolab/train/budget.py). Training time (steps, data waits, checkpoints) counts against the
budget; the evaluations do not.

During the run the trainer's online k-NN (`eval.every_epochs`, 1 here unless overridden)
measures the teacher's weighted 20-NN and 200-NN top-1 on a fixed seeded subset of the train /
test sets (`--eval-subset`, default 10k / 2k, symlinks under `<out>/eval_subset`) and logs it in
the run's metrics.jsonl with the training minutes used so far; `pretrain` adds one more point on
that subset when the budget ends. Those rows, read back, are the accuracy-vs-training-minutes
curve; its minute-0 point is the same network at random init.

Then the exported teacher is evaluated on the full sets (weighted 20-NN and 200-NN, T = 0.07,
and an L2 logistic-regression probe, C chosen on a held-out tenth of train) beside two
baselines: raw pixels (32x32x3, per-image mean-centred, L2-normalised) and the same network at
random init (seeded by `train.seed`). `--final-eval subset` skips the full sets;
`--train-subset N` / `--test-subset M` replace the full sets (pretraining images included) by
seeded subsets, for smoke tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

import dinolab.hub
from dinolab.config.loader import load_config, to_yaml
from dinolab.config.schema import Config
from dinolab.data.datasets import LabeledImageFolder
from dinolab.distributed import get_world_size, resolve_device
from dinolab.eval.baselines import random_init_backbone, raw_pixel_features
from dinolab.eval.features import extract_features
from dinolab.eval.knn import knn_classify
from dinolab.eval.logreg import logreg_holdout
from dinolab.train.monitor import read_metrics
from dinolab.train.pretrain import pretrain
from dinolab.train.run_checkpoint import has_checkpoint
from dinolab.train.trainer import per_process_batch

KS = (20, 200)
LOGREG_CS = (1e-3, 1e-2, 0.1, 1.0, 10.0)
# Applied before the user's overrides (which win): logs stay quiet and the online k-NN gives
# a point every epoch. The preset keeps its prototype freeze (small_resnet on a 10k CIFAR subset,
# 5 epochs: 39.1 with the first epoch frozen, 37.3 without; RESULTS.md).
BENCH_DEFAULTS = [
    "train.progress=false",
    "train.tensorboard=false",
    "train.checkpoint_every_epochs=1",
    "train.keep_checkpoints=0",
    "eval.every_epochs=1",
]


def log(msg: str) -> None:
    print(f"[quality {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- eval sets
def make_subset(src: Path, dst: Path, n: int, seed: int) -> tuple[Path, int]:
    """A seeded random subset of an ImageFolder as a folder of symlinks (no pixels copied);
    `src` itself when `n` is 0 or covers it. Returns the folder and its image count."""
    ds = LabeledImageFolder(src)
    if n <= 0 or n >= len(ds):
        return src, len(ds)
    if dst.is_dir():
        shutil.rmtree(dst)  # an earlier call's subset, maybe of another size or source
    keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    for i in sorted(keep):
        path = Path(ds.paths[i])
        link = dst / ds.classes[ds.targets[i]] / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), link)
    return dst, n


def scores(train: dict, test: dict, temperature: float, linear: bool) -> dict:
    """Weighted k-NN (and the logistic-regression probe) of one feature set, timed."""
    t0 = time.perf_counter()
    knn = knn_classify(
        train["features"],
        train["labels"],
        test["features"],
        test["labels"],
        ks=KS,
        temperature=temperature,
        num_classes=len(train["classes"]),
    )
    out: dict = {f"k{k}_top1": round(s["top1"], 2) for k, s in knn.items()}
    if linear:
        res = logreg_holdout(train, test, Cs=LOGREG_CS)
        out.update(linear_top1=round(res["top1"], 2), linear_C=res["C"])
    out.update(
        n_train=len(train["labels"]),
        n_test=len(test["labels"]),
        probe_seconds=round(time.perf_counter() - t0, 1),
    )
    return out


class Evaluator:
    """20/200-NN (and linear probe) of a backbone, or of raw pixels, on (train, test) folders;
    features as the trainer's online k-NN makes them (eval transform, run's precision)."""

    def __init__(self, cfg: Config, workers: int):
        self.cfg, self.workers = cfg, workers
        self.device = resolve_device(cfg.train.device)

    def backbone(self, net: torch.nn.Module, train_root: Path, test_root: Path, linear=False):
        t0 = time.perf_counter()
        kw = dict(
            image_size=self.cfg.eval.image_size,
            resize_ratio=self.cfg.eval.resize_ratio,
            batch_size=self.cfg.eval.batch_size,
            num_workers=self.workers,
            device=self.device,
            precision=self.cfg.train.precision,
            mean=tuple(self.cfg.data.mean),
            std=tuple(self.cfg.data.std),
            progress=False,
        )
        net = net.to(self.device)
        train = extract_features(net, str(train_root), **kw)
        test = extract_features(net, str(test_root), **kw)
        feature_s = time.perf_counter() - t0
        out = scores(train, test, self.cfg.eval.temperature, linear)
        out.update(
            feature_images_per_s=round((len(train["labels"]) + len(test["labels"])) / feature_s),
            eval_seconds=round(time.perf_counter() - t0, 1),
        )
        return out

    def pixels(self, train_root: Path, test_root: Path, linear: bool = False) -> dict:
        t0 = time.perf_counter()
        ratio = self.cfg.eval.resize_ratio  # the backbones' view of each image
        train = raw_pixel_features(train_root, 32, ratio)
        test = raw_pixel_features(test_root, 32, ratio)
        out = scores(train, test, self.cfg.eval.temperature, linear)
        out.update(eval_seconds=round(time.perf_counter() - t0, 1))
        return out


def curve_from_run(run_dir: Path, summary: dict, global_batch: int) -> list[dict]:
    """Accuracy vs training minutes from the run's k-NN rows in metrics.jsonl: one per online
    evaluation (with `knn/train_minutes`, the budget used when it ran) and pretrain's final one
    (at the run's last step: the whole budget, `summary["train_minutes"]`)."""
    points: dict[int, dict] = {}
    for row in read_metrics(run_dir / "metrics.jsonl"):
        if "knn/teacher_k20_top1" not in row:
            continue
        step = row["step"]
        final = step == summary["steps"] and "knn/train_minutes" not in row
        points[step] = {  # a final row at an epoch's end replaces that epoch's online row
            "step": step,
            "train_minutes": summary["train_minutes"] if final else row["knn/train_minutes"],
            "images_seen": step * global_batch,
            "k20_top1": round(row["knn/teacher_k20_top1"], 2),
            "k200_top1": round(row["knn/teacher_k200_top1"], 2),
            "eval_seconds": row.get("knn/seconds"),
        }
    return [points[s] for s in sorted(points)]


# ----------------------------------------------------------------------------- report
def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    pts = result["curve"]
    start = result["baselines_subset"]["random init"]["k20_top1"]  # the network at step 0
    ax.plot(
        [0.0] + [p["train_minutes"] for p in pts],
        [start] + [p["k20_top1"] for p in pts],
        "o-",
        label="DINO teacher (eval subset)",
    )
    colors = {"raw pixels": "tab:gray", "random init": "tab:red"}
    for name, res in result["baselines_subset"].items():
        ax.axhline(res["k20_top1"], ls="--", color=colors.get(name), label=f"{name} (subset)")
    for name, res in result.get("baselines_full", {}).items():
        ax.axhline(res["k20_top1"], ls=":", color=colors.get(name), label=f"{name} (full)")
    if result.get("final_full"):
        f = result["final_full"]
        ax.plot(
            [f["train_minutes"]],
            [f["k20_top1"]],
            "*",
            ms=12,
            color="tab:green",
            label="DINO final (full)",
        )
    ax.set_xlabel("training minutes (evaluations excluded)")
    ax.set_ylabel("20-NN top-1 (%)")
    ax.set_title(f"CIFAR-10 k-NN vs training time ({result['preset']})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(result: dict) -> str:
    final_set = "full" if result.get("final_full") else "subset"
    base = result["baselines_full"] if final_set == "full" else result["baselines_subset"]
    dino = result.get("final_full") or result["curve"][-1]
    n = f"{base['random init']['n_train']} / {base['random init']['n_test']}"
    lines = [
        "| method | 20-NN top-1 | 200-NN top-1 | linear top-1 | train min | images seen "
        "| eval train / test |",
        "|---|---|---|---|---|---|---|",
    ]

    def linear(res: dict) -> str:
        return f"{res['linear_top1']:.2f}" if "linear_top1" in res else "-"

    for name, res in base.items():
        lines.append(
            f"| {name} | {res['k20_top1']:.2f} | {res['k200_top1']:.2f} | {linear(res)} "
            f"| 0 | 0 | {n} |"
        )
    lines.append(
        f"| DINO {result['model']} | {dino['k20_top1']:.2f} | {dino['k200_top1']:.2f} | "
        f"{linear(dino)} | {dino['train_minutes']:.1f} | {dino['images_seen']} | {n} |"
    )
    speed = {name: r for name, r in (*base.items(), ("DINO", dino)) if "feature_images_per_s" in r}
    if speed:
        lines += [
            "",
            "Evaluation speed: feature pass "
            + ", ".join(f"{r['feature_images_per_s']:.0f}" for r in speed.values())
            + " images/s; k-NN"
            + (" + linear probe" if final_set == "full" else "")
            + " on the features "
            + ", ".join(f"{r['probe_seconds']:.1f}" for r in speed.values())
            + f" s ({', '.join(speed)}).",
        ]
    sub = result["baselines_subset"]["random init"]
    curve = [
        "",
        f"Accuracy vs training minutes (eval subset {sub['n_train']} / {sub['n_test']}; "
        f"{result['epochs']} epochs of {result['n_pretrain']} images in "
        f"{result['train_minutes']:.1f} training minutes, {result['wall_minutes']:.1f} "
        "wall-clock minutes with the online evaluations):",
        "",
        "| train minutes | steps | images seen | 20-NN top-1 | 200-NN top-1 | eval s |",
        "|---|---|---|---|---|---|",
        f"| 0 (init) | 0 | 0 | {sub['k20_top1']:.2f} | {sub['k200_top1']:.2f} "
        f"| {sub['eval_seconds']:.1f} |",
    ]
    for p in result["curve"]:
        eval_s = "-" if p["eval_seconds"] is None else f"{p['eval_seconds']:.1f}"
        curve.append(
            f"| {p['train_minutes']:.1f} | {p['step']} | {p['images_seen']} | "
            f"{p['k20_top1']:.2f} | {p['k200_top1']:.2f} | {eval_s} |"
        )
    return "\n".join(lines + curve) + "\n"


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR-10 root with train/ and test/ folders")
    p.add_argument("--budget-minutes", type=float, default=20.0, help="training minutes")
    p.add_argument("--preset", default="cifar10_vit_tiny")
    p.add_argument("--out", default="runs/quality")
    p.add_argument(
        "--eval-subset",
        default="10000,2000",
        help="train,test sizes of the seeded subset of the online k-NN during the run",
    )
    p.add_argument("--final-eval", choices=("full", "subset"), default="full")
    p.add_argument(
        "--train-subset",
        type=int,
        default=0,
        help="pretrain and evaluate on a seeded subset of this many train images (0: all)",
    )
    p.add_argument(
        "--test-subset",
        type=int,
        default=0,
        help="evaluate on a seeded subset of this many test images (0: all)",
    )
    p.add_argument(
        "--eval-batch-size", type=int, default=500, help="sets eval.batch_size (all k-NN passes)"
    )
    p.add_argument("--eval-workers", type=int, default=1, help="loader workers of the final eval")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads, also sets train.threads (0: auto). On a shared 2-core "
        "machine 1 thread was 3.5x faster than 2 (OpenMP barriers under oversubscription)",
    )
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[dinolab %(asctime)s] %(message)s")
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"
    if has_checkpoint(run_dir):
        sys.exit(f"{run_dir} already holds a run: choose another --out or delete it.")
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # the baselines run before the trainer sets it
    # The benchmark's "full" sets: CIFAR-10's, or seeded subsets of them (smoke tests).
    full_train, n_pretrain = make_subset(
        data / "train", out / "data" / "train", args.train_subset, 2
    )
    full_test, _ = make_subset(data / "test", out / "data" / "test", args.test_subset, 3)
    n_tr, n_te = (int(x) for x in args.eval_subset.split(","))
    sub_train, _ = make_subset(full_train, out / "eval_subset" / "train", n_tr, seed=0)
    sub_test, _ = make_subset(full_test, out / "eval_subset" / "test", n_te, seed=1)
    cfg = load_config(
        args.preset,
        BENCH_DEFAULTS
        + [f"eval.batch_size={args.eval_batch_size}"]
        + ([f"train.threads={args.threads}"] if args.threads > 0 else [])
        + list(args.overrides)
        + [
            f"data.path={full_train}",
            f"out_dir={run_dir}",
            f"train.time_budget={args.budget_minutes * 60:.1f}s",
            f"eval.train={sub_train}",
            f"eval.val={sub_test}",
            f"eval.k=[{','.join(str(k) for k in KS)}]",
            "eval.max_train_images=0",  # the subset folders are the online k-NN's sets
            "eval.max_val_images=0",
        ],
    )
    vit = cfg.model.arch.startswith("vit")
    model_name = (
        f"{cfg.model.arch}{f'/{cfg.model.patch_size}' if vit else ''}"
        f" {'d' if vit else 'E'}{cfg.model.embed_dim or '-'}"
        f" {'L' if vit else 'blocks/stage '}{cfg.model.depth or '-'}"
    )
    global_batch = per_process_batch(cfg, get_world_size()) * get_world_size()
    log(
        f"budget {args.budget_minutes} training minutes, online k-NN every "
        f"{cfg.eval.every_epochs} epoch(s); config:\n{to_yaml(cfg)}"
    )
    ev = Evaluator(cfg, args.eval_workers)
    result: dict = {
        "argv": sys.argv,
        "preset": args.preset,
        "overrides": args.overrides,
        "model": model_name,
        "config": asdict(cfg),
        "budget_minutes": args.budget_minutes,
        "n_pretrain": n_pretrain,
        "torch": torch.__version__,
        "baselines_subset": {},
        "baselines_full": {},
    }

    # Baselines on the online k-NN's subset: raw pixels, and the run's network at random init
    # (the curve's minute-0 point).
    random_backbone = random_init_backbone(cfg)
    result["baselines_subset"]["raw pixels"] = ev.pixels(sub_train, sub_test)
    result["baselines_subset"]["random init"] = ev.backbone(random_backbone, sub_train, sub_test)
    log(f"baselines (subset): {result['baselines_subset']}")

    # One budgeted run. A run directory without a checkpoint is a killed attempt: resume=True
    # starts it over from step 0 (and drops its metrics rows).
    t0 = time.perf_counter()
    summary = pretrain(cfg, resume=run_dir.exists())
    gc.collect()  # the trainer's loader workers go now, not inside a forked eval worker
    result["wall_minutes"] = round((time.perf_counter() - t0) / 60, 2)
    result["summary"] = summary
    result["threads"] = torch.get_num_threads()
    result["steps"] = summary["steps"]
    result["train_minutes"] = summary["train_minutes"]
    result["epochs"] = round(summary["steps"] * global_batch / n_pretrain, 2)
    result["curve"] = curve_from_run(run_dir, summary, global_batch)
    for p in result["curve"]:
        log(
            f"{p['train_minutes']:.1f} min, step {p['step']}: 20-NN {p['k20_top1']:.2f} "
            f"200-NN {p['k200_top1']:.2f}"
        )

    if args.final_eval == "full":
        result["baselines_full"]["raw pixels"] = ev.pixels(full_train, full_test, linear=True)
        result["baselines_full"]["random init"] = ev.backbone(
            random_backbone, full_train, full_test, linear=True
        )
        teacher = dinolab.hub.load(run_dir)  # the run's exported teacher backbone
        final = ev.backbone(teacher, full_train, full_test, linear=True)
        final.update(
            step=result["steps"],
            train_minutes=result["train_minutes"],
            images_seen=result["steps"] * global_batch,
        )
        result["final_full"] = final
    md = table(result)
    print(md, flush=True)
    (out / "quality.md").write_text(md)
    (out / "quality.json").write_text(json.dumps(result, indent=2, default=str))
    plot(result, out / "quality.png")
    log(f"wrote {out / 'quality.json'}, {out / 'quality.md'}, {out / 'quality.png'}")
    return result


if __name__ == "__main__":
    main()
