"""`dinolab pretrain` and `dinolab config`: train on a folder of images, print a config.

Positional words with '=' are config overrides; the runtime flags (`--device`, `--precision`,
`--quiet`, `--num-workers`) are shorthands for train.device, train.precision, train.progress
and data.num_workers, and leave the config's value when absent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dinolab.cli.options import add_runtime_args
from dinolab.config.loader import ConfigError, list_presets, load_config, load_saved_config, to_yaml


def _split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """Positional words without '=' are paths; words with '=' are config overrides."""
    paths = [s for s in items if "=" not in s]
    return paths, [s for s in items if "=" in s]


def runtime_overrides(args: argparse.Namespace) -> list[str]:
    """The runtime flags given, as config overrides (after the user's: a flag wins)."""
    out = [f"train.device={args.device}"] if args.device is not None else []
    out += [f"train.precision={args.precision}"] if args.precision is not None else []
    out += ["train.progress=false"] if args.quiet else []
    out += [f"data.num_workers={args.num_workers}"] if args.num_workers is not None else []
    return out


def run_config(args: argparse.Namespace, extra: list[str] = (), prepare=None) -> tuple:
    """(config, resume) of a training command from its words, flags and `--resume`.

    `extra` overrides come after the user's; `prepare` resolves a config the way the command's
    run does before `--resume auto` compares it with the saved one (pretraining: as it is).
    """
    paths, overrides = _split_overrides(args.items)
    overrides += runtime_overrides(args) + list(extra)
    if len(paths) > 1:
        raise ConfigError(f"Expected one image folder, got {paths}: overrides need key=value.")
    if args.resume and args.resume != "auto":
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(
                f"Run directory '{run_dir}' has no config.yaml and no "
                "checkpoint to resume from: check the path."
            )
        cfg = load_saved_config(saved)
        return load_config(base=_as_dict(cfg), overrides=overrides + [f"out_dir={run_dir}"]), True
    cfg = load_config(args.preset, overrides)
    if paths:
        cfg.data.path = paths[0]
    if args.resume == "auto":  # start the run in out_dir=..., or continue it (requeued jobs)
        from dinolab.train.resume import should_resume

        return cfg, should_resume(prepare(cfg) if prepare else cfg)
    return cfg, False


def cmd_pretrain(args: argparse.Namespace) -> int:
    from dinolab.distributed import is_main_process
    from dinolab.train.pretrain import pretrain

    cfg, resume = run_config(args)
    try:
        summary = pretrain(cfg, resume=resume)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training began
        raise KeyboardInterrupt(resume_hint(Path(cfg.out_dir))) from None
    if is_main_process():  # under torchrun only rank 0 prints
        _print_summary(summary)
    return 0


def resume_hint(run_dir: Path) -> str:
    """How to go on with the run in `run_dir` after a stop, given what it holds."""
    from dinolab.run_dir import CONFIG, has_checkpoint

    if has_checkpoint(run_dir):
        return f"resume from its last checkpoint with `dinolab pretrain --resume {run_dir}`"
    if (run_dir / CONFIG).is_file():
        return (
            f"no checkpoint was saved yet; `dinolab pretrain --resume {run_dir}` starts the run "
            "again from step 0"
        )
    return "nothing was saved; run the same command again"


def _as_dict(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg))


def _print_summary(summary: dict) -> None:
    run = summary["run_dir"]
    print(f"\nrun directory   {run}")
    print(f"epochs / steps  {summary['epochs']} / {summary['steps']}")
    print(f"checkpoint      {run}/checkpoint.pth")
    print(f"teacher         {summary.get('teacher_backbone')}")
    tensorboard = f"  (TensorBoard: {run}/tensorboard)" if Path(run, "tensorboard").is_dir() else ""
    print(f"metrics         {run}/metrics.jsonl{tensorboard}")
    print(f"log             {run}/train.log")
    if summary.get("curves"):
        print(f"curves          {summary['curves']}")
    if summary.get("skipped_images"):
        print(f"skipped images  {summary['skipped_images']} unreadable files (see the log)")
    if "knn" in summary:
        from dinolab.eval.knn import knn_table

        print("\n" + knn_table(summary["knn"]))


def cmd_config(args: argparse.Namespace) -> int:
    print(to_yaml(load_config(args.preset, args.overrides)), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dinolab pretrain` and `dinolab config`."""
    p = sub.add_parser("pretrain", help="self-supervised DINO pretraining on a folder of images")
    p.add_argument(
        "items",
        nargs="*",
        metavar="PATH | key=value",
        help="image folder (or .txt file list) and config overrides",
    )
    p.add_argument("--preset", help=f"one of {', '.join(list_presets())} or a .yaml path")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR | auto",
        help="continue the run in RUN_DIR (from step 0 if it has no checkpoint yet); 'auto': "
        "start the run in out_dir=..., or continue it if it is there (same config)",
    )
    add_runtime_args(p, config=True)
    p.set_defaults(func=cmd_pretrain)

    c = sub.add_parser("config", help="print the resolved config (every key with its value)")
    c.add_argument("overrides", nargs="*", metavar="key=value", help="config keys to set")
    c.add_argument("--preset", help=f"one of {', '.join(list_presets())} or a .yaml path")
    c.set_defaults(func=cmd_config)
