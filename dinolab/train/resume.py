"""`dinolab pretrain ... --resume auto`: one command that starts a run or continues it.

A requeued cluster job re-issues the command it was started with. If `out_dir` already holds
that run, it continues (from step 0 when it was killed before its first checkpoint); a config
that differs from the saved one is refused, except for the keys in `RESUMABLE_KEYS`, which set
how long and how visibly a run goes, not what each step computes. A key added to dinolab after
the run was saved (`config.legacy.ADDED`) keeps the run's value: the command predates it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from dinolab.config import legacy
from dinolab.config.loader import ConfigError, load_saved_config
from dinolab.config.schema import Config
from dinolab.run_dir import CONFIG, has_checkpoint

log = logging.getLogger("dinolab")

RESUMABLE_KEYS = frozenset(
    {
        "out_dir",
        "train.epochs",
        "train.max_steps",
        "train.checkpoint_every_epochs",
        "train.checkpoint_every_steps",
        "train.keep_checkpoints",
        "train.log_every_steps",
        "train.progress",
        "train.tensorboard",
        "train.loggers",
        "train.project",
        "train.dist_timeout_s",
        "train.stop_grace_s",
        "data.num_workers",
    }
)


def config_changes(saved: Config, given: Config) -> dict[str, tuple]:
    """Every dotted key whose value differs, as {key: (saved value, given value)}."""
    a, b = _flat(saved), _flat(given)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def check_same_run(saved: Config, given: Config, run_dir: Path) -> None:
    """Refuse, in one sentence naming the keys, a config that is not the saved run's."""
    changed = {k: v for k, v in config_changes(saved, given).items() if k not in RESUMABLE_KEYS}
    if not changed:
        return
    shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, (a, b) in changed.items())
    raise ConfigError(
        f"'{run_dir}' holds a run with another config ({shown}): give the run's own settings "
        f"again, continue it as saved with `dinolab pretrain --resume {run_dir}`, or choose "
        "another out_dir=..."
    )


def should_resume(cfg: Config) -> bool:
    """For `--resume auto`: whether `cfg.out_dir` holds this run already (checked) or not."""
    run_dir = Path(cfg.out_dir)
    saved = run_dir / CONFIG
    if saved.is_file():
        run_cfg = load_saved_config(saved)
        keep_predating_keys(saved, run_cfg, cfg)
        check_same_run(run_cfg, cfg, run_dir)
        return True
    if has_checkpoint(run_dir):  # no config.yaml: the checkpoint's strict load still checks
        return True
    log.info("starting a new run in %s", run_dir)
    return False


def keep_predating_keys(saved: Path, run_cfg: Config, cfg: Config) -> None:
    """Set in `cfg` the run's value of each key its `config.yaml` predates (`legacy.ADDED`)."""
    tree = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    for key in legacy.missing_added(tree if isinstance(tree, dict) else {}):
        group, name = key.split(".")
        value = getattr(getattr(run_cfg, group), name)
        if getattr(getattr(cfg, group), name) != value:
            log.info("%s predates %s: the run keeps %s=%r", saved, key, key, value)
            setattr(getattr(cfg, group), name, value)


def _flat(cfg: Config) -> dict:
    out: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(OmegaConf.structured(cfg)), "")
    return out
