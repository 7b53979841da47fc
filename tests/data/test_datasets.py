from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from dinolab.data import datasets as ds_mod
from dinolab.data.augment import MultiCropAugmentation
from dinolab.data.build import build_dataset
from dinolab.data.datasets import (
    ImageFileList,
    LabeledImageFolder,
    UnlabeledImageFolder,
    find_images,
    to_rgb,
)
from tests.data.image_zoo import BROKEN, gradient

REPO = Path(__file__).resolve().parents[2]


def by_name(ds) -> dict[str, dict]:
    return {Path(ds.paths[i]).name: ds[i] for i in range(len(ds))}


def test_find_images_is_recursive_sorted_and_skips_hidden(zoo):
    root = zoo["rgb.jpg"].parent
    found = find_images(root)
    names = [Path(p).relative_to(root).as_posix() for p in found]
    assert found == sorted(found)
    assert "sub/nested.jpg" in names and "upper.JPEG" in names
    assert not any(n.startswith(".") or "/." in n or n.endswith(".txt") for n in names)
    assert len(names) == len(zoo)


def test_every_decodable_mode_becomes_rgb(zoo):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    items = by_name(UnlabeledImageFolder(zoo["rgb.jpg"].parent))
    for name, item in items.items():
        if name in BROKEN:
            continue
        assert "error" not in item, item
        img = item["image"]
        assert img.mode == "RGB", name
        assert item["label"] == -1 and Path(item["path"]).name == name
    assert items["tiny.png"]["image"].size == (5, 7)
    assert items["rgb.png"]["image"].size == (20, 16)
    assert np.array_equal(np.asarray(items["rgb.png"]["image"]), gradient())


def test_alpha_is_composited_on_white(zoo):
    img = UnlabeledImageFolder(zoo["rgb.jpg"].parent)
    item = next(img[i] for i in range(len(img)) if img.paths[i].endswith("rgba.png"))
    assert item["image"].getpixel((0, 0)) == (255, 255, 255)
    assert item["image"].getpixel((1, 0)) == tuple(gradient()[0, 1])


@pytest.mark.parametrize("name", ["deep16.png", "deep16.tif"])
def test_16_bit_is_scaled_not_clipped(zoo, name):
    items = by_name(UnlabeledImageFolder(zoo[name].parent))
    row = np.asarray(items[name]["image"])[0, :, 0]
    assert row.tolist() == [0, 1, 128, 255]


def test_wide_integer_and_float_modes_are_scaled():
    i32 = Image.fromarray(np.array([[0, 256, 65535]], dtype=np.int32))
    assert i32.mode == "I"
    assert np.asarray(to_rgb(i32))[0, :, 1].tolist() == [0, 1, 255]
    f = Image.fromarray(np.array([[-1.0, 0.0, 3.0]], dtype=np.float32))
    assert np.asarray(to_rgb(f))[0, :, 2].tolist() == [0, 63, 255]


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(gradient()).save(tmp_path / "phone.jpg", exif=exif)
    assert UnlabeledImageFolder(tmp_path)[0]["image"].size == (16, 20)


def test_cmyk_jpeg_converts(zoo):
    items = by_name(UnlabeledImageFolder(zoo["cmyk.jpg"].parent))
    ref = gradient().astype(int)
    got = np.asarray(items["cmyk.jpg"]["image"]).astype(int)
    assert np.abs(got - ref).mean() < 20


REASONS = {"zero.jpg": "empty file", "truncated.jpg": "Truncated", "notimage.jpg": "not an image"}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_return_an_error_dict(zoo, name):
    ds = UnlabeledImageFolder(zoo[name].parent, transform=MultiCropAugmentation(16, 8, 2))
    i = ds.paths.index(str(zoo[name]))
    item = ds[(i, 123)]
    assert set(item) == {"error", "index"}
    assert item["index"] == i
    assert item["error"].startswith(f"{zoo[name]}: ") and REASONS[name] in item["error"]


def test_tiny_image_is_upsampled_by_random_resized_crop(zoo):
    ds = UnlabeledImageFolder(zoo["tiny.png"].parent, transform=MultiCropAugmentation(32, 16, 2))
    i = ds.paths.index(str(zoo["tiny.png"]))
    crops = ds[(i, 5)]["image"]
    assert [c.shape for c in crops["global_crops"]] == [(3, 32, 32)] * 2
    assert [c.shape for c in crops["local_crops"]] == [(3, 16, 16)] * 2


def test_build_dataset_errors_name_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=r"Image folder '.*nope' does not exist: check"):
        build_dataset(str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(ValueError, match=r"No images found under '.*empty' \(looked for .jpg"):
        build_dataset(str(empty))
    with pytest.raises(ValueError, match="No images found"):
        build_dataset(str(empty), labeled=True)
    with pytest.raises(ValueError, match="not a folder or a .txt list"):
        build_dataset(str(empty / "readme.md"))
    with pytest.raises(ValueError, match="Unknown data.format 'zip'"):
        build_dataset(str(empty), format="zip")
    with pytest.raises(FileNotFoundError, match="Image list '.*list.txt' does not exist"):
        build_dataset(str(tmp_path / "list.txt"))


def test_image_folder_labels(class_tree):
    ds = build_dataset(str(class_tree), labeled=True)
    assert isinstance(ds, LabeledImageFolder)
    assert ds.classes == ["cat", "dog"]
    assert ds.class_to_idx == {"cat": 0, "dog": 1}
    assert ds.targets == [0, 0, 1, 1, 1, 1]
    assert ds.paths[-1].endswith("dog/puppies/p.jpg")
    assert ds[2]["label"] == 1 and ds[0]["label"] == 0
    unlabeled = build_dataset(str(class_tree))
    assert isinstance(unlabeled, UnlabeledImageFolder) and len(unlabeled) == 6
    assert set(unlabeled.targets) == {-1}


def test_image_folder_shares_training_mapping(class_tree):
    mapping = {"ant": 0, "cat": 1, "dog": 2}
    ds = LabeledImageFolder(class_tree, class_to_idx=mapping)
    assert ds.targets == [1, 1, 2, 2, 2, 2] and ds.classes == ["ant", "cat", "dog"]
    with pytest.raises(ValueError, match=r"\['dog'\] .* are not in the training classes"):
        LabeledImageFolder(class_tree, class_to_idx={"cat": 0})


def test_loose_images_make_auto_fall_back_to_unlabeled(class_tree):
    Image.fromarray(gradient()).save(class_tree / "loose.png")
    ds = build_dataset(str(class_tree), labeled=True)
    assert isinstance(ds, UnlabeledImageFolder) and len(ds) == 7
    forced = build_dataset(str(class_tree), format="imagefolder")
    assert isinstance(forced, LabeledImageFolder) and len(forced) == 6


def test_file_list_resolves_relative_paths_and_skips_comments(zoo, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    text = "# my images\n\n../zoo/rgb.png\n  ../zoo/sub/nested.jpg  \n" + str(zoo["gray.png"])
    text += "\n../zoo/missing.jpg\n"
    (lists / "train.txt").write_text(text)
    ds = build_dataset(str(lists / "train.txt"))
    assert isinstance(ds, ImageFileList) and len(ds) == 4
    assert [Path(p).name for p in ds.paths] == ["rgb.png", "nested.jpg", "gray.png", "missing.jpg"]
    assert ds[1]["image"].size == (20, 16)
    assert "missing.jpg" in ds[3]["error"]
    (lists / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="No image paths in list '.*empty.txt'"):
        build_dataset(str(lists / "empty.txt"))


def test_sample_seed_makes_augmentation_pure_and_leaves_caller_rng(zoo):
    aug = MultiCropAugmentation(16, 8, 3)
    ds = UnlabeledImageFolder(zoo["rgb.png"].parent, transform=aug)
    i = ds.paths.index(str(zoo["rgb.png"]))
    torch.manual_seed(0)
    random.seed(0)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    a = ds[(i, 42)]["image"]
    ds[(i, 7)]  # another sample in between must not matter
    b = ds[(i, 42)]["image"]
    c = ds[(i, 43)]["image"]
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state

    def flat(crops):
        return torch.cat([v.flatten() for v in crops["global_crops"] + crops["local_crops"]])

    assert torch.equal(flat(a), flat(b))
    assert not torch.equal(flat(a), flat(c))


def test_cache_decodes_once_and_keeps_original(zoo, monkeypatch):
    calls = []
    real = ds_mod.decode_image
    monkeypatch.setattr(ds_mod, "decode_image", lambda p: calls.append(p) or real(p))

    def paint(img):
        img.paste((0, 0, 0), (0, 0, img.width, img.height))  # mutates its input
        return img

    paths = [str(zoo["rgb.png"]), str(zoo["zero.jpg"])]
    ds = ds_mod.ImageDataset(paths, transform=paint, cache_decoded=True)
    items = [ds[i] for i in (0, 0, 1, 1)]
    assert len(calls) == 2
    assert items[1]["image"].getpixel((0, 0)) == (0, 0, 0) and "error" in items[3]
    assert ds._cache[0].getpixel((19, 15)) != (0, 0, 0)


def test_bundled_clothing_dataset():
    root = REPO / "dinolab_data" / "clothing-64"
    assert (root / "LICENSE.txt").is_file() and (root / "README.md").is_file()
    ds = build_dataset(str(root / "train"), labeled=True)
    assert len(ds) == 3068 and len(ds.classes) == 10
    assert ds[0]["image"].size == (64, 64)
