"""`dinolab.train(...)`: a pretraining run from Python arguments (`dinolab.api.train`).

It lives in the train package so that the callable package (`dinolab/train/__init__.py`) and
`dinolab.api` both import it from below: neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["dotted", "train"]


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
