"""The embedding store `embed` writes, and the stage folders every later stage reads and writes.

A store holds `embeddings.npy` ([N, D] float32, memmapped, L2-normalised), `valid.npy` (which
rows decoded), `hashes.npy` (SHA-1 of each file's bytes), `files.txt` (one absolute path a line,
row order) and `progress.json`. A stage folder holds `selection.npy` (int64 rows of the store),
`source.json` (the store it indexes), `list.txt` and `report.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

EMBEDDINGS = "embeddings.npy"
VALID = "valid.npy"
HASHES = "hashes.npy"
FILES = "files.txt"
PROGRESS = "progress.json"
REPORT = "report.json"
SELECTION = "selection.npy"
SOURCE = "source.json"
LIST = "list.txt"


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temp file + rename): a killed stage never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


@dataclass
class Selection:
    """Some rows of an embedding store (all its valid rows, or a stage's output)."""

    store: Path
    rows: np.ndarray  # int64 rows of the store, in the stage's order

    def __len__(self) -> int:
        return len(self.rows)

    def all_paths(self) -> list[str]:
        return (self.store / FILES).read_text().splitlines()

    def paths(self) -> list[str]:
        files = self.all_paths()
        return [files[i] for i in self.rows.tolist()]

    def embeddings(self) -> torch.Tensor:
        """[len, D] float32 in RAM (the store stays on disk; this reads the selected rows)."""
        mm = np.load(self.store / EMBEDDINGS, mmap_mode="r")
        return torch.from_numpy(np.ascontiguousarray(mm[np.sort(self.rows)][self._unsort()]))

    def hashes(self) -> np.ndarray:
        return np.load(self.store / HASHES, mmap_mode="r")[self.rows]

    def _unsort(self) -> np.ndarray:
        order = np.argsort(self.rows, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return inverse


def open_selection(path: str | Path) -> Selection:
    """A store folder (its valid rows) or a stage folder (its selection) as a Selection."""
    p = Path(path)
    if (p / EMBEDDINGS).is_file():
        progress = read_json(p / PROGRESS)
        if progress["done"] < progress["count"]:
            raise ValueError(
                f"Embeddings in '{p}' are incomplete ({progress['done']} of {progress['count']} "
                "files): run `dinolab curate embed` again with the same --out to finish them."
            )
        return Selection(p, np.flatnonzero(np.load(p / VALID)).astype(np.int64))
    if (p / SOURCE).is_file() and (p / SELECTION).is_file():
        store = Path(read_json(p / SOURCE)["store"])
        return Selection(store, np.load(p / SELECTION).astype(np.int64))
    raise FileNotFoundError(
        f"'{p}' is neither an embedding folder (from `dinolab curate embed`) nor a curate "
        "stage folder (dedup, cluster, sample, retrieve): check the path."
    )


def write_stage(out_dir: str | Path, store: Path, rows: np.ndarray, report: dict) -> dict:
    """selection.npy, source.json, list.txt and report.json of one stage; returns the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows, dtype=np.int64)
    np.save(out / SELECTION, rows)
    write_json(out / SOURCE, {"store": str(Path(store).resolve())})
    files = (Path(store) / FILES).read_text().splitlines()
    (out / LIST).write_text("".join(files[i] + "\n" for i in rows.tolist()))
    report = {**report, "images": int(len(rows)), "list": str(out / LIST)}
    write_json(out / REPORT, report)
    return report
