"""`dinolab extract`, `dinolab export` and `dinolab hub`: published models and their features.

Wired into `dinolab.cli.build_parser` by `register(sub)`; errors a user can cause are
ValueError / FileNotFoundError, which `dinolab.cli.main` prints as one line.
"""

from __future__ import annotations

import argparse
import json


def _load(args: argparse.Namespace):
    from dinolab.hub import load

    return load(
        args.model,
        weights=getattr(args, "weights", None),
        which="student" if getattr(args, "student", False) else "teacher",
        with_head=getattr(args, "head", False),
        pretrained=not getattr(args, "no_pretrained", False),
    )


def cmd_hub_list(args: argparse.Namespace) -> int:
    from dinolab.models.hub import MODELS

    for m in MODELS.values():
        regs = f", {m.model.num_register_tokens} registers" if m.model.num_register_tokens else ""
        arch = f"{m.model.arch}/{m.model.patch_size}" if m.model.arch != "resnet50" else "resnet50"
        print(f"{m.name:<20} {m.family:<7} {arch}{regs}  {m.url}")
    return 0


def cmd_hub_load(args: argparse.Namespace) -> int:
    from dinolab.hub import describe

    args.model = args.name
    info = describe(_load(args))
    for k, v in info.items():
        print(f"{k:<20} {json.dumps(v) if isinstance(v, dict) else v}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from dinolab.extract import OUTPUT_SUFFIXES, extract, save_features

    if not args.out.endswith(OUTPUT_SUFFIXES):  # fail before the model and images are read
        raise ValueError(f"--out '{args.out}' must end in one of {', '.join(OUTPUT_SUFFIXES)}.")
    feats = extract(
        _load(args),
        args.images,
        image_size=args.image_size,
        batch_size=args.batch_size,
        patch_tokens=args.patch_tokens,
        last_n=args.last_n,
        crop=not args.no_crop,
        device=args.device,
        precision=args.precision,
        progress=not args.quiet,
    )
    files = save_features(feats, args.out, {"model": args.model, "image_size": args.image_size})
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in feats.items() if hasattr(v, "shape"))
    print(f"{len(feats['paths'])} images ({len(feats['skipped'])} skipped): {shapes}")
    print("written to " + ", ".join(str(f) for f in files))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dinolab.exporters import export

    kwargs = {"image_size": args.image_size} if args.to == "onnx" else {}
    path = export(_load(args), args.to, args.out, **kwargs)
    print(f"exported {args.model} ({args.to}) to {path}")
    return 0


def _model_args(p: argparse.ArgumentParser, positional: str = "model") -> None:
    p.add_argument(
        positional, help="hub name (dinolab hub list), weights file (.pth/.safetensors) or run dir"
    )
    p.add_argument("--weights", help="local path or URL of the weights (default: published)")
    p.add_argument("--student", action="store_true", help="the student of a training checkpoint")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `extract`, `export` and `hub` sub-commands to dinolab's parser."""
    x = sub.add_parser("extract", help="features of a folder of images with a frozen backbone")
    _model_args(x)
    x.add_argument("images", help="image folder (recursive) or .txt list of image paths")
    x.add_argument("--out", required=True, help="feats.safetensors, feats.npz or feats.npy")
    x.add_argument("--image-size", type=int, default=224, help="a multiple of the patch size")
    x.add_argument("--batch-size", type=int, default=32)
    x.add_argument("--patch-tokens", action="store_true", help="also the patch-token maps")
    x.add_argument("--last-n", type=int, default=0, help="also CLS / pooled of the last n blocks")
    x.add_argument("--no-crop", action="store_true", help="resize to a square, no centre crop")
    x.add_argument("--device", default="cpu")
    x.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 where the hardware has it natively, fp32 elsewhere",
    )
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    x.set_defaults(func=cmd_extract)

    e = sub.add_parser("export", help="write a backbone as safetensors, timm, HF or ONNX")
    _model_args(e)
    e.add_argument("--to", required=True, choices=["safetensors", "timm", "hf", "onnx"])
    e.add_argument("--out", required=True, help="output file (HF: a directory)")
    e.add_argument("--image-size", type=int, default=224, help="ONNX example input size")
    e.set_defaults(func=cmd_export)

    h = sub.add_parser("hub", help="published DINO / DINOv2 checkpoints").add_subparsers(
        dest="hub_command", required=True
    )
    h.add_parser("list", help="the known model names and their URLs").set_defaults(
        func=cmd_hub_list
    )
    hl = h.add_parser("load", help="load a model and print a summary")
    _model_args(hl, "name")
    hl.add_argument("--head", action="store_true", help="also the DINO head (full checkpoints)")
    hl.add_argument("--no-pretrained", action="store_true", help="random weights, no download")
    hl.set_defaults(func=cmd_hub_load)
