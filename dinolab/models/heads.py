"""The DINO projection head: MLP -> L2-normalised bottleneck -> weight-normalised prototypes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormLinear(nn.Module):
    """Bias-free linear layer with weight = g * v / ||v|| (one norm per output row).

    Written out rather than `torch.nn.utils.weight_norm` (deprecated) or parametrizations
    (which rename the keys), so the state dict holds `weight_g` [out, 1] and `weight_v`
    [out, in] exactly like the published DINO checkpoints.
    """

    def __init__(self, in_features: int, out_features: int, fp32: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.fp32 = fp32  # run the matmul in float32 even under autocast
        self.weight_g = nn.Parameter(torch.ones(out_features, 1))
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        # nn.Linear's default init, as DINO's head leaves the last layer untouched.
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))

    def row_scale(self) -> torch.Tensor:
        """g / ||v|| per output row, [out, 1], float32."""
        v = self.weight_v
        return self.weight_g / v.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight [out, in]; each row has norm weight_g."""
        return self.weight_v * self.row_scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x @ (v * g / ||v||)^T computed as (x @ v^T) * (g / ||v||)^T.

        Scaling the [rows, out] scores instead of the [out, in] weight avoids materialising
        (and, under autocast, re-casting) the normalised weight and its gradient: for 65536
        prototypes that is several passes over 16.7M elements per forward and backward.
        Under bf16 autocast the scores come out in float32 (the loss wants float32 anyway);
        with `fp32` the matmul itself runs in float32 (autocast off for it).
        """
        if self.fp32 and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return F.linear(x.float(), self.weight_v.float()) * self.row_scale().t()
        return F.linear(x, self.weight_v) * self.row_scale().t()

    def extra_repr(self) -> str:
        fp32 = ", fp32=True" if self.fp32 else ""
        return f"in_features={self.in_features}, out_features={self.out_features}{fp32}"


class DINOHead(nn.Module):
    """DINO head (Caron et al. 2021), also DINOv2's DINO and iBOT heads.

    The L2 bottleneck and the unit-norm prototypes (`norm_last_layer`, gain frozen at 1)
    bound the logits, which keeps the early training stable. `last_layer` is exposed so the
    trainer can drop its gradients during the first epoch(s).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        norm_last_layer: bool = True,
        use_bn: bool = False,
        last_layer_fp32: bool = False,
    ) -> None:
        super().__init__()
        if nlayers < 1:
            raise ValueError(f"head nlayers must be >= 1, got {nlayers}.")
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = []
            dims = [in_dim] + [hidden_dim] * (nlayers - 1)
            for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
                layers.append(nn.Linear(d_in, d_out))
                if use_bn:
                    layers.append(nn.BatchNorm1d(d_out))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, fp32=last_layer_fp32)
        self.last_layer.weight_g.requires_grad = not norm_last_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, in_dim] -> prototype scores [B, out_dim]."""
        x = self.mlp(x)
        # Norm in float32: in bf16 the sum of squares loses precision; eps guards zero rows.
        x = F.normalize(x.float(), dim=-1, p=2, eps=1e-6).to(x.dtype)
        return self.last_layer(x)
