"""KoLeo regulariser (Sablayrolles et al. 2019), DINOv2's spreader of CLS features.

L = -(1/n) sum_i log(min_{j != i} ||x_i - x_j||) on L2-normalised features: it pushes each
feature away from its nearest neighbour in the batch, which spreads the features uniformly and
helped instance retrieval in DINOv2. Computed per process (as DINOv2 does); the nearest
neighbour is searched without gradient and in float32, the distance keeps its gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def koleo_loss(x: Tensor, eps: float = 1e-8) -> Tensor:
    """KoLeo of the rows of x [n, d]; 0 (with a gradient path) when n < 2, never inf or NaN."""
    if x.ndim != 2:
        raise ValueError(f"koleo_loss expects features [n, dim], got shape {tuple(x.shape)}.")
    if x.shape[0] < 2:
        return x.float().sum() * 0.0  # one image has no neighbour: nothing to spread
    with torch.autocast(device_type=x.device.type, enabled=False):
        z = F.normalize(x.float(), p=2, dim=-1, eps=eps)
        with torch.no_grad():
            sim = z @ z.t()
            sim.fill_diagonal_(-2.0)  # below any cosine: a point is not its own neighbour
            nearest = sim.argmax(dim=1)
        dist = F.pairwise_distance(z, z[nearest], p=2, eps=eps)
        return -torch.log(dist + eps).mean()
