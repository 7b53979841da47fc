"""`dinolab eval davis`: DAVIS video object segmentation by label propagation, scored officially.

For every sequence: the frames at DINO's size (`davis_data`), the backbone's last-block patch
tokens after the final norm, label propagation from the first annotation (`label_propagation`),
indexed PNGs in OUT/davis/<sequence>/, and J / F per object (`davis_metrics`). OUT gets
davis.json (everything, per sequence and per frame), davis.md (the table),
davis_per_sequence.csv (the official per-object CSV columns) and davis.png (a few frames of
each sequence with their masks). With `cache_dir`, each sequence's features are kept on disk.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dinolab.eval import davis_data as data
from dinolab.eval.cache import backbone_fingerprint, cache_key, files_fingerprint
from dinolab.eval.davis_metrics import score_sequence, summarise
from dinolab.eval.label_propagation import LabelPropagator, labels_from_soft
from dinolab.eval.results import markdown_table, write_results
from dinolab.hardware import autocast, resolve_precision
from dinolab.models.patch_features import patch_feature_map, patch_size_of

log = logging.getLogger("dinolab")
FIGURE_FRAMES = 4


@torch.no_grad()
def frame_features(
    backbone: nn.Module, frame: torch.Tensor, patch: int, device: torch.device, precision: str
) -> torch.Tensor:
    """Last-block patch tokens after the final norm, [h, w, D] float32, of one [3, H, W] frame
    (`patch_feature_map`; `patch` must be the backbone's, as `patch_size_of` gives it)."""
    with autocast(device, precision):
        fmap = patch_feature_map(backbone, frame[None].to(device))
    if fmap.shape[-2:] != (frame.shape[1] // patch, frame.shape[2] // patch):
        raise ValueError(f"patch {patch} is not the backbone's ({patch_size_of(backbone)}).")
    return fmap[0].permute(1, 2, 0).contiguous()


def _cached_features(backbone, frames, size_hw, patch, mean, std, device, precision, cache_dir):
    """Yield [h, w, D] features frame by frame; from / into cache_dir/<key>.npy if given."""
    path = None
    if cache_dir is not None:
        key = cache_key(
            {
                "what": "davis-v1",
                "backbone": backbone_fingerprint(backbone),
                "files": files_fingerprint([str(p) for p in frames], [0] * len(frames)),
                "size": list(size_hw),
                "mean": list(mean),
                "std": list(std),
                "precision": resolve_precision(precision, device)[0],
            }
        )
        path = Path(cache_dir) / f"davis-{key}.npy"
        if path.is_file():
            stored = np.load(path, mmap_mode="r")
            for t in range(len(frames)):
                yield torch.from_numpy(np.array(stored[t])).to(device)
            return
    store, tmp = None, None
    try:
        for t, p in enumerate(frames):
            x, _ = data.load_frame(p, size_hw, mean, std)
            feats = frame_features(backbone, x, patch, device, precision)
            if path is not None:
                if store is None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npy")
                    shape = (len(frames), *feats.shape)
                    store = np.lib.format.open_memmap(tmp, "w+", np.float32, shape)
                store[t] = feats.cpu().numpy()
            yield feats
        if store is not None:
            store.flush()
            del store
            os.replace(tmp, path)
    finally:
        if tmp is not None and tmp.exists():  # stopped part-way: no half-written entry
            tmp.unlink()


def run_sequence(
    backbone: nn.Module,
    root: str | Path,
    sequence: str,
    *,
    size: int = 480,
    multiple: int = 64,
    n_last_frames: int = 7,
    topk: int = 5,
    temperature: float = 0.1,
    radius: int = 12,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    bar: tqdm | None = None,
) -> dict:
    """Propagate the first annotation of one sequence: {"pred": [T, H, W] uint8 labels,
    "gt": [T, H, W] annotations, "frames": paths}."""
    device = torch.device(device)
    patch = patch_size_of(backbone)
    frames, anns = data.sequence_files(root, sequence)
    if None in anns:
        missing = frames[anns.index(None)].stem
        raise ValueError(
            f"sequence '{sequence}' has frames without an annotation (first: {missing}): "
            "scoring needs one per frame, as in DAVIS train / val."
        )
    first = data.read_annotation(anns[0])
    height, width = first.shape
    size_hw = data.processing_size(height, width, size, multiple, patch)
    grid = (size_hw[0] // patch, size_hw[1] // patch)
    n_classes = int(np.where(first == data.VOID, 0, first).max()) + 1
    feats = _cached_features(
        backbone, frames, size_hw, patch, mean, std, device, precision, cache_dir
    )
    seed = data.seed_labels(first, grid, n_classes).to(device)
    prop = LabelPropagator(next(feats), seed, n_last_frames, topk, temperature, radius)
    preds = [np.where(first == data.VOID, 0, first).astype(np.uint8)]
    if bar is not None:
        bar.update(1)
    for f in feats:
        preds.append(labels_from_soft(prop.step(f), patch, (height, width)))
        if bar is not None:
            bar.update(1)
    gt = [data.read_annotation(a) for a in anns]
    return {"pred": np.stack(preds), "gt": np.stack(gt), "frames": frames}


def run_davis(
    backbone: nn.Module,
    root: str | Path,
    out_dir: str | Path | None = None,
    *,
    sequences: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    progress: bool = True,
    write_masks: bool = True,
    figure: bool = True,
    **options,
) -> dict:
    """Label propagation on every sequence of a DAVIS folder, scored; results in out_dir.

    `options` go to `run_sequence` (size, multiple, n_last_frames, topk, temperature, radius,
    device, precision, cache_dir). mean / std default to the backbone's preprocessing.
    """
    from dinolab.models.preprocessing import preprocessing_of

    pre = preprocessing_of(backbone)
    mean, std = tuple(mean or pre.mean), tuple(std or pre.std)
    names = data.list_sequences(root, sequences)
    total = sum(len(data.sequence_files(root, s)[0]) for s in names)
    palette = data.davis_palette()
    per_sequence, drawn, start = {}, [], time.perf_counter()
    bar = tqdm(total=total, desc="davis", unit="frame", disable=not progress)
    for name in names:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        seq = run_sequence(backbone, root, name, mean=mean, std=std, bar=bar, **options)
        seconds = time.perf_counter() - t0
        scores = score_sequence(seq["gt"], seq["pred"])
        per_sequence[name] = {"objects": scores, "frames": len(seq["pred"]), "seconds": seconds}
        if out_dir is not None and write_masks:
            for labels, frame in zip(seq["pred"], seq["frames"], strict=True):
                path = Path(out_dir) / "davis" / name / f"{frame.stem}.png"
                data.write_indexed_png(path, labels, palette)
        if out_dir is not None and figure:
            drawn.append(_figure_row(name, seq))
    bar.close()
    seconds = time.perf_counter() - start
    result = _result(per_sequence, root, mean, std, options, seconds, total)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_results(out_dir, "davis", result, davis_table(result))
        _write_csv(out_dir / "davis_per_sequence.csv", per_sequence)
        if drawn:
            from dinolab.viz.propagation import propagation_figure

            title = f"J&F-Mean {100 * result['scores']['J&F-Mean']:.1f}"
            result["figure"] = str(propagation_figure(drawn, palette, out_dir / "davis.png", title))
    return result


def _figure_row(name: str, seq: dict) -> dict:
    """FIGURE_FRAMES frames spread over the sequence, shrunk to 320 px wide for the picture."""
    from PIL import Image

    picks = np.linspace(0, len(seq["frames"]) - 1, FIGURE_FRAMES).round().astype(int)
    frames = []
    for t in dict.fromkeys(picks.tolist()):
        rgb = Image.open(seq["frames"][t]).convert("RGB")
        w, h = 320, max(1, round(320 * rgb.height / rgb.width))
        labels = Image.fromarray(seq["pred"][t]).resize((w, h), Image.NEAREST)
        frames.append((t, np.asarray(rgb.resize((w, h), Image.BILINEAR)), np.asarray(labels)))
    return {"name": name, "frames": frames}


def _result(per_sequence, root, mean, std, options, seconds, total) -> dict:
    scores = summarise({k: v["objects"] for k, v in per_sequence.items()})
    table = {}
    for name, seq in per_sequence.items():
        objs = seq["objects"].values()
        j = float(np.mean([o["J_stats"]["mean"] for o in objs]))
        f = float(np.mean([o["F_stats"]["mean"] for o in objs]))
        table[name] = {"J&F-Mean": (j + f) / 2, "J-Mean": j, "F-Mean": f, **seq}
        table[name]["objects"] = {str(k): v for k, v in seq["objects"].items()}
    params = {k: v for k, v in options.items() if k not in ("device", "cache_dir")}
    params["precision"] = str(params.get("precision", "auto"))
    return {
        "protocol": "davis",
        "davis": str(root),
        "params": params,
        "mean": list(mean),
        "std": list(std),
        "scores": scores,
        "per_sequence": table,
        "seconds": seconds,
        "seconds_per_frame": seconds / max(total, 1),
    }


def _write_csv(path: Path, per_sequence: dict) -> None:
    """The official per-sequence CSV: one row per object, named <sequence>_<object>."""
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["Sequence", "J-Mean", "F-Mean"])
        for name, seq in per_sequence.items():
            for obj, s in seq["objects"].items():
                out.writerow([f"{name}_{obj}", f"{s['J_stats']['mean']:.6f}",
                              f"{s['F_stats']['mean']:.6f}"])  # fmt: skip


def davis_table(result: dict) -> str:
    """Markdown: the official summary row, then J&F / J / F per sequence (in %)."""
    s = result["scores"]
    keys = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    head = markdown_table(
        f"DAVIS label propagation ({len(result['per_sequence'])} sequences)",
        keys,
        [[100 * s[k] for k in keys]],
    )
    rows = [
        [name, 100 * v["J&F-Mean"], 100 * v["J-Mean"], 100 * v["F-Mean"], v["frames"]]
        for name, v in result["per_sequence"].items()
    ]
    header = ["sequence", "J&F", "J", "F", "frames"]
    return head + "\n" + markdown_table("Per sequence", header, rows)
