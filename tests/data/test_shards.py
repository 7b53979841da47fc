"""WebDataset-style tar shards: indexing, random access, bad members, and a trainer run."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dinolab.data import build_dataset
from dinolab.data.shards import TarShardDataset, expand_shards


def _png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(root: Path, n_shards: int = 2, per_shard: int = 3) -> Path:
    """shard-00000.tar ...: each sample `<key>.png` + `<key>.cls`; one broken sample at the end."""
    root.mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        with tarfile.open(root / f"shard-{s:05d}.tar", "w") as tar:
            for i in range(per_shard):
                key = f"{s:02d}{i:04d}"
                _add(tar, f"{key}.png", _png(s * 100 + i))
                _add(tar, f"{key}.cls", b"3")
    with tarfile.open(root / f"shard-{n_shards:05d}.tar", "w") as tar:
        _add(tar, "broken.jpg", b"not a jpeg at all")
        _add(tar, "meta.json", b"{}")
    return root


def test_reads_every_image_of_every_shard_in_order(tmp_path):
    root = write_shards(tmp_path / "shards")
    ds = build_dataset(str(root))  # auto: a folder holding only .tar files
    assert isinstance(ds, TarShardDataset) and len(ds) == 7  # 2 x 3 images + the broken one
    for j, (s, i) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]):
        got = np.asarray(ds[j]["image"])
        assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(_png(s * 100 + i)))))
        assert ds[j]["path"].endswith(f"shard-{s:05d}.tar:{s:02d}{i:04d}.png")
    err = ds[6]
    assert "error" in err and "broken.jpg" in err["error"]


def test_patterns_single_files_and_seeded_transforms(tmp_path):
    root = write_shards(tmp_path / "shards")
    pattern = str(root / "shard-{00000..00001}.tar")
    assert expand_shards(pattern) == [str(root / "shard-00000.tar"), str(root / "shard-00001.tar")]
    assert len(build_dataset(pattern)) == 6
    assert len(build_dataset(str(root / "shard-00001.tar"))) == 3

    ds = TarShardDataset(
        pattern, transform=lambda im: torch.rand(3) + float(np.asarray(im)[0, 0, 0])
    )
    assert torch.equal(ds[(2, 7)]["image"], ds[(2, 7)]["image"])  # a pure function of the seed
    assert not torch.equal(ds[(2, 7)]["image"], ds[(2, 8)]["image"])


def test_bad_shard_specs_are_clear_errors(tmp_path):
    root = write_shards(tmp_path / "shards")
    with pytest.raises(FileNotFoundError, match="shard-00003.tar' not found"):
        build_dataset(str(root / "shard-{00000..00009}.tar"))
    gz = tmp_path / "x.tar.gz"
    gz.write_bytes(b"")
    with pytest.raises(ValueError, match="not an uncompressed .tar shard"):
        TarShardDataset(gz)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x01" * 700)
    with pytest.raises(ValueError, match="not a readable tar file"):
        build_dataset(str(junk))


def test_trainer_runs_on_shards(tmp_path):
    from dinolab.train.trainer import Trainer
    from tests.train.conftest import make_images, tiny_config

    images = make_images(tmp_path / "images", n=16)
    (tmp_path / "shards").mkdir()
    with tarfile.open(tmp_path / "shards" / "train-0.tar", "w") as tar:
        for f in sorted(images.iterdir()):
            tar.add(f, arcname=f.name)
    cfg = tiny_config(tmp_path / "shards", tmp_path / "run", **{"train.max_steps": 2})
    summary = Trainer(cfg).fit()
    assert summary["steps"] == 2
