"""CLS attention maps: softmax rows, registers kept out of the map, sizes, the overlay PNG."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dinolab.models.vision_transformer import VisionTransformer
from dinolab.viz.attention import (
    OUTLINE_COLOUR,
    attention_figure,
    attention_maps,
    cls_attention,
    plot_attention,
)
from dinolab.viz.images import as_vit, heat_over_dimmed, pyplot
from dinolab.viz.masks import attention_masks


def tiny_vit(registers: int = 2) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
        num_register_tokens=registers,
    ).eval()  # fmt: skip


def save_image(path, h=37, w=50, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_rows_sum_to_one_and_registers_are_not_in_the_map():
    out = cls_attention(tiny_vit(registers=2), torch.randn(2, 3, 24, 32))
    assert out["weights"].shape == (2, 2, 1 + 2 + 12, 1 + 2 + 12)
    torch.testing.assert_close(out["weights"].sum(-1), torch.ones(2, 2, 15))
    assert out["heads"].shape == (2, 2, 3, 4) and out["registers"].shape == (2, 2, 2)
    total = out["heads"].sum((-1, -2)) + out["cls"] + out["registers"].sum(-1)
    torch.testing.assert_close(total, torch.ones(2, 2))
    torch.testing.assert_close(out["mean"], out["heads"].mean(1))


def test_any_block_and_a_wrong_one():
    vit, x = tiny_vit(), torch.randn(1, 3, 16, 16)
    first, last = cls_attention(vit, x, block=0), cls_attention(vit, x, block=-1)
    assert not torch.allclose(first["heads"], last["heads"])
    torch.testing.assert_close(cls_attention(vit, x, block=1)["heads"], last["heads"])
    with pytest.raises(ValueError, match="out of range"):
        cls_attention(vit, x, block=5)


def test_size_not_a_multiple_of_the_patch(tmp_path, caplog):
    with pytest.raises(ValueError, match="not a multiple of the patch size 8"):
        cls_attention(tiny_vit(), torch.randn(1, 3, 30, 32))
    img = save_image(tmp_path / "odd.png", 37, 50)
    with caplog.at_level("INFO", logger="dinolab"):
        (m,) = attention_maps(tiny_vit(), [img], size=None)
    assert "resized to 40x48" in caplog.text
    assert m["rgb"].shape == (40, 48, 3) and m["grid"].shape == (2, 5, 6)
    assert m["heads"].shape == (2, 40, 48) and m["mean"].shape == (40, 48)


def test_overlay_grid_png(tmp_path):
    imgs = [save_image(tmp_path / f"{i}.png", seed=i) for i in range(2)]
    maps = attention_maps(tiny_vit(), imgs, size=32)
    out = plot_attention(maps, tmp_path / "out" / "att.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > im.height
    with pytest.raises(ValueError, match="must end in .png"):
        plot_attention(maps, tmp_path / "att.jpg")


def test_not_a_vit_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not a ViT"):
        as_vit(nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="No image file or folder"):
        attention_maps(tiny_vit(), [tmp_path / "nope.png"])


def test_matches_attention_computed_by_hand():
    """softmax(q k^T / sqrt(d)) of the last block's input, from the block's own weights."""
    vit, x = tiny_vit(registers=1), torch.randn(1, 3, 16, 24)
    with torch.no_grad():
        tokens = vit.prepare_tokens_with_masks(x)
        tokens = vit.blocks[0](tokens)
        blk = vit.blocks[1]
        qkv = blk.attn.qkv(blk.norm1(tokens)).reshape(1, -1, 3, 2, 16).permute(2, 0, 3, 1, 4)
        attn = (qkv[0] @ qkv[1].transpose(-1, -2) / 4.0).softmax(-1)
    out = cls_attention(vit, x)
    torch.testing.assert_close(out["heads"], attn[:, :, 0, 2:].reshape(1, 2, 2, 3))


def test_heat_map_over_a_dimmed_photo_with_colour_bar_and_outline_legend(tmp_path):
    maps = attention_maps(tiny_vit(), [save_image(tmp_path / "a.png")], size=32)
    fig = attention_figure(maps, attention_masks(maps, 0.6), keep=0.6)
    try:
        bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(bars) == 1 and "peak" in bars[0].get_ylabel()
        (legend,) = fig.legends
        (text,) = [t.get_text() for t in legend.get_texts()]
        assert "60%" in text and "attention mass" in text
        assert legend.get_lines()[0].get_color() == OUTLINE_COLOUR
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.images]
        assert len(panels) == 2 + 2  # photo, mean of heads, 2 heads
    finally:
        pyplot().close(fig)
    no_masks = attention_figure(maps)
    assert not no_masks.legends and any(a.get_label() == "<colorbar>" for a in no_masks.axes)
    pyplot().close(no_masks)


def test_the_photo_is_dimmed_where_nothing_is_seen():
    rgb = np.full((2, 2, 3), 200, dtype=np.uint8)
    heat = np.array([[0.0, 0.0], [0.0, 0.5]])
    out = heat_over_dimmed(rgb, heat).astype(int)
    assert (out[0, 0] < 200 * 0.5).all()  # no attention: the photo, darker (inferno(0) ~ black)
    assert out[1, 1].sum() > out[0, 0].sum() * 3  # the peak: the bright end of the colour map
