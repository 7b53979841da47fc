"""Multi-head self-attention with a fused qkv projection and a choice of kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dinolab.models.layers.linear import Linear

ATTN_IMPLS = ("auto", "sdpa", "math")


def auto_uses_sdpa(device_type: str, dtype: torch.dtype) -> bool:
    """The `auto` kernel. Measured on 2 cores of a Zen 5 EPYC (benchmarks/RESULTS.md), ViT-tiny
    and ViT-S crop shapes, forward + backward: in bf16 the explicit kernel takes 1/3 of SDPA's
    time; in fp32 (native ISA, and capped to AVX2) the two are within 10%, SDPA slightly ahead
    on the longer sequences. GPUs get SDPA's flash / memory-efficient kernels."""
    return device_type != "cpu" or dtype not in (torch.bfloat16, torch.float16)


def attention_note(attn_impl: str, device: torch.device, precision: str) -> str:
    """What `attn_impl` means for a run on `device` at `precision`, in words (for the log)."""
    if attn_impl != "auto":
        return f"{attn_impl} (set explicitly)"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    kernel = "sdpa" if auto_uses_sdpa(device.type, dtype) else "math (explicit softmax)"
    return f"auto -> {kernel} for {precision} on {device.type}"


class Attention(nn.Module):
    """Self-attention laid out like DINO / DINOv2 (`qkv`, `proj`) so checkpoints load as is.

    `attn_impl` picks the kernel: "sdpa" is `F.scaled_dot_product_attention` (flash /
    memory-efficient on GPUs), "math" the explicit softmax(q k^T / sqrt(d)) v; "auto" chooses
    per call (`auto_uses_sdpa`): math for bf16 / fp16 on CPU, sdpa otherwise.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_impl: str = "auto",
        linear_kernel: str = "auto",
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}.")
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl {attn_impl!r} is unknown; use one of {ATTN_IMPLS}.")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attn_impl = attn_impl
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias, kernel=linear_kernel)
        self.proj = Linear(dim, dim, kernel=linear_kernel)

    def _use_sdpa(self, qkv: torch.Tensor) -> bool:
        if self.attn_impl == "auto":
            return auto_uses_sdpa(qkv.device.type, qkv.dtype)
        return self.attn_impl == "sdpa"

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> torch.Tensor:
        """[B, N, D] -> [B, N, D]; with `return_attention`, the softmax weights [B, h, N, N].

        The weights are what attention maps are drawn from; that path always uses the
        explicit kernel since SDPA does not expose them.
        """
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim)
        if return_attention:
            return self._attend(qkv, use_sdpa=False, return_attention=True)
        return self.proj(self._attend(qkv, self._use_sdpa(qkv)).reshape(B, N, C))

    def forward_packed(self, x: torch.Tensor, segments: list[tuple[int, int]]) -> torch.Tensor:
        """Tokens of several batches packed as one sequence [T, D] -> [T, D].

        `segments` lists (batch, tokens) of each packed batch, in order. The projections run
        once over all T tokens; attention is block-diagonal (each image attends to its own
        tokens only), computed per segment, so the result equals separate `forward` calls.
        """
        C = x.shape[-1]
        qkv = self.qkv(x)
        use_sdpa, outs, start = self._use_sdpa(qkv), [], 0
        for b, n in segments:
            chunk = qkv[start : start + b * n].view(b, n, 3, self.num_heads, self.head_dim)
            outs.append(self._attend(chunk, use_sdpa).reshape(b * n, C))
            start += b * n
        if start != x.shape[0]:
            raise ValueError(f"segments cover {start} tokens but {x.shape[0]} were packed.")
        return self.proj(outs[0] if len(outs) == 1 else torch.cat(outs))

    def _attend(
        self, qkv: torch.Tensor, use_sdpa: bool, return_attention: bool = False
    ) -> torch.Tensor:
        """qkv [B, N, 3, h, d] -> attention output [B, N, h, d] (or weights [B, h, N, N])."""
        B, N, _, h, d = qkv.shape
        if use_sdpa:
            # SDPA takes the strided q, k, v views and returns [B, h, N, d] laid out as
            # [B, N, h, d] in memory, so neither side needs a copy.
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        # One copy into [3, B*h, N, d]: the batched matmuls then take contiguous operands
        # (instead of one hidden copy per operand), and the 1/sqrt(d) scale is applied by the
        # q k^T GEMM itself (alpha) rather than by a pass over q.
        q, k, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, B * h, N, d).unbind(0)
        attn = torch.baddbmm(
            q.new_zeros(()).expand(B * h, N, N), q, k.transpose(1, 2), beta=0.0, alpha=self.scale
        )
        attn = attn.softmax(dim=-1)
        if return_attention:
            return attn.view(B, h, N, N)
        return torch.bmm(attn, v).view(B, h, N, d).transpose(1, 2)
