"""WebDataset-style tar shards as a random-access image dataset.

Corpora too large for a folder of files ship as `.tar` shards whose members are grouped by key
(`000123.jpg`, `000123.cls`, `000123.json`, ...). Each shard's member offsets are indexed once
(headers only), and `ds[i]` reads one member with a seek, so the same seeded, sharded, exactly
resumable sampler serves folders and shards alike. Compressed tars cannot seek and are refused.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from dinolab.data.datasets import IMAGE_EXTENSIONS, ImageDataset, decode_image

_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_shards(spec: str | Path) -> list[str]:
    """Shard paths from a .tar file, a folder of .tar files, or `name-{000..123}.tar`."""
    spec = str(spec)
    m = _BRACE.search(spec)
    if m:
        lo, hi = m.group(1), m.group(2)
        width = len(lo)
        paths = [
            spec[: m.start()] + f"{i:0{width}d}" + spec[m.end() :]
            for i in range(int(lo), int(hi) + 1)
        ]
    elif os.path.isdir(spec):
        paths = sorted(str(p) for p in Path(spec).iterdir() if p.name.endswith(".tar"))
    else:
        paths = [spec]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing or not paths:
        raise FileNotFoundError(
            f"Tar shards '{missing[0] if missing else spec}' not found: check data.path "
            "(a .tar file, a folder of .tar files, or a pattern like shards-{000..099}.tar)."
        )
    bad = [p for p in paths if not p.endswith(".tar")]
    if bad:
        raise ValueError(
            f"'{bad[0]}' is not an uncompressed .tar shard: dinolab seeks inside shards, so "
            "repack compressed ones (.tar.gz) as plain .tar."
        )
    return paths


def index_shard(path: str) -> list[tuple[str, int, int]]:
    """(member name, data offset, size) of the first image of every sample key in the shard."""
    out, keys = [], set()
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                name = member.name
                key, _, ext = os.path.basename(name).partition(".")
                full_key = os.path.join(os.path.dirname(name), key)
                if not member.isfile() or ("." + ext.lower()) not in IMAGE_EXTENSIONS:
                    continue
                if full_key not in keys and not key.startswith("."):
                    keys.add(full_key)
                    out.append((name, member.offset_data, member.size))
    except tarfile.TarError as e:
        raise ValueError(f"Tar shard '{path}' is not a readable tar file ({e}).") from e
    return out


class TarShardDataset(ImageDataset):
    """One image per sample key across all shards; unreadable members become error dicts."""

    def __init__(
        self, spec: str | Path, transform: Callable | None = None, cache_decoded: bool = False
    ) -> None:
        self.shards = expand_shards(spec)
        self.members: list[tuple[int, int, int]] = []  # (shard, offset, size)
        names = []
        for s, path in enumerate(self.shards):
            for name, offset, size in index_shard(path):
                self.members.append((s, offset, size))
                names.append(f"{path}:{name}")
        if not names:
            raise ValueError(
                f"No images in the tar shards '{spec}': members need an image extension "
                "such as .jpg or .png."
            )
        super().__init__(names, None, transform, cache_decoded)
        self.root = str(spec)
        self._files: dict[int, Any] = {}  # open shard handles, per worker process

    def _decode(self, index: int) -> Image.Image:
        shard, offset, size = self.members[index]
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = open(self.shards[shard], "rb")  # noqa: SIM115
        f.seek(offset)
        return decode_image(io.BytesIO(f.read(size)))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"] = {}  # file handles do not cross into DataLoader workers
        return state
