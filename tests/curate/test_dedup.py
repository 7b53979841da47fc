import shutil

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dinolab.curate.dedup import dedup, duplicate_components, first_of_each_hash
from dinolab.curate.embed import embed_images
from dinolab.curate.store import open_selection
from tests.curate.toys import PixelNet, image_folder

KW = {"image_size": 16, "mean": (0.5,) * 3, "std": (0.25,) * 3, "crop": False}


def test_first_of_each_hash_keeps_one_per_content_and_every_unread_file():
    h = np.array([b"a" * 20, b"b" * 20, b"a" * 20, bytes(20), bytes(20)], dtype="S20")
    assert first_of_each_hash(h).tolist() == [True, True, False, True, True]


def test_planted_near_copies_form_components_and_eval_overlap_drops_them(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = F.normalize(torch.randn(50, 32, generator=g), dim=1)  # near-orthogonal originals
    copies = F.normalize(base[:10] + 0.1 * torch.randn(10, 32, generator=g), dim=1)
    pool = torch.cat([base, copies])
    evalset = F.normalize(base[40:43] + 0.3 * torch.randn(3, 32, generator=g), dim=1)
    found = duplicate_components(pool, [evalset], k=8, work_dir=tmp_path, progress=False)
    labels = found["labels"]
    for i in range(10):
        assert labels[i] == labels[50 + i]  # each copy joins its original
    assert len(np.unique(labels)) == 50
    assert np.flatnonzero(found["touches_eval"]).tolist() == [40, 41, 42]


def test_dedup_stage_removes_exact_and_near_copies_of_images(tmp_path):
    paths = image_folder(tmp_path / "imgs", n=10, size=16)
    shutil.copy(paths[0], tmp_path / "imgs" / "exact_copy.png")  # same bytes
    arr = np.asarray(Image.open(paths[1])).astype(int)
    near = np.clip(arr + np.random.default_rng(0).integers(-3, 4, arr.shape), 0, 255)
    Image.fromarray(near.astype(np.uint8)).save(tmp_path / "imgs" / "near_copy.png")
    embed_images(PixelNet(dim=64), tmp_path / "imgs", tmp_path / "emb", progress=False, **KW)
    report = dedup(open_selection(tmp_path / "emb"), tmp_path / "dd", threshold=0.9,
                   progress=False)  # fmt: skip
    assert report["exact_duplicates_removed"] == 1
    assert report["near_duplicate_groups"] == 1 and report["near_duplicates_removed"] == 1
    kept = (tmp_path / "dd" / "list.txt").read_text().splitlines()
    assert len(kept) == report["images"] == 10
    assert not any("copy" in p for p in kept)  # the originals sort first and stay
    assert (tmp_path / "dd" / "duplicate_groups.png").is_file()
    assert len(open_selection(tmp_path / "dd")) == 10  # the next stage reads the folder


def test_center_removes_the_common_direction_that_joins_everything(tmp_path):
    from dinolab.curate.store import Selection

    g = torch.Generator().manual_seed(0)
    parts = torch.randn(20, 16, generator=g)
    parts[19] = parts[3] + 0.05 * torch.randn(16, generator=g)  # one planted copy
    x = F.normalize(torch.cat([torch.full((20, 1), 8.0), parts], 1), dim=1)  # cosines ~0.8
    store = tmp_path / "emb"
    store.mkdir()
    np.save(store / "embeddings.npy", x.numpy())
    np.save(store / "hashes.npy", np.array([bytes([i + 1]) * 20 for i in range(20)], "S20"))
    (store / "files.txt").write_text("".join(f"/x/{i}.png\n" for i in range(20)))
    sel = Selection(store, np.arange(20))
    raw = dedup(sel, tmp_path / "raw", k=8, progress=False, figure_groups=0)
    centred = dedup(sel, tmp_path / "c", k=8, progress=False, figure_groups=0, center=True)
    assert raw["images"] == 1 and centred["images"] == 19
