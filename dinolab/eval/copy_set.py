"""A Copydays-like copy-detection set made from any image folder, so users test their domain.

    out/db/originals/NNNN.jpg        the originals (JPEG q95)
    out/db/distractors/NNNNN.jpg     other images of the folder: the haystack
    out/whiten/NNNNN.jpg             a third, disjoint part: for learning the whitening
    out/queries/jpegqual/Q/NNNN.jpg  JPEG at Q in 3, 5, 8, 10, 15, 20, 30, 50, 75
    out/queries/crops/P/NNNN.jpg     P% of the surface cut away, P in 10 ... 80
    out/queries/strong/NNNN_S.jpg    three random strong edits + JPEG (copy_attacks)
    out/pairs.csv                    query,original,block   (dinolab eval copydetect --pairs)
    out/copyset.json                 the parameters and seed that rebuild the set exactly

The folder's images are shuffled by `seed` and split into the three disjoint parts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from dinolab.data.datasets import decode_image, find_images
from dinolab.eval import copy_attacks as attacks
from dinolab.eval.descriptors import resize_long_side


def _save(img: Image.Image, path: Path, quality: int = 95) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(path, format="JPEG", quality=quality)


def make_copy_set(
    source: str | Path,
    out: str | Path,
    n_originals: int = 100,
    n_distractors: int = 1000,
    n_whiten: int = 500,
    strong_per_original: int = 2,
    long_side: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Write the set described above; returns its summary (also in copyset.json).

    `long_side` > 0 resizes every image first so its long side is that many pixels.
    """
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise FileNotFoundError(f"Image folder '{source}' does not exist.")
    if (out / "pairs.csv").exists():
        raise FileExistsError(f"'{out}' already holds a copy set: choose another folder.")
    paths = find_images(source)
    need = n_originals + n_distractors + n_whiten
    if n_originals < 1 or len(paths) < need:
        raise ValueError(
            f"'{source}' has {len(paths)} images; {n_originals} originals + {n_distractors} "
            f"distractors + {n_whiten} whitening images need {need}: ask for fewer."
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    parts = {
        "originals": order[:n_originals],
        "distractors": order[n_originals : n_originals + n_distractors],
        "whiten": order[n_originals + n_distractors : need],
    }

    def load(i: int) -> Image.Image:
        img = decode_image(paths[i])
        return resize_long_side(img, long_side) if long_side else img

    for name, folder in (("distractors", out / "db" / "distractors"), ("whiten", out / "whiten")):
        for j, i in enumerate(tqdm(parts[name], desc=name, disable=not progress)):
            _save(load(int(i)), folder / f"{j:05d}.jpg")
    rows = []
    for j, i in enumerate(tqdm(parts["originals"], desc="originals", disable=not progress)):
        img, name = load(int(i)), f"{j:04d}.jpg"
        original = f"originals/{name}"
        _save(img, out / "db" / original)
        for q in attacks.JPEG_QUALITIES:
            query = f"jpegqual/{q}/{name}"
            _save(img, out / "queries" / query, quality=q)
            rows.append((query, original, f"jpegqual/{q}"))
        for p in attacks.CROP_PERCENTS:
            query = f"crops/{p}/{name}"
            _save(attacks.crop_surface(img, p, rng), out / "queries" / query)
            rows.append((query, original, f"crops/{p}"))
        for s in range(strong_per_original):
            edited, _, quality = attacks.strong_attack(img, rng)
            query = f"strong/{j:04d}_{s}.jpg"
            _save(edited, out / "queries" / query, quality=quality)
            rows.append((query, original, "strong"))
    with (out / "pairs.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "original", "block"])
        writer.writerows(rows)
    summary = {
        "source": str(source),
        "seed": seed,
        "long_side": long_side,
        "n_originals": n_originals,
        "n_distractors": n_distractors,
        "n_whiten": n_whiten,
        "strong_per_original": strong_per_original,
        "n_queries": len(rows),
        "sources": {
            k: [str(Path(paths[int(i)]).relative_to(source)) for i in v] for k, v in parts.items()
        },  # fmt: skip
    }
    (out / "copyset.json").write_text(json.dumps(summary, indent=1))
    return summary
