"""fp32 GEMM kernels on CPU: PyTorch's BLAS path (MKL) against oneDNN, on ViT layer shapes.

    python benchmarks/linear_kernels.py [--threads 2] [--rounds 5]

Forward + backward (input and weight gradients) of one linear layer, timed as the training
step runs it, for the token counts of the throughput configs A (ViT-tiny/4, batch 64, 2x32 +
6x16 crops) and B (ViT-S/16, batch 8, 2x224 + 6x96). Both kernels run interleaved in the same
process, best of `--rounds`; the table says which wins per shape. To see the AVX2-only path on
an AVX-512 machine, cap the ISA of all three libraries:
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`.
"""

from __future__ import annotations

import argparse
import time

import torch

from dinolab.hardware import describe
from dinolab.models.layers.linear import Linear, onednn_available

# (name, tokens M, in K, out N): qkv, proj, fc1, fc2 of each config's global and local crops
SHAPES = [
    ("A qkv  (globals)", 128 * 65, 192, 576),
    ("A fc1  (globals)", 128 * 65, 192, 768),
    ("A fc2  (globals)", 128 * 65, 768, 192),
    ("A qkv  (locals)", 384 * 17, 192, 576),
    ("B qkv  (globals)", 16 * 197, 384, 1152),
    ("B fc1  (globals)", 16 * 197, 384, 1536),
    ("B fc2  (globals)", 16 * 197, 1536, 384),
    ("B fc1  (locals)", 48 * 37, 384, 1536),
]


def time_kernel(layer: Linear, x: torch.Tensor, reps: int) -> float:
    def run() -> None:
        layer(x).sum().backward()

    run()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    return (time.perf_counter() - t0) / reps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not onednn_available():
        raise SystemExit("this torch build has no oneDNN linear op: nothing to compare")
    hw = describe()
    print(
        f"CPU {hw['model']}, torch capability {hw['capability']}, {args.threads} threads, "
        f"torch {hw['torch']}; fp32 forward + backward, best of {args.rounds}\n"
    )
    print("| layer | M x K x N | torch (BLAS) GFLOP/s | oneDNN GFLOP/s | oneDNN / torch |")
    print("|---|---|---:|---:|---:|")
    ratios = []
    for name, m, k, n in SHAPES:
        torch.manual_seed(0)
        layers = {kern: Linear(k, n, kernel=kern) for kern in ("torch", "onednn")}
        layers["onednn"].load_state_dict(layers["torch"].state_dict())
        x = torch.randn(m, k, requires_grad=True)
        best = {kern: float("inf") for kern in layers}
        for _ in range(args.rounds):
            for kern, layer in layers.items():  # interleaved: both see the same machine state
                best[kern] = min(best[kern], time_kernel(layer, x, args.reps))
        flops = 6 * m * k * n
        gt, go = flops / best["torch"] / 1e9, flops / best["onednn"] / 1e9
        ratios.append(go / gt)
        print(f"| {name} | {m}x{k}x{n} | {gt:.0f} | {go:.0f} | {go / gt:.2f}x |")
    geo = torch.tensor(ratios).log().mean().exp().item()
    print(f"\ngeometric mean oneDNN / torch: {geo:.2f}x")


if __name__ == "__main__":
    main()
