"""Build the bundled demo dataset `dinolab_data/clothing-64/` from the 96 px clothing archive.

Run once by a maintainer (the result is committed): the demo needs a real, small, freely
licensed (CC0) image set that ships with the repository, and 64 px keeps it a few MB.

    python scripts/make_bundled_data.py [--archive PATH] [--out DIR] [--size 64]
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = Path("/work/shared/data/clothing-small-96.tar.gz")
DEFAULT_LICENSE = Path("/work/shared/data/clothing-small-LICENSE.txt")
SPLITS = ("train", "validation", "test")

README = """# clothing-64

The dinolab demo dataset: {total} real photos of clothes in 10 classes at {size}x{size} px
(JPEG quality 90, optimised Huffman tables), laid out as `{{train,validation,test}}/<class>/*.jpg`
(train {train}, validation {validation}, test {test}; the classes are imbalanced).

Source: the "Clothing dataset (small)" by Alexey Grigorev,
https://github.com/alexeygrigorev/clothing-dataset-small (commit 11961516), centre-cropped
to 96x96 and then resized to {size}x{size} with Pillow's LANCZOS filter by
`scripts/make_bundled_data.py`.

Licence: CC0 1.0 (public domain dedication), see `LICENSE.txt`.
"""


def convert_tree(src: Path, dst: Path, size: int) -> dict[str, int]:
    """Resize every `<split>/<class>/*.jpg` under src into dst; return images per split."""
    counts = {}
    for split in SPLITS:
        files = sorted((src / split).glob("*/*.jpg"))
        if not files:
            raise ValueError(f"No images under '{src / split}': is this the clothing archive?")
        for f in files:
            out = dst / split / f.parent.name / f.name
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(f) as img:
                small = img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
            small.save(out, format="JPEG", quality=90, optimize=True)
        counts[split] = len(files)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--license", type=Path, default=DEFAULT_LICENSE)
    parser.add_argument("--out", type=Path, default=REPO / "dinolab_data" / "clothing-64")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    for p in (args.archive, args.license):
        if not p.is_file():
            raise FileNotFoundError(f"'{p}' does not exist: pass --archive/--license paths")
    if args.out.exists():
        shutil.rmtree(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp, filter="data")
        counts = convert_tree(Path(tmp) / "clothing-small-96", args.out, args.size)
    shutil.copyfile(args.license, args.out / "LICENSE.txt")
    readme = README.format(total=sum(counts.values()), size=args.size, **counts)
    (args.out / "README.md").write_text(readme)
    print(f"wrote {sum(counts.values())} images to {args.out}: {counts}")


if __name__ == "__main__":
    main()
