"""Training throughput: images/s, GFLOP per image, achieved GFLOP/s, MFU and peak RSS.

    python benchmarks/throughput.py --configs A B --precisions fp32 bf16 --steps 4 --rounds 3

One row per (config, precision), each measured in its own subprocess so that the peak RSS
(`resource.getrusage().ru_maxrss`) belongs to that configuration alone. A step is the
trainer's own `TrainStep` (dinolab/train/step.py: schedules applied, autocast
`DINOMetaArch.forward_loss`, backward, per-parameter clipping, last-layer freeze check, AdamW
step, EMA teacher update) on a synthetic batch with the collate layout, without a dataset.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` on one full step (teacher forward,
student forward, backward; matmuls, convolutions and attention kernels; element-wise work is
not counted, the usual MFU convention). The peak is the best GFLOP/s of large square matmuls
in the row's dtype (fp32 for fp32 rows, bf16 for bf16 rows) measured in the same process,
interleaved with the timed rounds, with the same thread count; the machine may be shared, so
images/s and the peak are both best-of-rounds, and MFU = achieved / peak.

Configs:
  A: preset `cifar10_vit_tiny`: ViT-tiny/4, 2x32 + 6x16 crops, 4096 prototypes, head hidden
     1024 (the preset's; `--head-hidden 2048` for the schema default), batch 64.
  B: preset `dino_vits16` with 6 local crops and batch 8: ViT-S/16, 2x224 + 6x96,
     65536 prototypes, head hidden 2048.
  C: preset `dinov2_vits14`, batch 4: ViT-S/14, 2x224 + 8x98, iBOT + KoLeo + Sinkhorn-Knopp,
     untied 131072-prototype heads, drop-path 0.4 computed by masking.
  D: C with efficient stochastic depth (`model.drop_path_impl=subset`) and packed crops.
  E: preset `cifar10_small_resnet` (issue 21's CPU recipe): small_resnet E256, 2x32 + 4x16,
     1024 prototypes, the preset's batch (32).

`--set key=value ...` adds config overrides to every row (e.g. `train.compile=true`);
`--procs 2` runs each row as 2 DDP processes over gloo through torchrun (the trainer's own
wrapping), splitting `--threads` between them; images/s and FLOPs are then the whole job's, and
the peak is the sum of the ranks' matmul peaks measured at the same time.

`--data` also times the data pipeline alone (one process, `--threads`) on synthetic JPEGs:
32 px -> 2x32 + 4x16, 64 px -> 2x32 + 6x16 and 224 px -> 2x224 + 6x96, decode + views +
collate in batches of 64, for both `data.augment_impl` values (pil: `MultiCropAugmentation`
per image; batched: decode per image, `BatchedMultiCrop` on the batch). images/s is given by
wall clock and by the process's CPU time (the fair ratio on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

CONFIGS = {
    "A": {
        "preset": "cifar10_vit_tiny",
        "overrides": ["train.batch_size=64"],
        "what": "ViT-tiny/4, 2x32+6x16, K=4096, batch 64",
    },
    "B": {
        "preset": "dino_vits16",
        "overrides": ["train.batch_size=8", "data.num_local_crops=6", "head.out_dim=65536"],
        "what": "ViT-S/16, 2x224+6x96, K=65536, batch 8",
    },
    # DINOv2 recipe (iBOT + KoLeo + Sinkhorn-Knopp, untied heads, LayerScale, drop-path 0.4)
    # on ViT-S/14 with the paper's crops; 4 images per step keeps a CPU step near a minute.
    "C": {
        "preset": "dinov2_vits14",
        "overrides": ["train.batch_size=4", "model.drop_path_impl=mask"],
        "what": "DINOv2 ViT-S/14, 2x224+8x98, iBOT+KoLeo+SK, batch 4",
    },
    "D": {
        "preset": "dinov2_vits14",
        "overrides": [
            "train.batch_size=4",
            "model.drop_path_impl=subset",
            "model.pack_sequences=true",
        ],
        "what": "C + efficient stochastic depth + packed crops",
    },
    # The CPU recipe of issue 21: a narrow ResNet on CIFAR-sized crops.
    "E": {
        "preset": "cifar10_small_resnet",
        "overrides": [],
        "what": "small_resnet E256, 2x32+4x16, K=1024, batch 32",
    },
}


# ------------------------------------------------------------------------- peak matmul
def matmul_peak(dtype: torch.dtype, sizes: tuple[int, ...], repeats: int) -> float:
    """Best GFLOP/s of n x n @ n x n matmuls in `dtype` over `sizes` and `repeats`.

    fp32 tries both CPU kernels the model may use (PyTorch's BLAS and oneDNN, see
    dinolab/models/layers/linear.py) and keeps the faster, so MFU is against the real peak.
    """
    from dinolab.models.layers.linear import onednn_available

    kernels = [lambda a, b, c: torch.mm(a, b, out=c)]
    if dtype == torch.float32 and onednn_available():
        kernels.append(
            lambda a, b, c: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
        )
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        c = torch.empty(n, n, dtype=dtype)
        for mm in kernels:
            mm(a, b, c)  # warm-up (packing buffers, oneDNN primitive cache)
            for _ in range(repeats):
                t0 = time.perf_counter()
                mm(a, b, c)
                dt = time.perf_counter() - t0
                best = max(best, 2 * n**3 / dt / 1e9)
        del a, b, c
    return best


# ------------------------------------------------------------------------- one config
def build_trainer(
    config: str,
    precision: str,
    head_hidden: int | None,
    attn_impl: str,
    extra: list[str],
    device: str = "cpu",
):
    """The trainer's own `TrainStep` at a steady-state step, as `step(batch, share=1.0)`.

    Steady state: after the last-layer freeze and the lr warm-up, so every parameter updates.
    """
    from dinolab.config.loader import load_config
    from dinolab.hardware import resolve_precision
    from dinolab.train.schedules import build_schedules
    from dinolab.train.step import TrainStep

    spec = CONFIGS[config]
    overrides = list(spec["overrides"]) + [
        f"train.precision={precision}",
        f"model.attn_impl={attn_impl}",
        f"train.device={device}",
        *extra,
    ]
    if head_hidden:
        overrides.append(f"head.hidden_dim={head_hidden}")
    cfg = load_config(spec["preset"], overrides)
    torch.manual_seed(0)
    chosen, _ = resolve_precision(precision, device)
    iters = 1000
    schedules = build_schedules(cfg, iters, cfg.train.batch_size)
    train_step = TrainStep(cfg, torch.device(device), chosen, schedules)
    train_step.model.train()
    epoch = cfg.head.freeze_last_layer_epochs
    it = min(int(cfg.optim.warmup_epochs * iters) + 1, len(schedules["lr"]) - 1)

    def step(batch: dict, share: float = 1.0) -> dict:
        return train_step(batch, it, epoch, share=share)

    return step, cfg


def synthetic_batch(cfg, generator: torch.Generator, device: str = "cpu") -> dict:
    from dinolab.data import IBOTBatchMasks

    b, d = cfg.train.batch_size, cfg.data
    glob = torch.randn(2 * b, 3, d.global_size, d.global_size, generator=generator)
    loc = torch.randn(d.num_local_crops * b, 3, d.local_size, d.local_size, generator=generator)
    batch = {"global_crops": glob.to(device), "local_crops": loc.to(device), "num_images": b}
    masks = IBOTBatchMasks.from_config(cfg)  # DINOv2: drawn by the loader, as in a real run
    if masks is not None:
        seeds = torch.randint(0, 2**62, (b,), generator=generator).tolist()
        batch["masks"] = masks(2 * b, seeds).to(device)
    return batch


def build_step(
    config: str,
    precision: str,
    overrides: list[str],
    attn_impl: str = "auto",
    device: str = "cpu",
):
    """One trainer step (`TrainStep`) on pre-made synthetic crops, as a no-argument callable.

    Calls alternate between two batches; `step.cfg` is the resolved config (batch size,
    attention kernel, ...). Used by vs_official.py and gpu_check.py.
    """
    trainer, cfg = build_trainer(config, precision, None, attn_impl, overrides, device)
    gen = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(cfg, gen, device) for _ in range(2)]
    calls = [0]

    def step() -> None:
        trainer(batches[calls[0] % 2])
        calls[0] += 1

    step.cfg = cfg
    return step


def step_flops(trainer, batch) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer(batch)
    return counter.get_total_flops()


def run_worker(args: argparse.Namespace) -> dict | None:
    """One row; under torchrun (--procs N) every rank steps, rank 0 reports for the job."""
    from dinolab import distributed as dist

    torch.set_num_threads(args.threads)
    dist.init_from_env("gloo", 600)
    world = dist.get_world_size()
    trainer, cfg = build_trainer(
        args.worker[0], args.worker[1], args.head_hidden, args.attn_impl, args.set or []
    )
    gen = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(cfg, gen) for _ in range(2)]
    flops = step_flops(trainer, batches[0])
    share = 1.0 / world  # equal per-process batches: each holds 1/world of the global batch
    for i in range(args.warmup):
        trainer(batches[i % 2], share=share)
    dtype = torch.bfloat16 if args.worker[1] == "bf16" else torch.float32
    step_times, peaks, rss_kib = [], [], None
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for i in range(args.steps):
            trainer(batches[i % 2], share=share)
        step_times.append((time.perf_counter() - t0) / args.steps)
        if rss_kib is None:  # before any peak matmul buffer: the training step's own peak
            rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if r < args.rounds - 1 or args.rounds == 1:
            peaks.append(matmul_peak(dtype, tuple(args.peak_sizes), args.peak_repeats))
    if len(peaks) < 2:
        peaks.append(matmul_peak(dtype, tuple(args.peak_sizes), args.peak_repeats))
    if dist.get_rank() > 0:
        return None
    b = cfg.train.batch_size * world  # images of the whole job per step
    flops *= world
    peaks = [p * world for p in peaks]  # every rank measured its own matmul peak at once
    best = min(step_times)
    return {
        "procs": world,
        "config": args.worker[0],
        "precision": args.worker[1],
        "batch": b,
        "head_hidden": cfg.head.hidden_dim,
        "attn_impl": cfg.model.attn_impl,
        "extra": " ".join(args.set or []),
        "flops_per_step": flops,
        "step_s_best": best,
        "step_s_median": statistics.median(step_times),
        "images_s": b / best,
        "images_s_median": b / statistics.median(step_times),
        "gflop_per_img": flops / b / 1e9,
        "gflops": flops / best / 1e9,
        "peak_gflops": max(peaks),
        "peaks": peaks,
        "mfu": flops / best / 1e9 / max(peaks),
        "peak_rss_mib": rss_kib / 1024,
    }


# ------------------------------------------------------------------------- data pipeline
def _jpeg_folder(root: Path, n_images: int, size: int, rng) -> None:
    """Smooth colour field + noise: compresses and decodes like a photo, not like noise."""
    import numpy as np
    from PIL import Image

    for i in range(n_images):
        base = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((size, size), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-20, 20, (size, size, 3))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(root / f"{i:04d}.jpg", quality=90)


def _time_batches(ds, augment, batch: int) -> tuple[float, float]:
    """(wall s, CPU s) of decode + views + collate of every image of ds, in batches."""
    from dinolab.data import collate_multicrop

    def run(n: int) -> None:
        for start in range(0, n, batch):
            samples = [ds[(i, i)] for i in range(start, min(n, start + batch))]
            collate_multicrop(samples, augment=augment)

    run(min(batch, len(ds)))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    run(len(ds))
    return time.perf_counter() - t0, time.process_time() - c0


def data_pipeline(n_images: int, threads: int, batch: int = 64) -> list[dict]:
    """images/s of decode + multi-crop + collate in one process, pil vs batched."""
    import numpy as np

    from dinolab.data.augment_batched import multicrop_pipeline
    from dinolab.data.datasets import UnlabeledImageFolder

    torch.set_num_threads(threads)
    cifar = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.243, 0.261]}
    specs = [(32, 32, 16, 4, cifar), (64, 32, 16, 6, cifar), (224, 224, 96, 6, {})]
    rows, rng = [], np.random.default_rng(0)
    for size, g, loc, n_local, norm in specs:
        with tempfile.TemporaryDirectory() as tmp:
            _jpeg_folder(Path(tmp), n_images, size, rng)
            base = {}
            for impl in ("pil", "batched"):
                data = argparse.Namespace(
                    global_size=g, local_size=loc, num_local_crops=n_local,
                    global_scale=[0.4, 1.0], local_scale=[0.05, 0.4], blur_p=[1.0, 0.1, 0.5],
                    solarize_p=0.2, augment_impl=impl,
                    **(norm or {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}),
                )  # fmt: skip
                transform, augment = multicrop_pipeline(data)
                ds = UnlabeledImageFolder(tmp, transform=transform)
                wall, cpu = _time_batches(ds, augment, batch)
                row = {
                    "input": f"{size} px JPEG",
                    "views": f"2x{g} + {n_local}x{loc}",
                    "impl": impl,
                    "images_s": len(ds) / wall,
                    "images_cpu_s": len(ds) / cpu,
                }
                base.setdefault("cpu", row["images_cpu_s"])
                row["speedup_cpu"] = row["images_cpu_s"] / base["cpu"]
                rows.append(row)
    return rows


# ------------------------------------------------------------------------- driver
def table(rows: list[dict]) -> str:
    lines = [
        "| config | precision | procs | images/s | GFLOP/img | GFLOP/s | peak GFLOP/s | MFU "
        "| peak RSS (rank 0) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']}: {CONFIGS[r['config']]['what']}"
            + (f", {r['extra']}" if r.get("extra") else "")
            + f" | {r['precision']} | {r.get('procs', 1)} "
            f"| {r['images_s']:.1f} | {r['gflop_per_img']:.2f} | {r['gflops']:.0f} "
            f"| {r['peak_gflops']:.0f} | {100 * r['mfu']:.1f}% | {r['peak_rss_mib']:.0f} MiB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["A", "B"], choices=sorted(CONFIGS))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (best is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before the rounds")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="in total")
    p.add_argument("--procs", type=int, default=1, help="processes (DDP over gloo via torchrun)")
    p.add_argument("--attn-impl", default="auto", choices=["auto", "sdpa", "math"])
    p.add_argument("--head-hidden", type=int, default=None, help="override head.hidden_dim")
    p.add_argument("--peak-sizes", type=int, nargs="+", default=[2048, 4096])
    p.add_argument("--peak-repeats", type=int, default=3)
    p.add_argument("--data", action="store_true", help="also time the data pipeline")
    p.add_argument("--data-images", type=int, default=300)
    p.add_argument("--no-model", action="store_true", help="only the data pipeline")
    p.add_argument("--json", type=Path, default=None, help="write all rows to this file")
    p.add_argument(
        "--set", nargs="+", metavar="KEY=VALUE", help="extra overrides, e.g. train.compile=true"
    )
    p.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        row = run_worker(args)
        if row is not None:
            print("RESULT " + json.dumps(row), flush=True)
        return

    from dinolab.hardware import describe

    hw = describe()
    print(
        f"CPU {hw['model']} ({platform.machine()}, {hw['cores']} cores, torch capability "
        f"{hw['capability']}); native bf16: {'yes' if hw['native_bf16'] else 'no'} "
        f"({hw['bf16_reason']}); torch {torch.__version__}, {args.threads} threads; "
        f"attn_impl={args.attn_impl}",
        flush=True,
    )
    rows = []
    if not args.no_model:
        for config in args.configs:
            for precision in args.precisions:
                cmd = [sys.executable, __file__, "--worker", config, precision]
                if args.procs > 1:  # gloo DDP, the trainer's own path; threads split over ranks
                    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
                    cmd = [*torchrun, f"--nproc-per-node={args.procs}", *cmd[1:]]
                threads = max(1, args.threads // args.procs)
                for flag in ("steps", "rounds", "warmup", "attn_impl", "peak_repeats"):
                    cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
                cmd += ["--threads", str(threads)]
                cmd += ["--peak-sizes", *map(str, args.peak_sizes)]
                if args.head_hidden:
                    cmd += ["--head-hidden", str(args.head_hidden)]
                if args.set:
                    cmd += ["--set", *args.set]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"worker {config}/{precision} failed:\n{out.stderr}")
                line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
                row = json.loads(line[len("RESULT ") :])
                rows.append(row)
                print(
                    f"  {config} {precision}: {row['images_s']:.1f} img/s "
                    f"(median {row['images_s_median']:.1f}), MFU {100 * row['mfu']:.1f}%, "
                    f"peaks {[round(x) for x in row['peaks']]}",
                    flush=True,
                )
        print()
        print(table(rows))
    data_rows = []
    if args.data or args.no_model:
        data_rows = data_pipeline(args.data_images, args.threads)
        print()
        print(
            "| data pipeline (decode + multi-crop + collate, 1 process) | views | "
            "data.augment_impl | images/s (wall) | images/s (CPU time) | vs pil (CPU) |"
        )
        print("|---|---|---|---:|---:|---:|")
        for r in data_rows:
            print(
                f"| {r['input']} | {r['views']} | {r['impl']} | {r['images_s']:.1f} "
                f"| {r['images_cpu_s']:.1f} | {r['speedup_cpu']:.2f}x |"
            )
    if args.json:
        args.json.write_text(json.dumps({"model": rows, "data": data_rows}, indent=2))


if __name__ == "__main__":
    main()
