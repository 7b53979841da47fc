"""Instance retrieval on revisited-format benchmarks (Oxford / Paris, or your own set).

DINO's protocol (eval_image_retrieval.py): each image resized so its long side is `imsize`
(aspect kept), the final-normed CLS token of the last block, optionally averaged over scales
{1, 1/sqrt 2, 1/2}, L2-normalised; the database ranked by cosine similarity. DINO feeds the
whole query image; the revisited standard crops each query to its box first
(`crop_queries=True`), which is harder, so the result says which one was used.

Scores: mAP and mP@1/5/10 on Medium (positives easy + hard, junk ignored) and Hard (positives
hard, junk + easy ignored), junk removed from the ranking, queries without positives left out
(`ranking_metrics.revisited_map`); per-query APs in the JSON.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinolab.eval.descriptors import image_descriptors
from dinolab.eval.ranking_metrics import revisited_map
from dinolab.eval.results import markdown_table, write_results
from dinolab.eval.retrieval_gt import GroundTruth, image_paths, read_ground_truth

PROTOCOLS = ("medium", "hard")
QUERY_MODES = {
    True: "cropped to their box (revisited standard)",
    False: "full images, not cropped (DINO's setting; scores higher than the revisited standard)",
}


def rank_database(queries: Tensor, database: Tensor) -> np.ndarray:
    """[n_queries, n_db] database indices by decreasing cosine similarity (ties: lower index)."""
    sim = F.normalize(queries.float(), dim=1) @ F.normalize(database.float(), dim=1).T
    return torch.argsort(-sim, dim=1, stable=True).numpy()


def retrieval_scores(
    queries: Tensor, database: Tensor, gt: GroundTruth, ks: Sequence[int] = (1, 5, 10)
) -> dict:
    """{"medium": scores, "hard": scores} of query / database descriptors against gt."""
    if queries.shape[0] != len(gt.query_names) or database.shape[0] != len(gt.db_names):
        raise ValueError(
            f"{queries.shape[0]} query and {database.shape[0]} database descriptors for a ground "
            f"truth of {len(gt.query_names)} queries and {len(gt.db_names)} images."
        )
    rankings = rank_database(queries, database)
    return {p: revisited_map(rankings, *gt.protocol(p), ks=ks) for p in PROTOCOLS}


def run_retrieval(
    backbone: nn.Module,
    db_root: str | Path,
    queries_root: str | Path | None,
    gt_file: str | Path,
    imsize: int = 224,
    multiscale: bool = False,
    crop_queries: bool = False,
    ks: Sequence[int] = (1, 5, 10),
    out_dir: str | Path | None = None,
    **descriptor_kwargs,
) -> dict:
    """Describe the database and queries (cached), rank, score; writes retrieval.json / .md.

    `descriptor_kwargs` go to `descriptors.image_descriptors` (mean, std, device, precision,
    batch_size, num_workers, progress, cache_dir).
    """
    gt = read_ground_truth(gt_file)
    db_paths = image_paths(db_root, gt.db_names)
    query_paths = image_paths(queries_root or db_root, gt.query_names)
    boxes = None
    if crop_queries:
        boxes = [q.box for q in gt.queries]
        if any(b is None for b in boxes):
            raise ValueError(f"--crop-queries needs a bbx for every query in '{gt_file}'.")
    t0 = time.perf_counter()
    kw = {"imsize": imsize, "kind": "cls", "multiscale": multiscale, **descriptor_kwargs}
    database = image_descriptors(backbone, db_paths, desc="database", **kw)
    queries = image_descriptors(backbone, query_paths, boxes=boxes, desc="queries", **kw)
    seconds = time.perf_counter() - t0
    result = {
        "protocol": "retrieval",
        "db": str(db_root),
        "queries": str(queries_root or db_root),
        "gt": str(gt_file),
        "n_db": len(db_paths),
        "n_queries": len(query_paths),
        "imsize": imsize,
        "multiscale": multiscale,
        "query_images": QUERY_MODES[crop_queries],
        "descriptor_seconds": round(seconds, 3),
        **retrieval_scores(queries, database, gt, ks),
    }
    if out_dir is not None:
        write_results(out_dir, "retrieval", result, retrieval_table(result))
    return result


def retrieval_table(result: dict) -> str:
    """Medium / Hard mAP and mP@k as markdown, with the query mode under the title."""
    metrics = ["mAP", *(k for k in result["medium"] if k.startswith("mP@"))]
    rows = [
        [p.capitalize(), *("-" if v is None else v for v in (result[p][m] for m in metrics))]
        for p in PROTOCOLS
    ]  # "-": no query of the set has a positive under that protocol
    title = (
        f"## Retrieval: {result['n_queries']} queries, {result['n_db']} images, "
        f"long side {result['imsize']}{', multi-scale' if result['multiscale'] else ''}\n\n"
        f"Queries: {result['query_images']}."
    )
    return markdown_table(title, ["protocol", *metrics], rows)
