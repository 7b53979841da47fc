"""`dinolab viz attention | pca | match | video MODEL IMAGE...`: pictures of what a ViT learned.

MODEL is read by `options.resolve_model` (run directory, weights file, or hub name with
--no-pretrained for random weights); a run's images are normalised as it was trained. User
errors are ValueError / FileNotFoundError, which `dinolab.cli.main` prints as one line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dinolab.cli.options import add_model_args, add_runtime_args, model_from_args, runtime


def _setup(args: argparse.Namespace) -> dict:
    """The ViT and the keyword arguments shared by every picture."""
    from dinolab.viz.images import as_vit

    rt = runtime(args)
    resolved = model_from_args(args)
    return {"model": as_vit(resolved.model), "size": args.size or None, "block": args.block,
            "mean": resolved.mean, "std": resolved.std, "device": rt.device,
            "precision": rt.precision}  # fmt: skip


def cmd_attention(args: argparse.Namespace) -> int:
    from dinolab.viz.attention import attention_maps, plot_attention
    from dinolab.viz.masks import attention_masks, load_masks, mask_scores

    kw = _setup(args)
    maps = attention_maps(images=args.images, **kw)
    scores = None
    if args.masks:
        sizes = [m["rgb"].shape[:2] for m in maps]
        gt = load_masks(args.masks, [m["name"] for m in maps], sizes)
        scores = mask_scores(maps, gt, args.keep)
        for s in scores:
            heads = " ".join(f"{j:.3f}" for j in s["heads"])
            print(f"{s['name']:<24} mean-map J {s['mean']:.3f}  heads J {heads}")
        report = Path(args.out).with_suffix(".jaccard.json")
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"keep": args.keep, "images": scores}, indent=2))
        print(f"Jaccard scores written to {report}")
    keep = attention_masks(maps, args.keep) if args.keep > 0 else None
    print(f"written to {plot_attention(maps, args.out, keep, scores, keep=args.keep)}")
    return 0


def cmd_pca(args: argparse.Namespace) -> int:
    from dinolab.viz.pca import pca_maps, plot_pca

    kw = _setup(args)
    result = pca_maps(images=args.images, threshold=args.threshold, per_image=args.per_image, **kw)
    pairs = zip(result["names"], result["foreground"], strict=True)
    fg = [f"{n} {f.float().mean():.0%}" for n, f in pairs]
    print("foreground patches: " + ", ".join(fg))
    print(f"written to {plot_pca(result, args.out)}")
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from dinolab.viz.matching import match_images, plot_matches

    if len(args.images) != 2:
        raise ValueError(f"match takes exactly two images, got {len(args.images)}.")
    kw = _setup(args)
    result = match_images(
        image_a=args.images[0], image_b=args.images[1], foreground=not args.all_patches, **kw
    )
    print(f"{len(result['pairs'])} mutual nearest-neighbour patch pairs")
    print(f"written to {plot_matches(result, args.out, args.max_lines)}")
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from dinolab.viz.video import attention_video

    kw = _setup(args)
    result = attention_video(frames=args.images, out=args.out, fps=args.fps, head=args.head, **kw)
    print(f"{result['frames']} frames written to {result['video']}, preview {result['preview']}")
    return 0


def _common(p: argparse.ArgumentParser, images_help: str, out: str, size: int = 448) -> None:
    add_model_args(p)
    p.add_argument("images", nargs="+", help=images_help)
    p.add_argument("--out", default=out, help=f"output file (default {out})")
    p.add_argument("--size", type=int, default=size, help="shorter side; 0 keeps the image's")
    p.add_argument("--block", type=int, default=-1, help="which block (-1 = last)")
    add_runtime_args(p, workers=False)  # images are read one by one, no data loader


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dinolab viz attention | pca | match | video`."""
    v = sub.add_parser("viz", help="attention maps, PCA and patch matching of a ViT")
    vs = v.add_subparsers(dest="viz_command", required=True)
    a = vs.add_parser("attention", help="CLS attention per head and averaged, as overlays")
    _common(a, "images or folders", "attention.png")
    a.add_argument("--keep", type=float, default=0.6, help="outline the top mass (0 = off)")
    a.add_argument("--masks", help="folder of ground-truth mask PNGs named like the images")
    a.set_defaults(func=cmd_attention)
    p = vs.add_parser("pca", help="PCA of patch features: foreground, then 3 components as RGB")
    _common(p, "images or folders (one joint PCA)", "pca.png")
    p.add_argument("--threshold", type=float, help="on the scaled 1st component (default Otsu)")
    p.add_argument("--per-image", action="store_true", help="Otsu threshold per image")
    p.set_defaults(func=cmd_pca)
    m = vs.add_parser("match", help="mutual nearest-neighbour patches of two images")
    _common(m, "two images", "match.png")
    m.add_argument("--all-patches", action="store_true", help="match background patches too")
    m.add_argument("--max-lines", type=int, default=50, help="draw the most similar pairs")
    m.set_defaults(func=cmd_match)
    d = vs.add_parser("video", help="attention map of every frame of a folder, as GIF or MP4")
    _common(d, "folder of frames (sorted by name)", "attention.gif", size=320)
    d.add_argument("--fps", type=float, default=8.0, help="frames per second of the video")
    d.add_argument("--head", type=int, help="one head (default: the head average)")
    d.set_defaults(func=cmd_video)
