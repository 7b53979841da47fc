import os

import pytest
import torch

from dinolab.eval.cache import backbone_fingerprint
from dinolab.eval.features import extract_features, select_variant
from dinolab.eval.knn import run_knn

KW = {"num_workers": 0, "precision": "fp32", "progress": False, "batch_size": 5}


def test_cached_and_uncached_features_agree(backbone, folders, tmp_path):
    cache = tmp_path / "cache"
    plain = extract_features(backbone, folders / "train", 32, **KW)
    first = extract_features(backbone, folders / "train", 32, cache_dir=cache, **KW)
    again = extract_features(backbone, folders / "train", 32, cache_dir=cache, **KW)
    assert not plain["cached"] and not first["cached"] and again["cached"]
    assert plain["features"].shape == (12, 32)
    for r in (first, again):
        torch.testing.assert_close(r["features"], plain["features"])
        assert torch.equal(r["labels"], plain["labels"])
    assert len(list(cache.iterdir())) == 1  # one complete entry, no temporary leftovers
    # a touched file, or changed weights, invalidate the entry
    path = sorted((folders / "train" / "a").iterdir())[0]
    os.utime(path, ns=(1, 1))
    assert not extract_features(backbone, folders / "train", 32, cache_dir=cache, **KW)["cached"]
    fp = backbone_fingerprint(backbone)
    with torch.no_grad():
        backbone.blocks[1].mlp.fc2.bias.add_(0.1)
    assert backbone_fingerprint(backbone) != fp
    assert not extract_features(backbone, folders / "train", 32, cache_dir=cache, **KW)["cached"]


def test_variants_are_slices_of_one_pass(backbone, folders):
    one = extract_features(backbone, folders / "val", 32, **KW)["features"]
    both = extract_features(backbone, folders / "val", 32, n_last_blocks=2, avgpool=True, **KW)
    rows = both["features"]
    assert rows.shape == (6, 3 * 32)
    torch.testing.assert_close(select_variant(rows, (2, True), 1, False), one)
    assert select_variant(rows, (2, True), 2, True).shape == (6, 96)
    assert select_variant(rows, (2, True), 1, True).shape == (6, 64)
    with pytest.raises(ValueError, match="n_last_blocks >= 3"):
        select_variant(rows, (2, True), 3, False)


def test_empty_class_is_a_clear_error(backbone, folders):
    bad = folders / "train" / "c"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"\['c'\] .* no readable image"):
        extract_features(backbone, folders / "train", 32, **KW)


def test_different_val_classes_are_a_clear_error(backbone, folders):
    (folders / "val" / "b").rename(folders / "val" / "z")
    with pytest.raises(ValueError, match=r"differ from training classes .*\['b'\].*\['z'\]"):
        run_knn(backbone, folders / "train", folders / "val", 32, ks=(1,), **KW)


@pytest.mark.parametrize("cached", [False, True])
def test_no_readable_image_is_a_one_line_error(backbone, tmp_path, cached):
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.jpg").write_text("not an image")
    cache = tmp_path / "cache" if cached else None
    with pytest.raises(ValueError, match="No readable images under"):
        extract_features(backbone, tmp_path / "bad", 32, cache_dir=cache, **KW)
    assert not cached or not cache.exists() or not any(cache.iterdir())  # nothing half-written
