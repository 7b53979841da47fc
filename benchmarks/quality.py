"""Quality under a wall-clock budget: DINO pretraining on CIFAR-10, then weighted k-NN.

    python benchmarks/quality.py --data /tmp/data/cifar10 --budget-minutes 20 \
        --preset cifar10_vit_tiny [key=value ...] --out runs/quality

Pretrains on `<data>/train` for a fixed budget of pretraining wall-clock time, in chunks
(`Trainer(cfg, resume=True).fit()` continues the same run directory exactly); after each chunk
the teacher is evaluated by weighted 20-NN (and 200-NN) on the test set, so the result is
accuracy against elapsed pretraining time. Two baselines run in the same process: raw pixels
(32x32x3, per-image mean-centred, L2-normalised) and the same backbone at random init (the
step-0 teacher of the run).

The schedules (lr warm-up + cosine, weight decay, teacher momentum, teacher temperature
warm-up) are fitted to the budget: their length is the number of steps the measured step rate
allows, and the warm-ups keep the fraction of the run that the config gives them
(`optim.warmup_epochs / train.epochs`, `loss.teacher_temp_warmup_epochs / train.epochs`).
The horizon is re-planned after each chunk from the step rate measured so far, so the cosine
ends inside the budget even when the machine gets faster or slower. Only pretraining time
(trainer construction, steps, checkpoints, exports) counts against the budget; evaluation time
is reported separately.

Intermediate evaluations use a fixed seeded subset (default 10k train / 2k test images); the
final numbers use the full 50k / 10k sets unless `--final-eval subset`.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from dinolab.config.loader import load_config, to_yaml
from dinolab.config.schema import Config
from dinolab.data.datasets import LabeledImageFolder
from dinolab.distributed import get_world_size
from dinolab.eval.baselines import random_init_backbone, raw_pixel_features
from dinolab.eval.features import extract_features
from dinolab.eval.knn import knn_classify
from dinolab.eval.logreg import logreg_holdout
from dinolab.run_dir import load_run_backbone
from dinolab.train.trainer import CHECKPOINT, Trainer

KS = (20, 200)
LOGREG_CS = (1e-3, 1e-2, 0.1, 1.0, 10.0)
TEMPERATURE = 0.07
# Applied before the user's overrides (which win): a run of one or two epochs must not spend
# its first epoch with frozen prototypes, and logs should stay quiet.
BENCH_DEFAULTS = [
    "head.freeze_last_layer_epochs=0",
    "train.progress=false",
    "train.tensorboard=false",
    "train.checkpoint_every_epochs=1",
    "train.keep_checkpoints=0",
]


def log(msg: str) -> None:
    print(f"[quality {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- eval sets
def make_subset(src: Path, dst: Path, n: int, seed: int) -> Path:
    """A seeded random subset of an ImageFolder as a folder of symlinks (no pixels copied)."""
    ds = LabeledImageFolder(src)
    n = min(n, len(ds))
    if (
        dst.is_dir()
        and sum(1 for _ in dst.rglob("*.jpg")) + sum(1 for _ in dst.rglob("*.png")) == n
    ):
        return dst
    keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    for i in sorted(keep):
        path = Path(ds.paths[i])
        link = dst / ds.classes[ds.targets[i]] / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(path.resolve(), link)
    return dst


def knn_scores(train: dict, test: dict) -> dict[str, float]:
    scores = knn_classify(
        train["features"],
        train["labels"],
        test["features"],
        test["labels"],
        ks=KS,
        temperature=TEMPERATURE,
        num_classes=len(train["classes"]),
    )
    return {f"k{k}_top1": round(s["top1"], 2) for k, s in scores.items()}


def linear_scores(train: dict, test: dict) -> dict[str, float]:
    """L2 logistic regression, C chosen on a held-out tenth of train (dinolab.eval.logreg)."""
    res = logreg_holdout(train, test, Cs=LOGREG_CS)
    return {"linear_top1": round(res["top1"], 2), "linear_C": res["C"]}


def scores(train: dict, test: dict, linear: bool) -> dict:
    """k-NN (and, for final numbers, the linear probe) of one feature set, timed."""
    t0 = time.perf_counter()
    out = knn_scores(train, test)
    if linear:
        out.update(linear_scores(train, test))
    out.update(
        n_train=len(train["labels"]),
        n_test=len(test["labels"]),
        probe_seconds=round(time.perf_counter() - t0, 1),
    )
    return out


class Evaluator:
    """20/200-NN (and linear probe) of a backbone on (train, test) image folders, timed."""

    def __init__(self, cfg: Config, batch_size: int, workers: int):
        self.cfg, self.batch_size, self.workers = cfg, batch_size, workers

    def backbone(
        self, backbone: torch.nn.Module, train_root: Path, test_root: Path, linear: bool = False
    ) -> dict:
        t0 = time.perf_counter()
        kw = dict(
            image_size=self.cfg.data.global_size,
            batch_size=self.batch_size,
            num_workers=self.workers,
            device="cpu",
            precision="bf16",
            mean=tuple(self.cfg.data.mean),
            std=tuple(self.cfg.data.std),
            progress=False,
        )
        train = extract_features(backbone, str(train_root), **kw)
        test = extract_features(backbone, str(test_root), **kw)
        feature_s = time.perf_counter() - t0
        out = scores(train, test, linear)
        n_images = len(train["labels"]) + len(test["labels"])
        out.update(
            feature_images_per_s=round(n_images / feature_s, 1),
            eval_seconds=round(time.perf_counter() - t0, 1),
        )
        return out

    @staticmethod
    def pixels(train_root: Path, test_root: Path, linear: bool = False) -> dict:
        t0 = time.perf_counter()
        train, test = raw_pixel_features(train_root), raw_pixel_features(test_root)
        out = scores(train, test, linear)
        out.update(eval_seconds=round(time.perf_counter() - t0, 1))
        return out


# ----------------------------------------------------------------------------- budget
class BudgetClock:
    """Pretraining seconds used so far, across chunks; `progress()` is the fraction used."""

    def __init__(self, budget_s: float):
        self.budget_s, self.used_s, self._t0 = budget_s, 0.0, None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.used_s += time.perf_counter() - self._t0
        self._t0 = None

    def now(self) -> float:
        return self.used_s + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def progress(self) -> float:
        return min(self.now() / self.budget_s, 1.0)


def _cosine(p: float, start: float, end: float) -> float:
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * min(max(p, 0.0), 1.0)))


def budget_value(name: str, cfg: Config, p: float) -> float:
    """A schedule's value at fraction `p` of the budget: DINO's shapes (linear lr warm-up then
    cosine; cosine weight decay and teacher momentum; linear teacher-temperature warm-up), the
    warm-ups keeping the fraction of the run they have in the config (`x / train.epochs`)."""
    o, loss, epochs = cfg.optim, cfg.loss, max(cfg.train.epochs, 1)
    if name == "lr":
        peak = o.base_lr * cfg.train.batch_size * get_world_size() / 256.0
        w = o.warmup_epochs / epochs
        return peak * p / w if p < w else _cosine((p - w) / (1.0 - w), peak, o.min_lr)
    if name == "wd":
        return _cosine(p, o.weight_decay, o.weight_decay_end)
    if name == "momentum":
        return _cosine(p, o.momentum_teacher, o.momentum_teacher_end)
    if name == "teacher_temp":
        w = loss.teacher_temp_warmup_epochs / epochs
        if p >= w:
            return loss.teacher_temp
        return loss.teacher_temp_start + (loss.teacher_temp - loss.teacher_temp_start) * p / w
    raise KeyError(name)


class TimeSchedule:
    """Stands in for the trainer's per-step schedule array (`sched[it]`, `len(sched)`): the
    value is taken at the fraction of the wall-clock budget used, not at the step index, so
    the schedules end exactly when the budget does whatever the (shared) machine's speed."""

    def __init__(self, name: str, cfg: Config, clock: BudgetClock):
        self.name, self.cfg, self.clock = name, cfg, clock

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, it: int) -> float:
        return budget_value(self.name, self.cfg, self.clock.progress())


def run_chunk(cfg: Config, clock: BudgetClock, chunk_s: float, resume: bool) -> dict:
    """Train (or continue) the run for `chunk_s` seconds of the budget; returns timings."""
    clock.start()
    t0 = time.perf_counter()
    deadline = min(t0 + chunk_s, t0 + clock.budget_s - clock.used_s)
    trainer = Trainer(cfg, resume=resume)
    trainer.schedules = {
        k: TimeSchedule(k, cfg, clock) for k in ("lr", "wd", "momentum", "teacher_temp")
    }
    step_times: list[float] = []
    step_fn, done_fn = trainer._step, trainer._done

    def timed_step(*args, **kwargs):
        out = step_fn(*args, **kwargs)
        step_times.append(time.perf_counter())
        return out

    # Instance attributes only: the package code is left untouched.
    trainer._step = timed_step
    trainer._done = lambda: done_fn() or time.perf_counter() >= deadline
    step0 = trainer.global_step
    trainer.fit()
    clock.stop()
    gaps = np.diff(step_times)
    end_step, iters_per_epoch = trainer.global_step, trainer.iters_per_epoch
    # Stop the persistent loader workers here: collected later inside a forked eval worker they
    # print "can only test a child process" tracebacks.
    trainer.loader = None  # its iterator (and workers) go now, in this process
    gc.collect()
    return {
        "start_step": step0,
        "end_step": end_step,
        "steps": end_step - step0,
        "wall_s": round(time.perf_counter() - t0, 1),
        "iters_per_epoch": iters_per_epoch,
        "median_step_s": round(float(np.median(gaps)), 3) if len(gaps) else None,
        "progress": round(clock.progress(), 4),
        "lr_at_end": budget_value("lr", cfg, clock.progress()),
    }


# ----------------------------------------------------------------------------- report
def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    pts = result["curve"]
    start = result["baselines_subset"]["random init"]["k20_top1"]  # the step-0 teacher
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
    ax.set_xlabel("pretraining wall-clock minutes")
    ax.set_ylabel("20-NN top-1 (%)")
    ax.set_title(f"CIFAR-10 k-NN vs pretraining time ({result['preset']})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(result: dict) -> str:
    final_set = "full" if result.get("final_full") else "subset"
    base = result["baselines_full"] if final_set == "full" else result["baselines_subset"]
    dino = result.get("final_full") or result["curve"][-1]
    n = f"{dino['n_train']} / {dino['n_test']}"
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
    speed = [r for r in (*base.values(), dino) if "feature_images_per_s" in r]
    if speed:
        lines += [
            "",
            "Evaluation speed: feature pass "
            + ", ".join(f"{r['feature_images_per_s']:.0f}" for r in speed)
            + " images/s; k-NN + linear probe on the cached features "
            + ", ".join(f"{r['probe_seconds']:.1f}" for r in speed)
            + " s (random init, DINO).",
        ]
    curve = [
        "",
        "Accuracy vs pretraining time (eval subset "
        f"{result['curve'][0]['n_train']} / {result['curve'][0]['n_test']}):",
        "",
        "| train minutes | steps | images seen | 20-NN top-1 | 200-NN top-1 | eval s |",
        "|---|---|---|---|---|---|",
    ]
    for p in result["curve"]:
        curve.append(
            f"| {p['train_minutes']:.1f} | {p['step']} | {p['images_seen']} | "
            f"{p['k20_top1']:.2f} | {p['k200_top1']:.2f} | {p['eval_seconds']:.0f} |"
        )
    return "\n".join(lines + curve) + "\n"


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR-10 root with train/ and test/ folders")
    p.add_argument("--budget-minutes", type=float, default=20.0)
    p.add_argument("--preset", default="cifar10_vit_tiny")
    p.add_argument("--out", default="runs/quality")
    p.add_argument(
        "--eval-every-minutes",
        type=float,
        default=0.0,
        help="pretraining minutes between evaluations (0: budget / 5, at least 2)",
    )
    p.add_argument(
        "--eval-subset",
        default="10000,2000",
        help="train,test sizes of the seeded subset used for intermediate evals",
    )
    p.add_argument("--final-eval", choices=("full", "subset"), default="full")
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--eval-workers", type=int, default=1)
    p.add_argument(
        "--calibration-steps",
        type=int,
        default=6,
        help="steps of a throw-away run that measure the step rate (not counted)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0: torch's default). On a shared 2-core machine "
        "1 thread was 3.5x faster than 2 (OpenMP barriers under oversubscription)",
    )
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"
    if (run_dir / CHECKPOINT).exists():
        sys.exit(f"{run_dir} already holds a run: choose another --out or delete it.")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    budget_s = args.budget_minutes * 60.0
    every_s = (args.eval_every_minutes or max(2.0, args.budget_minutes / 5)) * 60.0
    cfg = load_config(
        args.preset,
        BENCH_DEFAULTS
        + list(args.overrides)
        + [f"data.path={data / 'train'}", f"out_dir={run_dir}"],
    )
    torch.manual_seed(cfg.train.seed)
    model_name = (
        f"{cfg.model.arch}/{cfg.model.patch_size} d{cfg.model.embed_dim or '-'}"
        f" L{cfg.model.depth or '-'}"
    )
    log(
        f"threads={torch.get_num_threads()} budget={args.budget_minutes} min, eval every "
        f"{every_s / 60:.1f} min; config:\n{to_yaml(cfg)}"
    )
    n_tr, n_te = (int(x) for x in args.eval_subset.split(","))
    sub_train = make_subset(data / "train", out / "eval_subset" / "train", n_tr, seed=0)
    sub_test = make_subset(data / "test", out / "eval_subset" / "test", n_te, seed=1)
    ev = Evaluator(cfg, args.eval_batch_size, args.eval_workers)
    result: dict = {
        "argv": sys.argv,
        "preset": args.preset,
        "overrides": args.overrides,
        "model": model_name,
        "config": asdict(cfg),
        "budget_minutes": args.budget_minutes,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "baselines_subset": {},
        "baselines_full": {},
        "curve": [],
        "chunks": [],
    }

    # Baselines: raw pixels, and the step-0 teacher (the run's architecture and init seed; the
    # teacher starts as a copy of the student, whose backbone is built first after seeding).
    random_backbone = random_init_backbone(cfg)
    result["baselines_subset"]["raw pixels"] = ev.pixels(sub_train, sub_test)
    result["baselines_subset"]["random init"] = ev.backbone(random_backbone, sub_train, sub_test)
    log(f"baselines (subset): {result['baselines_subset']}")

    # The trainer stops on the clock (train.epochs only sets the warm-up fractions, and the
    # budget is far below the preset's epochs: 100 CIFAR-10 epochs are 5M images).
    cfg.train.max_steps = 0
    clock = BudgetClock(budget_s)
    resume = False
    while clock.used_s < budget_s - 5.0:
        chunk_s = min(every_s, budget_s - clock.used_s)
        if budget_s - clock.used_s - chunk_s < 0.5 * every_s:  # no tiny last chunk: merge it
            chunk_s = budget_s - clock.used_s
        chunk = run_chunk(cfg, clock, chunk_s, resume=resume)
        resume = True
        result["chunks"].append(chunk)
        step, used = chunk["end_step"], clock.used_s
        t_eval = time.perf_counter()
        backbone, _ = load_run_backbone(run_dir)
        point = ev.backbone(backbone, sub_train, sub_test)
        point.update(
            step=step,
            train_minutes=round(used / 60, 2),
            images_seen=step * cfg.train.batch_size * get_world_size(),
        )
        result["curve"].append(point)
        log(
            f"{used / 60:.1f} min, step {step} ({chunk['median_step_s']} s/step): "
            f"20-NN {point['k20_top1']:.2f} 200-NN {point['k200_top1']:.2f} "
            f"(eval {time.perf_counter() - t_eval:.0f} s)"
        )
    result["train_seconds"] = round(clock.used_s, 1)
    result["steps"] = result["curve"][-1]["step"]

    if args.final_eval == "full":
        full_train, full_test = data / "train", data / "test"
        result["baselines_full"]["raw pixels"] = ev.pixels(full_train, full_test, linear=True)
        result["baselines_full"]["random init"] = ev.backbone(
            random_backbone, full_train, full_test, linear=True
        )
        backbone, _ = load_run_backbone(run_dir)
        final = ev.backbone(backbone, full_train, full_test, linear=True)
        final.update(
            step=result["steps"],
            train_minutes=round(clock.used_s / 60, 2),
            images_seen=result["steps"] * cfg.train.batch_size * get_world_size(),
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
