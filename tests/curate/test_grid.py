import pytest
import torch

from dinolab.curate.dedup import dedup
from dinolab.curate.embed import embed_images
from dinolab.curate.grid import grid_descriptor, grid_pool
from dinolab.curate.store import open_selection
from dinolab.models.small_resnet import SmallResNet
from dinolab.models.vision_transformer import VisionTransformer
from tests.curate.toys import PixelNet, image_folder

KW = {"image_size": 16, "mean": (0.5,) * 3, "std": (0.25,) * 3, "crop": False}


def _net() -> SmallResNet:
    torch.manual_seed(0)
    return SmallResNet(embed_dim=32).eval()


def test_grid_pool_is_gem_or_the_mean_per_cell():
    fmap = torch.rand(1, 2, 4, 4) + 0.1
    cells = grid_pool(fmap, 2)
    assert cells.shape == (1, 8)
    top_left = fmap[0, 0, :2, :2]
    assert torch.isclose(cells[0, 0], top_left.pow(4).mean().pow(0.25))
    assert torch.isclose(grid_pool(fmap, 2, p=None)[0, 0], top_left.mean())
    assert torch.allclose(grid_pool(fmap, 1, p=None), fmap.mean((2, 3)))


@torch.no_grad()
def test_grid_descriptor_of_an_image_and_of_its_mirror_are_equal():
    x = torch.randn(3, 3, 32, 32)
    for net in (_net(), VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2,
                                          num_heads=2).eval()):  # fmt: skip
        d = grid_descriptor(net, x, [1, 2], 3)
        assert torch.allclose(d, grid_descriptor(net, x.flip(-1), [1, 2], 3), atol=1e-5)
        assert not torch.allclose(d[0], d[1], atol=1e-2)  # but images stay apart
    d = grid_descriptor(_net(), x, [1, 2], 3)
    assert d.shape == (3, 9 * (4 + 8))
    assert torch.allclose(d[:, :36].norm(dim=1), torch.ones(3))  # each layer's part is unit


def test_grid_cells_below_one_are_one_sentence():
    with pytest.raises(ValueError, match="cells must be >= 1"):
        grid_descriptor(_net(), torch.zeros(1, 3, 16, 16), [1], 0)


def test_embed_grid_records_its_layers_and_dedup_finds_mirrored_copies(tmp_path):
    paths = image_folder(tmp_path / "imgs", n=10, size=16)
    from PIL import Image, ImageOps

    for i in (1, 4, 7):  # mirrored copies: the grid rows of an image and its mirror are equal
        ImageOps.mirror(Image.open(paths[i])).save(tmp_path / "imgs" / f"mirror_{i}.png")
    report = embed_images(_net(), tmp_path / "imgs", tmp_path / "emb", descriptor="grid",
                          layers=[1, 2], cells=2, progress=False, **KW)  # fmt: skip
    assert report["dim"] == 4 * (4 + 8) and report["layers"] == [1, 2] and report["cells"] == 2
    x = open_selection(tmp_path / "emb").embeddings()
    assert torch.allclose(x.norm(dim=1), torch.ones(13), atol=1e-5)
    with pytest.raises(ValueError, match="another model"):  # other layers: not the same store
        embed_images(_net(), tmp_path / "imgs", tmp_path / "emb", descriptor="grid",
                     layers=[2], cells=2, progress=False, **KW)  # fmt: skip
    out = dedup(open_selection(tmp_path / "emb"), tmp_path / "dd", threshold=0.999,
                progress=False, figure_groups=0)  # fmt: skip
    assert out["near_duplicate_groups"] == 3 and out["images"] == 10
    assert not any("mirror" in p for p in (tmp_path / "dd" / "list.txt").read_text().split())


def test_cls_stores_keep_their_settings_without_grid_keys(tmp_path):
    image_folder(tmp_path / "imgs", n=3)
    report = embed_images(PixelNet(), tmp_path / "imgs", tmp_path / "e", progress=False, **KW)
    assert "layers" not in report and "cells" not in report  # older stores still resume
