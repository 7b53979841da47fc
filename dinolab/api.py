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

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from dinolab import hub

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


def train(
    data: str | Path | None = None,
    out: str | Path | None = None,
    preset: str | None = None,
    *,
    resume: bool | str = False,
    config: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Pretrain on the images in `data` into the run directory `out`; returns the run summary.

    `preset` is a preset name (`dinolab config --preset NAME` shows it); `config` (a dict) and
    `**overrides` set any key, nested (`optim={"base_lr": 1e-3}`) or dotted
    (`**{"optim.base_lr": 1e-3}`); keyword overrides win over `config`. `resume=True`
    continues the run in `out` (its saved config plus the overrides), `resume="auto"` starts
    it or continues it. The summary holds `run_dir`, `teacher_backbone`, `steps`, `epochs`
    and, with `eval={"train": ..., "val": ...}`, the teacher's k-NN scores (`knn`).

    Example (from the repository root; a few CPU seconds on the bundled photos):

        >>> import tempfile, dinolab
        >>> run = tempfile.mkdtemp() + "/run"
        >>> summary = dinolab.train("dinolab_data/clothing-64/validation", out=run,
        ...     preset="quickstart", train={"max_steps": 2, "batch_size": 16, "progress": False})
        >>> summary["steps"]
        2
    """
    from dinolab.config.loader import load_config, load_saved_config
    from dinolab.train.pretrain import pretrain

    items = dotted({**(config or {}), **overrides})
    if data is not None:
        items["data.path"] = str(data)
    if out is not None:
        items["out_dir"] = str(out)
    strings = [f"{k}={json.dumps(_plain(v))}" for k, v in items.items()]
    if resume is True:
        if out is None:
            raise ValueError("resume=True continues a run: give its directory as out=...")
        saved = load_saved_config(Path(out) / "config.yaml")
        from omegaconf import OmegaConf

        cfg = load_config(
            base=OmegaConf.to_container(OmegaConf.structured(saved)), overrides=strings
        )
        return pretrain(cfg, resume=True)
    cfg = load_config(preset, strings)
    if resume == "auto":
        from dinolab.train.resume import should_resume

        return pretrain(cfg, resume=should_resume(cfg))
    if resume is not False:
        raise ValueError(f"resume={resume!r}: use False, True or 'auto'.")
    return pretrain(cfg)


def dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested and dotted keys as dotted ones.

    >>> dotted({"optim": {"base_lr": 1e-3}, "train.epochs": 5})
    {'optim.base_lr': 0.001, 'train.epochs': 5}
    """
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(dotted(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _plain(value: Any) -> Any:
    """JSON (so YAML) for OmegaConf: paths as strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


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
        "progress": progress,
    }
    size = image_size or pre.image_size
    if protocol == "knn":
        from dinolab.eval.knn import run_knn

        return run_knn(model, str(train), str(val), size, out_dir=out, **features, **options)
    from dinolab.eval.linear import run_linear

    return run_linear(model, str(train), str(val), size, out_dir=out, **features, **options)
