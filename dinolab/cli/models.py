"""`dinolab hub`, `dinolab extract` and `dinolab export`: published models and their features.

MODEL is read by `options.resolve_model` (run directory, weights file or hub name); errors a
user can cause are ValueError / FileNotFoundError, which `dinolab.cli.main` prints as one line.
"""

from __future__ import annotations

import argparse
import json

from dinolab.cli.options import add_model_args, add_runtime_args, model_from_args, runtime


def cmd_hub_list(args: argparse.Namespace) -> int:
    from dinolab.hub import MODELS

    for m in MODELS.values():
        regs = f", {m.model.num_register_tokens} registers" if m.model.num_register_tokens else ""
        arch = f"{m.model.arch}/{m.model.patch_size}" if m.model.arch != "resnet50" else "resnet50"
        print(f"{m.name:<20} {m.family:<7} {arch}{regs}  {m.url}")
    return 0


def cmd_hub_load(args: argparse.Namespace) -> int:
    from dinolab.hub import describe

    info = describe(model_from_args(args, with_head=args.head).model)
    for k, v in info.items():
        print(f"{k:<20} {json.dumps(v) if isinstance(v, dict) else v}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from dinolab.extract import check_csv_features, extract, feature_format, save_features

    fmt = feature_format(args.out, args.format)  # fail before the model and images are read
    if fmt == "csv":
        check_csv_features(args.patch_tokens, args.last_n)
    rt = runtime(args)
    resolved = model_from_args(args)  # its own preprocessing: a run's, an export's, ImageNet
    size = args.image_size or resolved.image_size
    feats = extract(
        resolved.model,
        args.images,
        image_size=size,
        batch_size=args.batch_size,
        patch_tokens=args.patch_tokens,
        last_n=args.last_n,
        crop=not args.no_crop,
        device=rt.device,
        precision=rt.precision,
        mean=resolved.mean,
        std=resolved.std,
        num_workers=rt.num_workers,
        progress=rt.progress,
    )
    meta = {"model": args.model, "image_size": size, "mean": resolved.mean, "std": resolved.std}
    files = save_features(feats, args.out, meta, fmt)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in feats.items() if hasattr(v, "shape"))
    print(f"{len(feats['paths'])} images ({len(feats['skipped'])} skipped): {shapes}")
    print("written to " + ", ".join(str(f) for f in files))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dinolab.exporters import export

    resolved = model_from_args(args)
    kwargs = {"image_size": args.image_size or resolved.image_size} if args.to == "onnx" else {}
    path = export(resolved.model, args.to, args.out, **kwargs)
    print(f"exported {args.model} ({args.to}) to {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `extract`, `export` and `hub` sub-commands to dinolab's parser."""
    x = sub.add_parser("extract", help="features of a folder of images with a frozen backbone")
    add_model_args(x)
    x.add_argument("images", help="image folder (recursive) or .txt list of image paths")
    x.add_argument(
        "--out", required=True, help="feats.safetensors, .npz, .npy, .csv or .pt (or --format)"
    )
    x.add_argument(
        "--format",
        choices=["safetensors", "npz", "npy", "csv", "pt"],
        help="file format (default: the suffix of --out); csv: one `path,cls_0,...` row per "
        "image; pt: a dict of tensors + paths for torch.load",
    )
    x.add_argument(
        "--image-size",
        type=int,
        default=0,
        help="a multiple of the patch size (default: the model's own: a run's eval size, an "
        "export's recorded size, 224 for published models)",
    )
    x.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    x.add_argument("--patch-tokens", action="store_true", help="also the patch-token maps")
    x.add_argument("--last-n", type=int, default=0, help="also CLS / pooled of the last n blocks")
    x.add_argument("--no-crop", action="store_true", help="resize to a square, no centre crop")
    add_runtime_args(x)
    x.set_defaults(func=cmd_extract)

    e = sub.add_parser("export", help="write a backbone as safetensors, timm, HF or ONNX")
    add_model_args(e)
    e.add_argument(
        "--to",
        required=True,
        choices=["safetensors", "timm", "hf", "onnx"],
        help="dinolab safetensors (with its config), timm or HuggingFace weights, or ONNX",
    )
    e.add_argument("--out", required=True, help="output file (HF: a directory)")
    e.add_argument(
        "--image-size",
        type=int,
        default=0,
        help="ONNX example input size (default: the run's eval size, else 224)",
    )
    e.set_defaults(func=cmd_export)

    h = sub.add_parser("hub", help="published DINO / DINOv2 checkpoints").add_subparsers(
        dest="hub_command", required=True
    )
    h.add_parser("list", help="the known model names and their URLs").set_defaults(
        func=cmd_hub_list
    )
    hl = h.add_parser("load", help="load a model and print a summary")
    add_model_args(hl)
    hl.add_argument("--head", action="store_true", help="also the DINO head (full checkpoints)")
    hl.set_defaults(func=cmd_hub_load)
