"""The DINO head's prototype layer under bf16 autocast vs kept in fp32 (issue 13 item 10).

Rounding error of the prototype scores (unit-norm bottleneck x unit-norm prototypes) against an
fp64 reference, for bf16 autocast (dinolab), fp16 inputs with fp32 accumulation (the official
DINOv2 FSDP fp16 path) and fp32; and the forward+backward time of the layer in bf16 vs fp32.
Run: python benchmarks/head_precision.py [--rows 80 --out-dim 65536 --dim 256 --reps 20]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from dinolab.models.heads import WeightNormLinear


def scores(layer: WeightNormLinear, x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "fp64":
        v, g = layer.weight_v.double(), layer.weight_g.double()
        return F.linear(x.double(), v * (g / v.norm(dim=1, keepdim=True)))
    if mode == "fp16":  # fp16 operands, fp32 accumulation (what the fp16 GEMM does)
        return F.linear(x.half().float(), layer.weight_v.half().float()) * layer.row_scale().t()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
        return layer(x).float()


def error_table(layer: WeightNormLinear, x: torch.Tensor, temp: float) -> None:
    ref = scores(layer, x, "fp64")
    ref_logp = F.log_softmax(ref / temp, dim=-1)
    print(f"| path | rms score error | max score error | max log-softmax error at T={temp} |")
    print("|---|---:|---:|---:|")
    for mode in ("fp32", "fp16", "bf16"):
        s = scores(layer, x, mode).double()
        err = s - ref
        logp = F.log_softmax(s / temp, dim=-1)
        print(f"| {mode} | {err.pow(2).mean().sqrt():.2e} | {err.abs().max():.2e} | "
              f"{(logp - ref_logp).abs().max():.2e} |")  # fmt: skip


def time_layer(layer: WeightNormLinear, x: torch.Tensor, fp32: bool, reps: int) -> float:
    """Median seconds of forward + backward under bf16 autocast, the layer in fp32 or not."""
    times = []
    for i in range(reps + 3):
        xi = x.detach().to(torch.bfloat16).requires_grad_()
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if fp32:
                with torch.autocast("cpu", enabled=False):
                    out = layer(xi.float())
            else:
                out = layer(xi)
        out.float().sum().backward()
        if i >= 3:
            times.append(time.perf_counter() - t0)
        layer.zero_grad(set_to_none=True)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=80)  # 8 images x (2 global + 8 local) crops
    p.add_argument("--out-dim", type=int, default=65536)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--temp", type=float, default=0.1)
    a = p.parse_args()
    torch.manual_seed(0)
    layer = WeightNormLinear(a.dim, a.out_dim)
    x = F.normalize(torch.randn(a.rows, a.dim), dim=-1)  # the head's L2-normalised bottleneck
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; rows {a.rows}, {a.dim} -> {a.out_dim}")  # fmt: skip
    error_table(layer, x, a.temp)
    bf16 = time_layer(layer, x, fp32=False, reps=a.reps)
    fp32 = time_layer(layer, x, fp32=True, reps=a.reps)
    print(f"\nfwd+bwd of the prototype layer: bf16 {bf16 * 1e3:.1f} ms, fp32 {fp32 * 1e3:.1f} ms "
          f"({fp32 / bf16:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
