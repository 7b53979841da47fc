"""dinolab.extract: named feature tensors of an image folder, saved in three formats."""

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dinolab.config.schema import ModelConfig
from dinolab.extract import extract, save_features
from dinolab.models import hub

from .train.conftest import make_images


@pytest.fixture
def vit():
    cfg = ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, embed_dim=64, depth=2,
                      num_heads=1, drop_path_rate=0.0)  # fmt: skip
    return hub.build_model(cfg, 0.1).eval()


def test_extract_folder_outputs(tmp_path, vit):
    folder = make_images(tmp_path / "imgs", n=5, size=40)
    (folder / "broken.png").write_bytes(b"not a png")
    f = extract(vit, folder, image_size=48, batch_size=2, patch_tokens=True, last_n=2,
                progress=False, precision="fp32")  # fmt: skip
    assert len(f["paths"]) == 5 and len(f["skipped"]) == 1
    assert f["cls"].shape == (5, 64) and f["pooled"].shape == (5, 64)
    assert f["patch_tokens"].shape == (5, 6, 6, 64)
    assert f["cls_layers"].shape == (5, 2, 64)
    torch.testing.assert_close(f["cls_layers"][:, -1], f["cls"])  # last block = final output
    torch.testing.assert_close(f["pooled"], f["patch_tokens"].mean(dim=(1, 2)))
    # the same images as a tensor batch give the same rows
    x = torch.stack([extract_one(vit, p) for p in f["paths"][:2]])
    again = extract(vit, x, progress=False, precision="fp32")
    torch.testing.assert_close(again["cls"], f["cls"][:2])


def extract_one(model, path):
    from dinolab.data import decode_image
    from dinolab.extract import image_transform

    return image_transform(48)(decode_image(path))


def test_save_formats(tmp_path, vit):
    f = extract(vit, torch.randn(3, 3, 32, 32), progress=False, patch_tokens=True)
    (st,) = save_features(f, tmp_path / "f.safetensors", {"model": "tiny"})
    assert torch.equal(load_file(st)["cls"], f["cls"])
    with safe_open(str(st), "pt") as h:
        assert "tensor[2]" in h.metadata()["paths"] and h.metadata()["model"] == "tiny"
    files = save_features(f, tmp_path / "f.npy")
    assert np.array_equal(np.load(files[0]), f["cls"].numpy())
    assert {p.name for p in files} >= {"f.npy", "f.pooled.npy", "f.paths.txt"}
    (npz,) = save_features(f, tmp_path / "f.npz")
    assert np.load(npz)["patch_tokens"].shape == (3, 4, 4, 64)
    with pytest.raises(ValueError, match="unknown feature format 'txt'; use a suffix or --format"):
        save_features(f, tmp_path / "f.txt")
    with pytest.raises(ValueError, match="CSV holds one row of numbers per image"):
        save_features(f, tmp_path / "f.csv")  # patch tokens have no row per image
    assert not (tmp_path / "f.csv").exists()


def test_csv_and_pt_hold_one_row_per_image(tmp_path, vit):
    import csv

    f = extract(vit, torch.randn(3, 3, 32, 32), progress=False)
    files = save_features(f, tmp_path / "f.csv")
    assert [p.name for p in files] == ["f.csv", "f.pooled.csv"]
    with files[0].open() as h:
        rows = list(csv.reader(h))
    assert rows[0][:2] == ["path", "cls_0"] and len(rows[0]) == 1 + 64 and len(rows) == 1 + 3
    assert rows[3][0] == "tensor[2]"
    got = torch.tensor([[float(x) for x in r[1:]] for r in rows[1:]])
    assert torch.allclose(got, f["cls"], rtol=1e-6, atol=1e-7)
    (pt,) = save_features(f, tmp_path / "feats.bin", {"image_size": 32}, fmt="pt")
    back = torch.load(pt, weights_only=True)
    assert torch.equal(back["cls"], f["cls"]) and back["paths"] == f["paths"]
    assert back["meta"] == {"image_size": "32"}


def test_bad_image_size(tmp_path, vit):
    with pytest.raises(ValueError, match="not a multiple of the patch size 8.*--image-size 48"):
        extract(vit, make_images(tmp_path / "i", n=1), image_size=50, progress=False)
    with pytest.raises(ValueError, match="not a multiple of the patch size 8"):
        extract(vit, torch.randn(1, 3, 30, 32), progress=False)
