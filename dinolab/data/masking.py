"""iBOT / BEiT block masks for the student's global crops (DINOv2).

Each masked image gets rectangles of about `min_patches` patches or more, with aspect ratios
drawn log-uniformly in `aspect`, added until the image's target count is reached (the last,
smaller ones top it up, as in facebookresearch/dinov2's MaskingGenerator) or no rectangle fits.
Only `probability` of the images are masked; their targets spread evenly over `ratio` (DINOv2's
collate: one stratum of the ratio range per masked image), the rest stay unmasked.
All randomness comes from a `torch.Generator` (or torch's global CPU RNG); `IBOTBatchMasks`
seeds it from the batch's per-sample seeds, so the masks, and therefore resumed runs, are
reproducible without any RNG state.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch

from dinolab.config.schema import Config


class BlockMaskGenerator:
    """Bool masks [n, grid * grid] (True = masked) for a square patch grid."""

    def __init__(
        self,
        grid: int,
        min_patches: int = 4,
        aspect: Sequence[float] = (0.3, 1 / 0.3),
        max_block_fraction: float = 0.5,
    ) -> None:
        if grid < 1 or min_patches < 1:
            raise ValueError(f"mask grid {grid} and min_patches {min_patches} must be >= 1.")
        if len(aspect) != 2 or not 0 < aspect[0] <= aspect[1]:
            raise ValueError(f"ibot.mask_aspect={list(aspect)} must be [min, max] with 0 < min.")
        self.grid = grid
        self.num_patches = grid * grid
        self.min_patches = min_patches
        self.max_block = max(min_patches, int(max_block_fraction * self.num_patches))
        self.log_aspect = (math.log(aspect[0]), math.log(aspect[1]))

    def _uniform(self, lo: float, hi: float, g: torch.Generator | None) -> float:
        return lo + (hi - lo) * torch.rand((), generator=g).item()

    def _add_block(self, mask: torch.Tensor, budget: int, g: torch.Generator | None) -> int:
        """Mask one rectangle of new patches (at most `budget`); returns how many were added.

        The area is drawn between `min_patches` and the budget, also when the budget is the
        smaller (the last blocks then top the mask up with 1-3 patches), and a rounded block
        is kept whatever its size: the official generator's filling (dinov2 MaskingGenerator),
        which reaches the target within a fraction of a patch on average.
        """
        for _ in range(10):  # BEiT: a few tries to find a block that fits the budget
            area = self._uniform(self.min_patches, budget, g)
            aspect = math.exp(self._uniform(*self.log_aspect, g))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if h < self.grid and w < self.grid:
                top = int(torch.randint(0, self.grid - h + 1, (), generator=g))
                left = int(torch.randint(0, self.grid - w + 1, (), generator=g))
                block = mask[top : top + h, left : left + w]
                new = h * w - int(block.sum())
                if 0 < new <= budget:
                    block.fill_(True)
                    return new
        return 0

    def one(self, target: int, g: torch.Generator | None = None) -> torch.Tensor:
        """One image's mask with about `target` masked patches (never more)."""
        mask = torch.zeros(self.grid, self.grid, dtype=torch.bool)
        count = 0
        while count < target:
            budget = min(target - count, self.max_block)
            added = self._add_block(mask, budget, g)
            if added == 0:
                break
            count += added
        return mask.flatten()

    def batch(
        self,
        n: int,
        probability: float = 0.5,
        ratio: Sequence[float] = (0.1, 0.5),
        g: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Masks for n images: int(n * probability) masked, ratios stratified, order shuffled."""
        if not 0.0 <= probability <= 1.0 or not 0.0 <= ratio[0] <= ratio[1] <= 1.0:
            raise ValueError(
                f"ibot.mask_probability={probability} must be in [0, 1] and "
                f"ibot.mask_ratio={list(ratio)} must be [min, max] within [0, 1]."
            )
        n_masked = int(n * probability)
        edges = torch.linspace(ratio[0], ratio[1], n_masked + 1).tolist()
        masks = [
            self.one(int(self.num_patches * self._uniform(edges[i], edges[i + 1], g)), g)
            for i in range(n_masked)
        ]
        masks += [torch.zeros(self.num_patches, dtype=torch.bool)] * (n - n_masked)
        order = torch.randperm(n, generator=g)
        return torch.stack(masks)[order] if n else torch.zeros(0, self.num_patches, dtype=bool)


def batch_seed(seeds: Sequence[int]) -> int:
    """One 63-bit seed from a batch's per-sample seeds (order-sensitive, platform-independent)."""
    data = np.asarray(seeds, dtype=np.int64).tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


class IBOTBatchMasks:
    """The iBOT masks of one batch's global crops, a pure function of its samples' seeds.

    Called by the collate (in the loader's workers), not by the training step: a batch's masks
    depend only on the `(seed, epoch, index)` seeds of the samples it holds, so a resumed run
    draws the same masks with no RNG state, and the step only consumes `batch["masks"]`.
    DINOv2's batch rule is kept: `BlockMaskGenerator.batch` over all the batch's global crops.
    """

    def __init__(
        self,
        generator: BlockMaskGenerator,
        probability: float = 0.5,
        ratio: Sequence[float] = (0.1, 0.5),
    ) -> None:
        self.generator = generator
        self.probability = probability
        self.ratio = tuple(ratio)

    @classmethod
    def from_config(cls, cfg: Config) -> IBOTBatchMasks | None:
        """The masks a run's batches need: None when iBOT is off (DINO pays nothing)."""
        if cfg.ibot.weight <= 0:
            return None
        i = cfg.ibot
        grid = cfg.data.global_size // cfg.model.patch_size
        generator = BlockMaskGenerator(grid, i.mask_min_patches, i.mask_aspect)
        return cls(generator, i.mask_probability, i.mask_ratio)

    def __call__(self, n: int, seeds: Sequence[int | None]) -> torch.Tensor:
        """Bool masks [n, patches] for n global crops; unseeded samples use torch's CPU RNG."""
        seeded = len(seeds) > 0 and all(s is not None for s in seeds)
        g = torch.Generator().manual_seed(batch_seed(seeds)) if seeded else None
        return self.generator.batch(n, self.probability, self.ratio, g)
