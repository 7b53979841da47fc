"""The Python API: `dinolab.train`, `dinolab.load`, `dinolab.embed`, `dinolab.evaluate`.

Thin doors onto the code the CLI runs (`train.pretrain`, `hub.load`, `extract`, `eval.*`), so
a script gets the same runs, files and numbers as `dinolab pretrain` / `extract` / `eval`.
`import dinolab` loads none of this until one of them is first used (`dinolab/__init__.py`).

    import dinolab
    run = dinolab.train("photos/", out="runs/x", preset="quickstart", train={"epochs": 5})
    model = dinolab.load("runs/x")
    feats = dinolab.embed(model, "photos/")
    knn = dinolab.evaluate(model, train="labelled/train", val="labelled/val")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from dinolab import hub
from dinolab.train.entry import dotted, train  # noqa: F401 (dotted: re-exported)

__all__ = ["embed", "evaluate", "load", "train"]
PROTOCOLS = ("knn", "linear")


def load(name_or_path: str | Path, weights: str | Path | None = None, **options: Any) -> nn.Module:
    """An eval-mode backbone from a run directory (its teacher), a weights file (dinolab,
    timm-style, official DINO / DINOv2, HuggingFace directory) or a hub name; loaded strictly.

    It carries its preprocessing (`dinolab.models.preprocessing.preprocessing_of(model)`).
    `weights` is a local file for a hub name (offline); `options` go to `dinolab.hub.load`
    (`which="student"`, `with_head=True`, `pretrained=False`).

    Example (the run of `dinolab.train`'s example):

        >>> import torch
        >>> model = dinolab.load(run)
        >>> feats = model.forward_features(torch.zeros(1, 3, 48, 48))
        >>> sorted(feats)[:2], feats["x_norm_clstoken"].shape
        (['masks', 'x_norm_clstoken'], torch.Size([1, 192]))
    """
    return hub.load(name_or_path, weights, **options)


def embed(
    model: nn.Module | str | Path,
    images: Any,
    *,
    out: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    **options: Any,
) -> dict[str, Any]:
    """Features of images with a frozen backbone: {"cls": [N, D], "pooled": [N, D], "paths"}.

    `model` is a loaded model or anything `dinolab.load` takes (run directory, weights file,
    hub name); `images` a folder (recursive), a .txt list, a list of paths or a normalised
    tensor [B, 3, H, W]. Images are prepared as the model expects (its run's normalisation and
    size). `options` go to `dinolab.extract.extract` (`patch_tokens=True`, `last_n=4`,
    `image_size=`, `batch_size=`, `progress=False`, ...); with `out=` (.safetensors, .npz, .npy,
    .csv or .pt) the features are also written there.

    Example (the run of `dinolab.train`'s example):

        >>> feats = dinolab.embed(run, "dinolab_data/clothing-64/validation/dress", progress=False)
        >>> feats["cls"].shape[0] == len(feats["paths"]), feats["cls"].shape[1]
        (True, 192)
    """
    from dinolab.distributed import resolve_device
    from dinolab.extract import extract, save_features

    feats = extract(model, images, device=resolve_device(device), precision=precision, **options)
    if out is not None:
        save_features(feats, out)
    return feats


def evaluate(
    model: nn.Module | str | Path,
    train: str | Path,
    val: str | Path,
    protocol: str = "knn",
    *,
    out: str | Path | None = None,
    image_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 128,
    num_workers: int = 0,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """k-NN (`protocol="knn"`) or linear probe (`"linear"`) of a frozen backbone on labelled
    folders (one subfolder per class); returns the result dict (`scores` by k for k-NN;
    `best`, the chosen head with its `top1`, for linear) and, with `out=`, writes
    `<protocol>.json` / `.md` there.

    Images are prepared as the model expects; `options` go to `dinolab.eval.knn.run_knn`
    (`ks=[10, 20]`, `temperature=`) or `dinolab.eval.linear.run_linear` (`mode="fast"`,
    `epochs=`).

    Example (the run of `dinolab.train`'s example):

        >>> data = "dinolab_data/clothing-64"
        >>> result = dinolab.evaluate(run, f"{data}/validation", f"{data}/test", ks=[20],
        ...                           progress=False)
        >>> 0 <= result["scores"]["20"]["top1"] <= 100, result["n_val"]
        (True, 372)
    """
    from dinolab.distributed import resolve_device
    from dinolab.models.preprocessing import preprocessing_of

    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol '{protocol}': use one of {', '.join(PROTOCOLS)}.")
    if not isinstance(model, nn.Module):
        model = hub.load(model)
    pre = preprocessing_of(model)
    features = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "device": resolve_device(device),
        "precision": precision,
        "mean": pre.mean,
        "std": pre.std,
        "resize_ratio": pre.resize_ratio,
        "progress": progress,
    }
    size = image_size or pre.image_size
    if protocol == "knn":
        from dinolab.eval.knn import run_knn

        return run_knn(model, str(train), str(val), size, out_dir=out, **features, **options)
    from dinolab.eval.linear import run_linear

    return run_linear(model, str(train), str(val), size, out_dir=out, **features, **options)
