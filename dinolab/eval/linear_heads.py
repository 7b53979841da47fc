"""A grid of linear probes trained together, as DINOv2's linear evaluation does.

Every (feature variant, learning rate) pair gets its own `nn.Linear`; one batch of frozen
features feeds all of them, and the summed loss trains each head exactly as if it were alone
(the heads share no parameter and the features carry no gradient). So a whole lr x variant
sweep costs one pass over the data instead of one pass per setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinolab.eval.features import select_variant


@dataclass(frozen=True)
class Variant:
    """Probe input: CLS of the last `n_blocks` blocks, plus average-pooled patches if `avgpool`."""

    n_blocks: int
    avgpool: bool = False

    @property
    def name(self) -> str:
        return f"blocks{self.n_blocks}{'+avgpool' if self.avgpool else ''}"

    @classmethod
    def parse(cls, text: str) -> Variant:
        """'4' -> 4 blocks; '1+avgpool' -> last block + average-pooled patches."""
        n, _, rest = text.partition("+")
        if not n.isdigit() or int(n) < 1 or rest not in ("", "avgpool"):
            raise ValueError(
                f"Bad feature variant '{text}': write N or N+avgpool, e.g. 4, 1+avgpool."
            )
        return cls(int(n), rest == "avgpool")


def default_variants(backbone: nn.Module) -> list[Variant]:
    """DINO's choices (4 blocks for ViT-S, 1 block + avgpool for ViT-B) and their neighbours."""
    depth = getattr(backbone, "n_blocks", 1) if hasattr(backbone, "get_intermediate_layers") else 1
    ns = sorted({1, min(4, depth)})
    return [Variant(n, pool) for n in ns for pool in (False, True)]


class LinearHeadGrid(nn.Module):
    """One linear classifier per (variant, base lr) on rows stored in the `stored` layout.

    The heads of one variant share their input, so their weights are stacked ([lrs, C, in])
    and run as one batched matmul; SGD with momentum is applied by hand with one lr per head
    (exactly torch.optim.SGD's update, dampening 0), which keeps hundreds of heads cheap.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        variants: list[Variant],
        lrs: list[float],
        stored: tuple[int, bool],
    ) -> None:
        super().__init__()
        self.stored, self.variants, self.lrs = stored, list(variants), [float(x) for x in lrs]
        self.weight, self.bias = nn.ParameterDict(), nn.ParameterDict()
        for v in self.variants:
            in_dim = dim * (v.n_blocks + int(v.avgpool))
            w = torch.randn(len(lrs), num_classes, in_dim) * 0.01  # DINO's init: N(0, 0.01)
            self.weight[v.name.replace("+", "_")] = nn.Parameter(w)
            self.bias[v.name.replace("+", "_")] = nn.Parameter(torch.zeros(len(lrs), num_classes))
        self.names = [f"{v.name}_lr{lr:g}" for v in self.variants for lr in self.lrs]
        self._sgd: dict | None = None

    def head(self, name: str) -> tuple[Tensor, Tensor]:
        """(weight [C, in], bias [C]) of one head, as views into the stacked parameters."""
        vi, li = divmod(self.names.index(name), len(self.lrs))
        key = self.variants[vi].name.replace("+", "_")
        return self.weight[key][li], self.bias[key][li]

    def forward(self, rows: Tensor) -> Tensor:
        """Logits [B, heads, C], heads in the order of `self.names`."""
        out = []
        for v in self.variants:
            key = v.name.replace("+", "_")
            x = select_variant(rows, self.stored, v.n_blocks, v.avgpool)
            out.append(torch.einsum("bi,lci->blc", x, self.weight[key]) + self.bias[key])
        return torch.cat(out, dim=1)

    def init_sgd(self, lr_scale: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        """SGD state: per-head lr = base lr * lr_scale (DINOv2: batch / 256), cosine to 0."""
        lr = torch.tensor(self.lrs, device=next(self.parameters()).device) * lr_scale
        self._sgd = {"lr": lr, "momentum": momentum, "wd": weight_decay, "buf": {}}

    def step(self, rows: Tensor, labels: Tensor, progress: float) -> float:
        """One SGD step of every head at cosine position `progress` in [0, 1]; mean loss."""
        if self._sgd is None:
            raise RuntimeError("call init_sgd() before step()")
        logits = self(rows)  # [B, H, C]
        heads = logits.shape[1]
        target = labels[:, None].expand(-1, heads)
        loss = F.cross_entropy(logits.permute(0, 2, 1), target, reduction="sum") / len(labels)
        self.zero_grad(set_to_none=True)
        loss.backward()
        sgd, cos = self._sgd, 0.5 * (1.0 + math.cos(math.pi * progress))
        with torch.no_grad():
            for p in self.parameters():
                d = p.grad + sgd["wd"] * p if sgd["wd"] else p.grad
                buf = sgd["buf"].get(p)
                buf = d.clone() if buf is None else buf.mul_(sgd["momentum"]).add_(d)
                sgd["buf"][p] = buf
                lr = (sgd["lr"] * cos).view(-1, *[1] * (p.dim() - 1))
                p.sub_(lr * buf)
        return float(loss.detach()) / heads

    @torch.no_grad()
    def evaluate(self, rows: Tensor, labels: Tensor, batch_size: int = 1024) -> dict[str, dict]:
        """Top-1 / top-5 (percent) of every head, with its variant and base lr."""
        device = next(self.parameters()).device
        hits = torch.zeros(len(self.names), 2)
        for s in range(0, rows.shape[0], batch_size):
            z = self(rows[s : s + batch_size].to(device, torch.float32))
            y = labels[s : s + batch_size].to(device)
            top = z.topk(min(5, z.shape[2]), dim=2).indices == y[:, None, None]
            hits += torch.stack([top[..., 0].sum(0), top.any(2).sum(0)], 1).float().cpu()
        total = rows.shape[0]
        return {
            name: {
                "variant": self.variants[i // len(self.lrs)].name,
                "lr": self.lrs[i % len(self.lrs)],
                "top1": 100 * float(hits[i, 0]) / total,
                "top5": 100 * float(hits[i, 1]) / total,
            }
            for i, name in enumerate(self.names)
        }


def select_best(heads: dict[str, dict]) -> str:
    """The head with the best val top-1; among equals the first (the smaller lr)."""
    return max(heads, key=lambda n: heads[n]["top1"])


def train_on_features(
    grid: LinearHeadGrid,
    rows: Tensor,
    labels: Tensor,
    epochs: int = 100,
    batch_size: int = 256,
    seed: int = 0,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> dict:
    """Fast mode: no augmentation, every head trained on the same cached rows for many epochs."""
    device = next(grid.parameters()).device
    grid.init_sgd(batch_size / 256, momentum, weight_decay)
    g = torch.Generator().manual_seed(seed)
    n = rows.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    step, loss = 0, float("nan")
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            x = rows[idx].to(device, torch.float32)
            loss = grid.step(x, labels[idx].to(device), step / steps)
            step += 1
    return {"steps": step, "final_loss": loss}
