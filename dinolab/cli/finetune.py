"""`dinolab finetune MODEL --train DIR --val DIR [--preset P] [key=value ...]` and
`dinolab predict RUN IMAGES... --out preds.csv`.

MODEL is read as every command reads it (`options.resolve_model`: run directory, weights file,
hub name). The run's keys are `dinolab.config.finetune.FinetuneConfig`'s (presets
`finetune_cpu`, `finetune_vit`; `dinolab finetune --print-config` shows them all);
`--resume RUN` continues a run from its last epoch.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from dinolab.cli.options import MODEL_HELP, add_runtime_args, resolve_model, runtime
from dinolab.config.finetune import (
    list_finetune_presets,
    load_finetune_config,
    load_saved_finetune_config,
)

log = logging.getLogger("dinolab")


def _config(args: argparse.Namespace):
    """The run's config: the saved one (resume) or preset + flags + overrides."""
    if args.model and "=" in args.model and not Path(args.model).exists():
        args.model, args.items = None, [args.model, *args.items]  # `--resume RUN key=value`
    flags = [
        f"{key}={value}"
        for key, value in (
            ("train_dir", args.train),
            ("val_dir", args.val),
            ("device", args.device),
            ("precision", args.precision),
            ("num_workers", args.num_workers),
        )
        if value is not None
    ]
    if args.quiet:
        flags.append("progress=false")
    if args.resume:
        saved = load_saved_finetune_config(Path(args.resume) / "config.yaml")
        overrides = [f"out_dir={args.resume}", *flags, *args.items]
        return load_finetune_config(base=asdict(saved), overrides=overrides)
    if args.model is None:
        raise ValueError(
            "no MODEL given: `dinolab finetune MODEL --train DIR --val DIR` (or --resume RUN)."
        )
    return load_finetune_config(args.preset, [f"model={args.model}", *flags, *args.items])


def cmd_finetune(args: argparse.Namespace) -> int:
    from dinolab.config.finetune import FinetuneConfig
    from dinolab.finetune.classifier import model_config_of_source
    from dinolab.finetune.loop import run_finetune

    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(OmegaConf.structured(FinetuneConfig())))
        return 0
    cfg = _config(args)
    if args.resume:
        summary = run_finetune(cfg, resume=True)
    else:
        resolved = resolve_model(cfg.model, weights=args.weights, student=args.student)
        model_cfg = model_config_of_source(resolved.model, cfg.model)
        summary = run_finetune(cfg, resolved.model, model_cfg)
    if summary:
        best, last = summary["best"], summary["last"]
        print(
            f"val top-1 {last['top1']:.2f}% (top-5 {last['top5']:.2f}%) after epoch "
            f"{last['epoch']}; best {best['top1']:.2f}% at epoch {best['epoch']}"
        )
        print(f"classifier: {summary['classifier'] or 'unfinished run'} ({cfg.out_dir})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from dinolab.finetune.predict import (
        accuracy_from_folders,
        image_paths,
        load_for_predict,
        predict,
        write_csv,
    )

    rt = runtime(args)
    model, spec = load_for_predict(args.run)
    rows = predict(
        model,
        spec,
        image_paths(args.images),
        rt.device,
        rt.precision,
        args.batch_size,
        rt.num_workers,
        args.top_k,
    )
    write_csv(rows, args.out)
    failed = sum("error" in r for r in rows)
    print(f"{len(rows) - failed} images classified into {args.out}" +
          (f" ({failed} unreadable, listed with their error)" if failed else ""))  # fmt: skip
    accuracy = accuracy_from_folders(rows, spec.classes)
    if accuracy is not None:
        print(f"top-1 {accuracy:.2f}% (the images' folders name their classes)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dinolab finetune` and `dinolab predict`."""
    f = sub.add_parser(
        "finetune",
        help="fine-tune a backbone into a classifier on a labelled folder",
        description="Fine-tune MODEL end to end with a linear head (DeiT recipe: AdamW, "
        "layer-wise lr decay, warm-up + cosine, label smoothing, RandAugment, mixup / cutmix, "
        "EMA; head_epochs=N trains the head alone first). key=value sets any config key.",
    )
    f.add_argument("model", nargs="?", metavar="MODEL", help=MODEL_HELP)
    f.add_argument("items", nargs="*", metavar="key=value", help="config overrides")
    f.add_argument("--train", help="labelled image folder (one subfolder per class)")
    f.add_argument("--val", help="labelled image folder with the same class subfolders")
    f.add_argument("--preset", help=f"one of {', '.join(list_finetune_presets())} or a .yaml")
    f.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last epoch")
    f.add_argument("--weights", help="with a hub name: local path or URL of its weights")
    f.add_argument("--student", action="store_true", help="the student of a training checkpoint")
    f.add_argument("--print-config", action="store_true", help="print every key and its default")
    add_runtime_args(f, config=True)
    f.set_defaults(func=cmd_finetune)

    p = sub.add_parser("predict", help="class and probability per image (a fine-tuned run)")
    p.add_argument("run", metavar="RUN", help="`dinolab finetune` run directory or classifier file")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files or folders")
    p.add_argument("--out", default="preds.csv", help="CSV to write (default: preds.csv)")
    p.add_argument("--top-k", type=int, default=1, help="guesses per image (default 1)")
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass")
    add_runtime_args(p)
    p.set_defaults(func=cmd_predict)
