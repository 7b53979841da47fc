"""Exact cosine k-nearest-neighbour search: chunked pure torch, or faiss when importable.

Rows are L2-normalised, so the inner product is the cosine. Both backends are exact
(brute force, `faiss.IndexFlatIP`) and give the same neighbours on the same inputs (tested);
faiss is only faster. `knn_to_disk` writes the result chunk by chunk into memmaps with a
progress file, so a k-NN graph over a large set resumes where it stopped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm

from dinolab.curate.store import read_json, write_json

BACKENDS = ("auto", "torch", "faiss")


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def _backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"Unknown k-NN backend '{name}': use one of {', '.join(BACKENDS)}.")
    if name == "faiss" and not faiss_available():
        raise ValueError("--backend faiss needs faiss: pip install 'dinolab[curate]'.")
    if name == "auto":
        return "faiss" if faiss_available() else "torch"
    return name


def _torch_block(
    q: torch.Tensor, base: torch.Tensor, k: int, offset: int | None, base_chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of q against every base row, merging base chunks; `offset`: q's own rows to skip."""
    best_s = torch.full((len(q), k), -float("inf"))
    best_i = torch.full((len(q), k), -1, dtype=torch.long)
    for lo in range(0, len(base), base_chunk):
        sims = q @ base[lo : lo + base_chunk].T
        if offset is not None:  # self-search: a row is not its own neighbour
            rows = torch.arange(len(q))
            cols = rows + offset - lo
            inside = (cols >= 0) & (cols < sims.shape[1])
            sims[rows[inside], cols[inside]] = -float("inf")
        s = torch.cat([best_s, sims], dim=1)
        i = torch.cat([best_i, torch.arange(lo, lo + sims.shape[1]).expand(len(q), -1)], dim=1)
        best_s, pos = s.topk(k, dim=1)
        best_i = i.gather(1, pos)
    return best_s, best_i


def _faiss_block(q: torch.Tensor, index, k: int, offset: int | None):
    extra = int(offset is not None)
    s, i = index.search(q.numpy(), k + extra)
    s, i = torch.from_numpy(s), torch.from_numpy(i).long()
    if offset is not None:  # drop the row itself, or the last neighbour when ties hid it
        own = i == torch.arange(offset, offset + len(q))[:, None]
        own[~own.any(dim=1), -1] = True
        keep = ~own
        s, i = s[keep].view(len(q), k), i[keep].view(len(q), k)
    return s, i


def _faiss_index(base: torch.Tensor):
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base.numpy(), dtype=np.float32))
    return index


def knn(
    queries: torch.Tensor,
    base: torch.Tensor | None = None,
    k: int = 64,
    chunk_size: int = 4096,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities, indices), each [Q, k'], best first; `base=None`: queries against
    themselves without self matches. k' = min(k, candidates)."""
    backend = _backend(backend)
    self_search = base is None
    base = queries if base is None else base
    queries, base = queries.float().contiguous(), base.float().contiguous()
    k = min(k, len(base) - int(self_search))
    if k <= 0:
        return torch.zeros(len(queries), 0), torch.zeros(len(queries), 0, dtype=torch.long)
    index = _faiss_index(base) if backend == "faiss" else None
    sims, idx = [], []
    for lo in range(0, len(queries), chunk_size):
        q = queries[lo : lo + chunk_size]
        offset = lo if self_search else None
        if index is not None:
            s, i = _faiss_block(q, index, k, offset)
        else:
            s, i = _torch_block(q, base, k, offset, chunk_size)
        sims.append(s)
        idx.append(i)
    return torch.cat(sims), torch.cat(idx)


def knn_to_disk(
    queries: torch.Tensor,
    base: torch.Tensor | None,
    k: int,
    out_dir: str | Path,
    name: str,
    chunk_size: int = 4096,
    backend: str = "auto",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """`knn` written chunk by chunk to `<name>_sims.npy` / `<name>_idx.npy`, resumable."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = max(0, min(k, len(queries if base is None else base) - int(base is None)))
    state_file = out / f"{name}_progress.json"
    shape = {"queries": len(queries), "k": k, "base": None if base is None else len(base)}
    # the sums tell other inputs of the same size apart (dedup with and without --whiten)
    shape["sums"] = [round(float(t.double().sum()), 6) for t in (queries, base) if t is not None]
    state = read_json(state_file) if state_file.is_file() else None
    if state is None or state["shape"] != shape:
        open_memmap(out / f"{name}_sims.npy", "w+", np.float32, (len(queries), k)).flush()
        open_memmap(out / f"{name}_idx.npy", "w+", np.int64, (len(queries), k)).flush()
        state = {"shape": shape, "done": 0}
        write_json(state_file, state)
    sims = np.load(out / f"{name}_sims.npy", mmap_mode="r+")
    idx = np.load(out / f"{name}_idx.npy", mmap_mode="r+")
    starts = range(state["done"], len(queries), chunk_size)
    for lo in tqdm(starts, desc=f"k-NN {name}", unit="chunk", disable=not progress):
        hi = min(lo + chunk_size, len(queries))
        if base is None:  # rows lo:hi of a self-search: their own rows are excluded
            s, i = _self_rows(queries, lo, hi, k, chunk_size, backend)
        else:
            s, i = knn(queries[lo:hi], base, k, chunk_size, backend)
        sims[lo:hi], idx[lo:hi] = s.numpy(), i.numpy()
        sims.flush()
        idx.flush()
        state["done"] = hi
        write_json(state_file, state)
    return np.asarray(sims), np.asarray(idx)


def _self_rows(x: torch.Tensor, lo: int, hi: int, k: int, chunk: int, backend: str):
    """Rows lo:hi of knn(x) (self-search) without searching the other rows."""
    x = x.float().contiguous()
    if _backend(backend) == "faiss":
        return _faiss_block(x[lo:hi], _faiss_index(x), k, lo)
    return _torch_block(x[lo:hi], x, k, lo, chunk)
