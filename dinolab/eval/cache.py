"""On-disk feature cache: a key that changes when anything that shapes the features changes.

Features of a large set never sit in RAM whole: rows go into a `.npy` memmap as batches come,
and readers get tensors backed by that file. An entry is written in a temporary folder and
renamed when complete, so a killed extraction never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "dinolab-features-v1"


@torch.no_grad()
def backbone_fingerprint(backbone: nn.Module, samples_per_tensor: int = 4096) -> str:
    """Hash of every tensor's name, shape, dtype and a strided sample of its values.

    Sampling every tensor (not hashing all bytes) keeps this fast for a ViT-g while still
    changing after any training step or any partial fine-tune.
    """
    h = hashlib.sha1(type(backbone).__name__.encode())
    for name, t in backbone.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        flat = t.detach().reshape(-1)
        if flat.numel():
            step = max(1, flat.numel() // samples_per_tensor)
            h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def files_fingerprint(paths: list[str], labels: list[int]) -> str:
    """Hash of the file list, each file's mtime and size, and the labels."""
    h = hashlib.sha1()
    for path, label in zip(paths, labels, strict=True):
        try:
            st = os.stat(path)
            stamp = f"{st.st_mtime_ns}:{st.st_size}"
        except OSError:
            stamp = "missing"
        h.update(f"{path}|{stamp}|{label}\n".encode())
    return h.hexdigest()[:16]


def cache_key(parts: dict[str, Any]) -> str:
    """A folder name for one (backbone, files, transform, variant) combination."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def load_entry(cache_dir: str | Path, key: str) -> dict | None:
    """A complete cache entry as {"features" (memmap-backed), "labels", "meta"}, or None."""
    entry = Path(cache_dir) / key
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        return None
    n = meta["count"]
    # copy-on-write mapping: torch gets a writable view, the file is never modified
    feats = np.load(entry / "features.npy", mmap_mode="c")[:n]
    labels = np.load(entry / "labels.npy")[:n]
    return {
        "features": torch.from_numpy(feats),
        "labels": torch.from_numpy(labels.astype(np.int64)),
        "meta": meta,
    }


class FeatureWriter:
    """Rows appended batch by batch: to a memmap in `cache_dir`, or to RAM without one."""

    def __init__(self, capacity: int, cache_dir: str | Path | None, key: str) -> None:
        self.capacity, self.count, self.key = capacity, 0, key
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.tmp = self.cache_dir / f".{key}.tmp-{os.getpid()}" if self.cache_dir else None
        self.features: np.ndarray | torch.Tensor | None = None
        self.labels = np.zeros(capacity, dtype=np.int64)

    def _allocate(self, dim: int) -> None:
        if self.tmp is None:
            self.features = torch.empty(self.capacity, dim)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.features = np.lib.format.open_memmap(
            self.tmp / "features.npy", mode="w+", dtype=np.float32, shape=(self.capacity, dim)
        )

    def append(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        if self.features is None:
            self._allocate(feats.shape[1])
        n = feats.shape[0]
        rows = slice(self.count, self.count + n)
        if isinstance(self.features, torch.Tensor):
            self.features[rows] = feats
        else:
            self.features[rows] = feats.numpy()
        self.labels[rows] = labels.numpy()
        self.count += n

    def finish(self, meta: dict) -> dict:
        """Publish the entry (atomic rename) and return it like `load_entry` does."""
        labels = torch.from_numpy(self.labels[: self.count].copy())
        if self.tmp is None:
            return {"features": self.features[: self.count], "labels": labels, "meta": meta}
        self.features.flush()
        del self.features
        np.save(self.tmp / "labels.npy", self.labels)
        meta = {**meta, "format": FORMAT, "count": self.count}
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        final = self.cache_dir / self.key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(self.tmp, final)
        return load_entry(self.cache_dir, self.key)

    def abort(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
