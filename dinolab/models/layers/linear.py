"""`Linear`: nn.Linear whose fp32 CPU matmuls may run on oneDNN instead of the BLAS.

PyTorch sends fp32 `F.linear` on CPU to its BLAS (MKL in the x86 wheels) and only bf16 / fp16
to oneDNN. On the AMD CPUs measured here oneDNN's fp32 GEMM was faster for the thin matrices of
ViT blocks (benchmarks/linear_kernels.py, RESULTS.md: 1.64x on an AVX-512 EPYC, where MKL keeps
to its AVX2 code; equal with every library capped to AVX2), so `kernel="onednn"` (and `auto`)
compute forward and both backward GEMMs with `torch.ops.mkldnn._linear_pointwise`. Under
autocast, on other devices or dtypes, and under tracing / compile / export it is plain
`F.linear`. State-dict keys are
nn.Linear's.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

LINEAR_KERNELS = ("auto", "torch", "onednn")


@functools.cache
def onednn_available() -> bool:
    """Whether this torch build has the oneDNN linear op (CPU builds with mkldnn do)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.ones(2, 3)
        torch.ops.mkldnn._linear_pointwise(x, torch.ones(4, 3), None, "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return True


def _register_flops() -> None:
    """Count the oneDNN op in `torch.utils.flop_counter.FlopCounterMode` (benchmarks' MFU)."""
    from torch.utils.flop_counter import register_flop_formula

    @register_flop_formula(torch.ops.mkldnn._linear_pointwise)
    def _flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        rows = 1
        for d in x_shape[:-1]:
            rows *= d
        return 2 * rows * x_shape[-1] * w_shape[0]


if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
    _register_flops()


def _mm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x [M, K] @ w[N, K]^T (+ b) on oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).contiguous()
        ctx.save_for_backward(x2, weight)
        ctx.shape, ctx.has_bias = shape, bias is not None
        return _mm(x2, weight, bias).view(*shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x2, weight = ctx.saved_tensors
        g = grad.reshape(-1, weight.shape[0]).contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _mm(g, weight.t().contiguous(), None).view(ctx.shape)
        if ctx.needs_input_grad[1]:
            gw = _mm(g.t().contiguous(), x2.t().contiguous(), None)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def _tracing() -> bool:
    """Exporters and compilers see plain `F.linear` (ONNX has no oneDNN op; inductor fuses)."""
    return (
        torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


class Linear(nn.Linear):
    """nn.Linear with a choice of fp32 CPU kernel (`kernel`: auto = onednn | torch | onednn)."""

    def __init__(self, *args, kernel: str = "auto", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if kernel not in LINEAR_KERNELS:
            raise ValueError(f"linear kernel {kernel!r} is unknown; use one of {LINEAR_KERNELS}.")
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.kernel != "torch"
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and not _tracing()
            and onednn_available()
        ):
            return _OneDNNLinear.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)
