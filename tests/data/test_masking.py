"""Block masks: counts, ratios, block shapes, share of masked images, determinism."""

import pytest
import torch

from dinolab.config.loader import load_config
from dinolab.data.masking import BlockMaskGenerator, IBOTBatchMasks, batch_seed


def _components(mask2d):
    """Sizes of the 4-connected components of a bool grid."""
    seen = torch.zeros_like(mask2d)
    sizes = []
    h, w = mask2d.shape
    for i in range(h):
        for j in range(w):
            if mask2d[i, j] and not seen[i, j]:
                stack, size = [(i, j)], 0
                seen[i, j] = True
                while stack:
                    a, b = stack.pop()
                    size += 1
                    for da, db in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                        x, y = a + da, b + db
                        if 0 <= x < h and 0 <= y < w and mask2d[x, y] and not seen[x, y]:
                            seen[x, y] = True
                            stack.append((x, y))
                sizes.append(size)
    return sizes


def test_single_mask_never_exceeds_target_and_gets_close():
    gen = BlockMaskGenerator(grid=14)
    g = torch.Generator().manual_seed(0)
    for target in (10, 40, 98):
        counts = [int(gen.one(target, g).sum()) for _ in range(50)]
        assert max(counts) <= target
        assert sum(counts) / len(counts) > 0.75 * target  # blocks fill most of the budget


def test_blocks_have_at_least_min_patches():
    gen = BlockMaskGenerator(grid=16, min_patches=4)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        m = gen.one(40, g).view(16, 16)
        assert all(s >= 4 for s in _components(m))  # rectangles of >= 4 patches (or unions)


def test_batch_statistics_match_dinov2():
    gen = BlockMaskGenerator(grid=16)
    g = torch.Generator().manual_seed(2)
    masks = gen.batch(200, probability=0.5, ratio=(0.1, 0.5), g=g)
    assert masks.shape == (200, 256) and masks.dtype == torch.bool
    counts = masks.sum(1)
    assert int((counts > 0).sum()) == 100  # exactly half of the images are masked
    ratios = counts[counts > 0].float() / 256
    assert ratios.max() <= 0.5 and ratios.min() >= 0.05
    assert 0.22 < ratios.mean() < 0.32  # stratified over [0.1, 0.5], slightly under target
    # masked images are shuffled among the unmasked ones, not all at the front
    assert 0 < int((counts[:100] > 0).sum()) < 100


def test_masks_are_a_function_of_the_generator_state():
    gen = BlockMaskGenerator(grid=8)
    a = gen.batch(10, g=torch.Generator().manual_seed(3))
    b = gen.batch(10, g=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_zero_probability_and_bad_arguments():
    gen = BlockMaskGenerator(grid=4)
    assert not gen.batch(6, probability=0.0).any()
    with pytest.raises(ValueError, match="mask_ratio"):
        gen.batch(4, ratio=(0.6, 0.2))
    with pytest.raises(ValueError, match="mask_aspect"):
        BlockMaskGenerator(grid=4, aspect=(2.0, 1.0))


def test_batch_masks_from_config_and_seeds():
    assert IBOTBatchMasks.from_config(load_config()) is None  # DINO: nothing to draw
    cfg = load_config(overrides=["ibot.weight=1", "data.global_size=32", "model.patch_size=4"])
    masks = IBOTBatchMasks.from_config(cfg)
    assert masks.generator.grid == 8 and masks.probability == cfg.ibot.mask_probability
    a, b = masks(6, [1, 2, 3]), masks(6, [1, 2, 3])
    assert a.shape == (6, 64) and torch.equal(a, b)
    assert batch_seed([1, 2, 3]) != batch_seed([3, 2, 1])  # order-sensitive, 63 bits
    assert 0 <= batch_seed([2**62, 5]) < 2**63
