"""Copy detection (Copydays-style): find the original of an edited copy among distractors.

DINO's protocol (eval_copy_detection.py): images resized to imsize x imsize (320), descriptor
= final-normed CLS concatenated with GeM (p = 4) of the final-normed patch tokens; PCA
whitening (power 0.5) learned on a separate image set; L2-normalised; cosine top-k (20).
Whitening covariance: centred by default; `dino_compat=True` uses DINO's uncentred one.

Metric: per query block, the mean of the trapezoid AP (`ranking_metrics.average_precision`)
of the originals found in the top k; the Copydays "strong" block is the headline.

The pairs file maps each query to its original(s), relative to the query and database
folders: CSV with a header `query,original[,block]` (one row per pair) or JSON, a list of
{"query", "original" or "originals", "block"}. Every other image under the database folder
is a distractor.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinolab.data.datasets import find_images
from dinolab.eval.descriptors import image_descriptors
from dinolab.eval.ranking_metrics import average_precision
from dinolab.eval.results import markdown_table, write_results
from dinolab.eval.whitening import PCAWhitening

HEADLINE = "strong"


def read_pairs(path: str | Path) -> dict[str, dict]:
    """{query: {"originals": [...], "block": name}} in file order (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pairs file '{path}' does not exist.")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"'{path}' is not valid JSON ({exc}).") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"'{path}' must hold a list of {{query, original, block}} objects.")
    else:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    pairs: dict[str, dict] = {}
    for i, row in enumerate(rows):
        originals = row.get("originals") or row.get("original")
        if not row.get("query") or not originals:
            raise ValueError(f"'{path}' row {i + 1} needs a query and an original.")
        originals = [originals] if isinstance(originals, str) else list(originals)
        entry = pairs.setdefault(row["query"], {"originals": [], "block": "all"})
        entry["originals"] += [o for o in originals if o not in entry["originals"]]
        entry["block"] = row.get("block") or entry["block"]
    if not pairs:
        raise ValueError(f"'{path}' lists no pairs.")
    return pairs


def copy_detection_scores(
    queries: Tensor, database: Tensor, positives: list[list[int]], blocks: list[str], topk: int
) -> dict:
    """mAP per block (and "all") from the top-k cosine ranks of L2-normalised descriptors."""
    sim = F.normalize(queries.float(), dim=1) @ F.normalize(database.float(), dim=1).T
    k = min(topk, database.shape[0])
    top = torch.topk(sim, k, dim=1).indices.numpy()
    aps = []
    for row, pos in zip(top, positives, strict=True):
        ranks = np.flatnonzero(np.isin(row, pos))
        aps.append(average_precision(ranks, len(pos)))
    per_block = {}
    for name in dict.fromkeys(blocks):
        sel = [a for a, b in zip(aps, blocks, strict=True) if b == name]
        per_block[name] = {"mAP": 100 * float(np.mean(sel)), "n_queries": len(sel)}
    headline = HEADLINE if HEADLINE in per_block else "all"
    return {
        "topk": k,
        "headline": headline,
        "mAP": per_block[headline]["mAP"] if headline in per_block else 100 * float(np.mean(aps)),
        "mAP_all": 100 * float(np.mean(aps)),
        "blocks": per_block,
        "ap_per_query": [100 * a for a in aps],
    }


def match_pairs(
    pairs: dict, queries_root: Path, db_root: Path
) -> tuple[list[str], list[str], list]:
    db_paths = find_images(db_root)
    if not db_paths:
        raise ValueError(f"No images under the database folder '{db_root}'.")
    index = {str(Path(p).relative_to(db_root)): i for i, p in enumerate(db_paths)}
    query_paths, positives = [], []
    for query, entry in pairs.items():
        q = queries_root / query
        if not q.is_file():
            raise FileNotFoundError(
                f"Query '{query}' of the pairs file is not under '{queries_root}'."
            )
        missing = [o for o in entry["originals"] if o not in index]
        if missing:
            raise ValueError(f"Original '{missing[0]}' of query '{query}' is not in '{db_root}'.")
        query_paths.append(str(q))
        positives.append([index[o] for o in entry["originals"]])
    return query_paths, db_paths, positives


def run_copydetect(
    backbone: nn.Module,
    db_root: str | Path,
    queries_root: str | Path,
    pairs_file: str | Path,
    whiten_root: str | Path | None = None,
    dino_compat: bool = False,
    imsize: int = 320,
    topk: int = 20,
    out_dir: str | Path | None = None,
    **descriptor_kwargs,
) -> dict:
    """Describe, whiten, rank, score; writes copydetect.json / .md (see the module docstring)."""
    pairs = read_pairs(pairs_file)
    query_paths, db_paths, positives = match_pairs(pairs, Path(queries_root), Path(db_root))
    t0 = time.perf_counter()
    kw = {"imsize": imsize, "kind": "cls+gem", "square": True, **descriptor_kwargs}
    database = image_descriptors(backbone, db_paths, desc="database", **kw)
    queries = image_descriptors(backbone, query_paths, desc="queries", **kw)
    whitening = "none (no --whiten set)"
    if whiten_root is not None:
        whiten_paths = find_images(whiten_root)
        if not whiten_paths:
            raise ValueError(f"No images under the whitening folder '{whiten_root}'.")
        pca = PCAWhitening.fit(
            image_descriptors(backbone, whiten_paths, desc="whitening", **kw),
            centred=not dino_compat,
        )
        database, queries = pca.apply(database), pca.apply(queries)
        whitening = (
            f"PCA power 0.5 on {len(whiten_paths)} images, "
            + ("uncentred covariance (DINO)" if dino_compat else "centred covariance")
            + (f", {pca.n_floored} eigenvalues floored" if pca.n_floored else "")
        )
    seconds = time.perf_counter() - t0
    blocks = [pairs[q]["block"] for q in pairs]
    result = {
        "protocol": "copydetect",
        "db": str(db_root),
        "queries": str(queries_root),
        "pairs": str(pairs_file),
        "n_db": len(db_paths),
        "n_queries": len(query_paths),
        "imsize": imsize,
        "descriptor": "CLS + GeM(p=4) of patch tokens",
        "whitening": whitening,
        "descriptor_seconds": round(seconds, 3),
        **copy_detection_scores(queries, database, positives, blocks, topk),
    }
    if out_dir is not None:
        write_results(out_dir, "copydetect", result, copydetect_table(result))
    return result


def copydetect_table(result: dict) -> str:
    """mAP per block, the headline block first."""
    blocks = result["blocks"]
    names = [b for b in blocks if b == result["headline"]] + [
        b for b in blocks if b != result["headline"]
    ]  # the headline, then the pairs file's order
    rows = [[b, blocks[b]["n_queries"], blocks[b]["mAP"]] for b in names]
    title = (
        f"## Copy detection: {result['n_queries']} queries, {result['n_db']} database images, "
        f"{result['imsize']} px, top {result['topk']}\n\nWhitening: {result['whitening']}."
    )
    return markdown_table(title, ["block", "queries", "mAP"], rows)
