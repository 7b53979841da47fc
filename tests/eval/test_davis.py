"""`run_davis` and `dinolab eval davis` on a tiny synthetic DAVIS folder (a moving square)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dinolab.cli import main
from dinolab.eval.davis import patch_size_of, run_davis
from dinolab.eval.davis_data import davis_palette


class PixelPatches(nn.Module):
    """Each 8-px patch's pixels as its token: enough to tell a red square from grey."""

    patch_size = 8

    def forward_features(self, x):
        return {"x_norm_patchtokens": F.unfold(x, 8, stride=8).transpose(1, 2)}


def make_davis(root, name="square", frames=8, year=2016):
    """96x192 JPEG frames of a red square moving right on grey; masks as DAVIS stores them."""
    img_dir = root / "JPEGImages" / "480p" / name
    ann_dir = root / "Annotations" / "480p" / name
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    for t in range(frames):
        rgb = np.full((96, 192, 3), 128, dtype=np.uint8)
        mask = np.zeros((96, 192), dtype=np.uint8)
        rgb[24:72, 8 + 6 * t : 56 + 6 * t] = (220, 30, 30)
        mask[24:72, 8 + 6 * t : 56 + 6 * t] = 255 if year == 2016 else 1
        Image.fromarray(rgb).save(img_dir / f"{t:05d}.jpg", quality=95)
        if year == 2016:
            Image.fromarray(mask).save(ann_dir / f"{t:05d}.png")  # mode L, {0, 255}
        else:
            img = Image.fromarray(mask)
            img.putpalette(davis_palette().reshape(-1).tolist())
            img.save(ann_dir / f"{t:05d}.png")
    return root


@pytest.mark.parametrize("year", [2016, 2017])
def test_run_davis_tracks_the_square_and_writes_everything(tmp_path, year):
    root = make_davis(tmp_path / "davis", year=year)
    out = tmp_path / "out"
    res = run_davis(PixelPatches(), root, out, size=96, progress=False, precision="fp32")
    # the patch grid (8 px) limits the edges: J high, F (2-px tolerance here) lower
    assert res["scores"]["J-Mean"] > 0.85 and res["scores"]["F-Mean"] > 0.6, res["scores"]
    last = np.array(Image.open(out / "davis" / "square" / "00007.png"))
    assert abs(np.argwhere(last == 1)[:, 1].mean() - (8 + 42 + 24)) < 3  # followed to x = 74
    assert res["per_sequence"]["square"]["frames"] == 8
    assert len(res["per_sequence"]["square"]["objects"]["1"]["J"]) == 6  # first, last left out
    png = Image.open(out / "davis" / "square" / "00005.png")
    assert png.mode == "P" and png.size == (192, 96)
    assert png.getpalette()[3:6] == [128, 0, 0] and set(np.unique(np.array(png))) == {0, 1}
    saved = json.loads((out / "davis.json").read_text())
    assert saved["scores"] == pytest.approx(res["scores"])
    assert saved["params"] == {"size": 96, "precision": "fp32"}
    assert "J&F-Mean" in (out / "davis.md").read_text()
    assert (out / "davis_per_sequence.csv").read_text().splitlines()[1].startswith("square_1,")
    assert Image.open(out / "davis.png").size[0] > 100


def test_feature_cache_gives_the_same_masks(tmp_path):
    root = make_davis(tmp_path / "davis", frames=5)
    kw = {"size": 64, "progress": False, "precision": "fp32", "cache_dir": tmp_path / "cache",
          "figure": False}  # fmt: skip
    first = run_davis(PixelPatches(), root, tmp_path / "a", **kw)
    assert len(list((tmp_path / "cache").glob("davis-*.npy"))) == 1
    again = run_davis(PixelPatches(), root, tmp_path / "b", **kw)
    assert again["scores"] == first["scores"]
    a = np.array(Image.open(tmp_path / "a" / "davis" / "square" / "00003.png"))
    np.testing.assert_array_equal(a, np.array(Image.open(tmp_path / "b/davis/square/00003.png")))


def test_a_backbone_without_patches_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="no patch-token grid"):
        patch_size_of(nn.Linear(2, 2))


def test_frames_without_annotations_cannot_be_scored(tmp_path):
    root = make_davis(tmp_path / "davis", frames=4)
    (root / "Annotations" / "480p" / "square" / "00002.png").unlink()
    with pytest.raises(ValueError, match="without an annotation"):
        run_davis(PixelPatches(), root, None, size=96, progress=False)


def test_cli_eval_davis_on_a_run_directory(tmp_path, run_dir, capsys):
    root = make_davis(tmp_path / "davis", frames=4)
    argv = ["eval", "davis", str(run_dir), "--davis", str(root), "--size", "96", "--quiet",
            "--precision", "fp32", "--topk", "3", "--n-last-frames", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads((run_dir / "davis.json").read_text())
    assert result["params"]["topk"] == 3 and result["params"]["n_last_frames"] == 2
    assert "DAVIS label propagation" in out and (run_dir / "davis/square/00003.png").exists()
    assert main(["eval", "davis", str(run_dir), "--davis", str(tmp_path / "none")]) == 2
    assert "No DAVIS folder" in capsys.readouterr().err
