"""Ground truth of instance retrieval in the revisited Oxford / Paris format, read safely.

The format (Radenovic et al. 2018): `imlist` (database image names), `qimlist` (query image
names) and `gnd`, one dict per query with `easy`, `hard` and `junk` (indices into imlist, or
names here) and an optional query box `bbx` = [x1, y1, x2, y2]. It comes as JSON or as the
original `gnd_*.pkl`; a pickle can run code when it is loaded, so pickles go through an
unpickler that admits only lists, dicts, numbers, strings and plain numpy arrays.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dinolab.data.datasets import IMAGE_EXTENSIONS

# the only globals a revisited gnd pickle needs: numpy arrays and scalars (protocols 0-5)
_NUMPY_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}
_NUMPY_GLOBALS |= {(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")}


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """The one use of `_codecs.encode` in protocol-2 numpy pickles: array bytes as latin-1."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"it asks for _codecs.encode with {encoding!r}")
    return text.encode("latin1")


class _DataOnlyUnpickler(pickle.Unpickler):
    """Refuses every global but numpy's array / dtype / scalar constructors."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise pickle.UnpicklingError(f"it asks for {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it holds a persistent reference")


def load_data_pickle(path: str | Path) -> object:
    """A pickle of plain data (lists, dicts, numbers, strings, numpy arrays), never code."""
    try:
        data = _DataOnlyUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(
            f"'{path}' is not a plain-data pickle ({exc}): only lists, dicts, numbers, strings "
            "and numpy arrays are read; convert it to JSON."
        ) from None
    return data


@dataclass(frozen=True)
class QueryTruth:
    """One query: database indices of its easy, hard and junk images, and its box (or None)."""

    easy: np.ndarray
    hard: np.ndarray
    junk: np.ndarray
    box: tuple[float, float, float, float] | None


@dataclass(frozen=True)
class GroundTruth:
    db_names: list[str]
    query_names: list[str]
    queries: list[QueryTruth]

    def protocol(self, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(positives, junk) per query: Medium = easy+hard / junk, Hard = hard / junk+easy."""
        if name == "medium":
            return [np.concatenate([q.easy, q.hard]) for q in self.queries], [
                q.junk for q in self.queries
            ]
        if name == "hard":
            return [q.hard for q in self.queries], [
                np.concatenate([q.junk, q.easy]) for q in self.queries
            ]
        raise ValueError(f"Unknown revisited protocol '{name}': use medium or hard.")


def read_ground_truth(path: str | Path) -> GroundTruth:
    """A .json or .pkl file in the revisited format (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Ground-truth file '{path}' does not exist.")
    if path.suffix.lower() in (".pkl", ".pickle"):
        raw = load_data_pickle(path)
    else:
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"'{path}' is not valid JSON ({exc}).") from None
    return parse_ground_truth(raw, str(path))


def parse_ground_truth(raw: object, where: str = "the ground truth") -> GroundTruth:
    """Check and normalise a revisited-format dict; every problem is one sentence."""
    if not isinstance(raw, dict) or not {"imlist", "qimlist", "gnd"} <= raw.keys():
        raise ValueError(f"{where} needs the keys imlist, qimlist and gnd (revisited format).")
    db_names = [str(n) for n in raw["imlist"]]
    query_names = [str(n) for n in raw["qimlist"]]
    gnd = list(raw["gnd"])
    if len(gnd) != len(query_names):
        raise ValueError(f"{where} has {len(gnd)} gnd entries for {len(query_names)} queries.")
    index = {name: i for i, name in enumerate(db_names)}
    queries = []
    for qi, entry in enumerate(gnd):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: gnd[{qi}] is not a dict of easy / hard / junk.")
        lists = [_indices(entry.get(key, []), index, f"{where}: gnd[{qi}]['{key}']")
                 for key in ("easy", "hard", "junk")]  # fmt: skip
        box = entry.get("bbx")
        if box is not None:
            box = tuple(float(v) for v in np.asarray(box, dtype=np.float64).ravel())
            if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"{where}: gnd[{qi}]['bbx'] is not [x1, y1, x2, y2].")
        queries.append(QueryTruth(*lists, box=box))
    return GroundTruth(db_names, query_names, queries)


def _indices(values: object, index: dict[str, int], what: str) -> np.ndarray:
    out = []
    for v in np.asarray(values, dtype=object).ravel():
        if isinstance(v, str):
            if v not in index:
                raise ValueError(f"{what} names '{v}', which is not in imlist.")
            out.append(index[v])
        elif isinstance(v, (int, np.integer)) and 0 <= int(v) < len(index):
            out.append(int(v))
        else:
            raise ValueError(f"{what} holds {v!r}: use imlist indices or names.")
    return np.asarray(out, dtype=np.int64)


def image_paths(root: str | Path, names: list[str]) -> list[str]:
    """The file of each name under root: NAME, NAME.<image ext> or jpg/NAME.jpg (revisited)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder '{root}' does not exist.")
    paths = []
    for name in names:
        candidates = [root / name, *(root / (name + ext) for ext in IMAGE_EXTENSIONS)]
        candidates.append(root / "jpg" / (name + ".jpg"))
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"Image '{name}' of the ground truth is not under '{root}' (tried NAME, "
                "NAME.jpg, ..., jpg/NAME.jpg)."
            )
        paths.append(str(found))
    return paths
