import json

import numpy as np
import pytest
import torch

from dinolab.curate.embed import embed_images
from dinolab.curate.store import open_selection
from tests.curate.toys import PixelNet, image_folder

KW = {"image_size": 16, "mean": (0.5,) * 3, "std": (0.25,) * 3, "crop": False}


def test_embed_writes_unit_rows_skips_bad_files_and_counts_them(tmp_path):
    image_folder(tmp_path / "imgs", n=10)
    (tmp_path / "imgs" / "d0" / "broken.png").write_bytes(b"not a png")
    report = embed_images(PixelNet(), tmp_path / "imgs", tmp_path / "emb", chunk_size=4,
                          batch_size=3, progress=False, **KW)  # fmt: skip
    assert report["files"] == 11 and report["embedded"] == 10 and report["bad_files"] == 1
    sel = open_selection(tmp_path / "emb")
    x = sel.embeddings()
    assert x.shape == (10, 8) and torch.allclose(x.norm(dim=1), torch.ones(10), atol=1e-5)
    assert not any("broken" in p for p in sel.paths())
    assert json.loads((tmp_path / "emb" / "report.json").read_text())["bad_files"] == 1


def test_embed_resumes_after_an_interruption(tmp_path):
    image_folder(tmp_path / "imgs", n=12)
    fresh = embed_images(PixelNet(), tmp_path / "imgs", tmp_path / "a", chunk_size=4,
                         batch_size=2, progress=False, **KW)  # fmt: skip
    flaky = PixelNet(fail_after=5)  # probe + 4 batches = the first two chunks, then it fails
    with pytest.raises(RuntimeError, match="interrupted"):
        embed_images(flaky, tmp_path / "imgs", tmp_path / "b", chunk_size=4, batch_size=2,
                     progress=False, **KW)  # fmt: skip
    assert json.loads((tmp_path / "b" / "progress.json").read_text())["done"] == 8
    again = PixelNet()
    resumed = embed_images(again, tmp_path / "imgs", tmp_path / "b", chunk_size=4,
                           batch_size=2, progress=False, **KW)  # fmt: skip
    assert resumed["resumed_at"] == 8 and again.calls == 1 + 2  # probe + the last chunk only
    assert fresh["embedded"] == resumed["embedded"] == 12
    a, b = (np.load(tmp_path / d / "embeddings.npy") for d in "ab")
    assert np.allclose(a, b, atol=1e-6)
    assert (np.load(tmp_path / "a" / "hashes.npy") == np.load(tmp_path / "b" / "hashes.npy")).all()


def test_embed_refuses_to_mix_models_in_one_folder(tmp_path):
    image_folder(tmp_path / "imgs", n=3)
    embed_images(PixelNet(), tmp_path / "imgs", tmp_path / "e", progress=False, **KW)
    other = PixelNet()
    with torch.no_grad():
        other.proj.weight.add_(1)
    with pytest.raises(ValueError, match="another model"):
        embed_images(other, tmp_path / "imgs", tmp_path / "e", progress=False, **KW)


def test_an_unfinished_store_is_refused_by_the_next_stage(tmp_path):
    image_folder(tmp_path / "imgs", n=6)
    with pytest.raises(RuntimeError):
        embed_images(PixelNet(fail_after=2), tmp_path / "imgs", tmp_path / "e", chunk_size=2,
                     batch_size=2, progress=False, **KW)  # fmt: skip
    with pytest.raises(ValueError, match="incomplete .2 of 6 files"):
        open_selection(tmp_path / "e")
