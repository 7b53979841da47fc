import math

import pytest
import torch

from dinolab.eval.linear import train_on_images
from dinolab.eval.linear_heads import LinearHeadGrid, Variant, select_best, train_on_features


def separable(n_per_class: int, seed: int, dim: int = 8, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    centers = 4 * torch.eye(classes, dim)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centers[labels] + 0.5 * torch.randn(len(labels), dim, generator=g), labels


def snapshot(grid):
    return {n: [p.clone() for p in grid.head(n)] for n in grid.names}


def moved(grid, before):
    """{head: True if its weight and bias both changed}."""
    return {
        n: all(not torch.equal(a, b) for a, b in zip(p, grid.head(n), strict=True))
        for n, p in before.items()
    }


def test_fast_mode_separates_and_picks_the_best_lr_on_val():
    x, y = separable(40, 0)
    vx, vy = separable(20, 1)
    torch.manual_seed(0)
    grid = LinearHeadGrid(8, 3, [Variant(1)], [1e-7, 1.0], stored=(1, False))
    before = snapshot(grid)
    fit = train_on_features(grid, x, y, epochs=30, batch_size=32)
    assert fit["steps"] == 30 * 4
    heads = grid.evaluate(vx, vy)
    assert all(moved(grid, before).values())  # every head trained in the same pass
    best = select_best(heads)
    assert heads[best]["lr"] == 1.0 and heads[best]["top1"] == 100.0
    assert heads["blocks1_lr1e-07"]["top1"] < 100.0


def test_variant_parsing_and_errors():
    assert Variant.parse("1+avgpool") == Variant(1, True) and Variant.parse("4").name == "blocks4"
    with pytest.raises(ValueError, match="Bad feature variant 'x'"):
        Variant.parse("x")


def test_image_mode_feeds_every_head_from_one_forward_per_batch(backbone, folders):
    calls = []
    original = backbone.get_intermediate_layers

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    backbone.get_intermediate_layers = counting
    variants = [Variant(1), Variant(2), Variant(1, True), Variant(2, True)]
    grid = LinearHeadGrid(32, 2, variants, [0.1, 1.0], stored=(2, True))
    before = snapshot(grid)
    fit = train_on_images(
        grid,
        backbone,
        folders / "train",
        32,
        epochs=2,
        batch_size=4,
        device=torch.device("cpu"),
        precision="fp32",
        num_workers=0,
        progress=False,
    )
    assert fit["steps"] == 2 * 3 and len(calls) == 6  # 8 heads, one forward per batch
    assert len(before) == 8 and all(moved(grid, before).values())
    assert not backbone.training


def test_each_head_follows_torch_sgd_as_if_alone():
    x, y = separable(10, 2)
    grid = LinearHeadGrid(8, 3, [Variant(1)], [0.1, 0.5], stored=(1, False))
    w, b = (t.clone() for t in grid.head("blocks1_lr0.5"))
    alone = torch.nn.Linear(8, 3)
    alone.weight.data, alone.bias.data = w, b
    opt = torch.optim.SGD(alone.parameters(), lr=0.5 * 10 / 256, momentum=0.9, weight_decay=1e-3)
    grid.init_sgd(10 / 256, momentum=0.9, weight_decay=1e-3)
    for step in range(4):
        batch = slice(10 * (step % 3), 10 * (step % 3) + 10)
        grid.step(x[batch], y[batch], step / 4)
        for g in opt.param_groups:
            g["lr"] = 0.5 * 10 / 256 * 0.5 * (1 + math.cos(math.pi * step / 4))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(alone(x[batch]), y[batch]).backward()
        opt.step()
    torch.testing.assert_close(grid.head("blocks1_lr0.5")[0], alone.weight)
    torch.testing.assert_close(grid.head("blocks1_lr0.5")[1], alone.bias)
