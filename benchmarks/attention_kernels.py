"""Attention kernels on CPU: SDPA against the explicit softmax(q k^T) v, fp32 and bf16.

    python benchmarks/attention_kernels.py [--threads 2]

Forward + backward of dinolab's `Attention` (fused qkv, proj) with `attn_impl` sdpa and math,
interleaved in one process, best of `--rounds`, on the crop shapes of the throughput configs A
(ViT-tiny/4: 65 and 17 tokens) and B (ViT-S/16: 197 and 37 tokens). `attn_impl=auto` follows
this table (dinolab/models/layers/attention.py). For the AVX2-only path on an AVX-512 machine:
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2` (bf16 rows are
then emulated and slow).
"""

from __future__ import annotations

import argparse
import time

import torch

from dinolab.hardware import describe
from dinolab.models.layers.attention import Attention, auto_uses_sdpa

SHAPES = [  # (name, batch, tokens, dim, heads)
    ("A globals", 128, 65, 192, 3),
    ("A locals", 384, 17, 192, 3),
    ("B globals", 16, 197, 384, 6),
    ("B locals", 48, 37, 384, 6),
]


def time_impl(attn: Attention, x: torch.Tensor, bf16: bool, reps: int) -> float:
    def run() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            y = attn(x)
        y.float().sum().backward()

    run()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    return (time.perf_counter() - t0) / reps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    hw = describe()
    print(
        f"CPU {hw['model']}, torch capability {hw['capability']}, native bf16: "
        f"{hw['native_bf16']}, {args.threads} threads, torch {hw['torch']}; forward + backward "
        f"ms, best of {args.rounds}\n"
    )
    print("| shape | precision | sdpa ms | math ms | faster | auto picks |")
    print("|---|---|---:|---:|---|---|")
    for name, b, n, d, h in SHAPES:
        for precision in args.precisions:
            bf16 = precision == "bf16"
            torch.manual_seed(0)
            attn = Attention(d, h, attn_impl="sdpa")
            x = torch.randn(b, n, d, requires_grad=True)
            best = {"sdpa": float("inf"), "math": float("inf")}
            for _ in range(args.rounds):
                for impl in best:
                    attn.attn_impl = impl
                    best[impl] = min(best[impl], time_impl(attn, x, bf16, args.reps))
            auto = (
                "sdpa"
                if auto_uses_sdpa("cpu", torch.bfloat16 if bf16 else torch.float32)
                else "math"
            )
            faster = min(best, key=best.get)
            print(
                f"| {name} [{b}, {n}, {d}] | {precision} | {best['sdpa'] * 1e3:.1f} | "
                f"{best['math'] * 1e3:.1f} | {faster} | {auto} |"
            )


if __name__ == "__main__":
    main()
