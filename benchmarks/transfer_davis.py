"""DAVIS label propagation: a dinolab run vs the same net at random init vs raw pixels, and a
check against DINO's own eval_video_segmentation.py.

    python benchmarks/transfer_davis.py --davis /tmp/data/davis2016-val-dev \
        --run runs/demo-20261130-224523 --out /tmp/davis_bench [--models trained random pixels]
        [--check-official blackswan --official-repo /path/to/facebookresearch/dino]

Each model goes through `dinolab.eval.davis.run_davis` (DINO's defaults: short side 480, 7
last frames, top-5, temperature 0.1, 12-patch window) into OUT/<model>/; the table gives
J&F / J / F per sequence and the mean, and seconds per frame.

--check-official SEQ runs the official propagation on the same features of SEQ (the trained
model's): facebookresearch/dino's `eval_video_tracking_davis` is executed at run time from a
copy of that repository (a work tree, or a bare git directory such as the one the `fetch`
tool makes), with its `read_frame` and model replaced by the frames' dinolab features and
`.cuda()` made a no-op; nothing of it is copied here. Its PNGs are compared pixel by pixel
with dinolab's, and both are scored.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

OFFICIAL_REPO = os.environ.get("DINO_OFFICIAL_REPO", "/work/.mirror/facebookresearch+dino/repo")
SCRIPT = "eval_video_segmentation.py"


class RawPixelPatches(nn.Module):
    """The no-learning baseline: each patch's normalised pixels, mean-centred, as its token."""

    def __init__(self, patch: int) -> None:
        super().__init__()
        self.patch_size = patch

    def forward_features(self, x: torch.Tensor) -> dict:
        tokens = F.unfold(x, self.patch_size, stride=self.patch_size).transpose(1, 2)
        return {"x_norm_patchtokens": tokens - tokens.mean(dim=-1, keepdim=True)}


def official_source(repo: str | Path) -> str | None:
    """The text of DINO's eval_video_segmentation.py from a work tree or a git directory."""
    repo = Path(repo)
    if (repo / SCRIPT).is_file():
        return (repo / SCRIPT).read_text()
    if not repo.is_dir():
        return None
    out = subprocess.run(
        ["git", f"--git-dir={repo}", "show", f"HEAD:{SCRIPT}"], capture_output=True, text=True
    )
    return out.stdout if out.returncode == 0 else None


def load_official(repo: str | Path) -> types.ModuleType | None:
    """DINO's script as a module (its cv2 / utils / vision_transformer imports stubbed)."""
    source = official_source(repo)
    if source is None:
        return None
    stubs = {n: types.ModuleType(n) for n in ("cv2", "utils", "vision_transformer")}
    saved = {n: sys.modules.get(n) for n in stubs}
    sys.modules.update(stubs)
    try:
        module = types.ModuleType("dino_eval_video_segmentation")
        exec(compile(source, SCRIPT, "exec"), module.__dict__)  # noqa: S102 - reference code
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return module


@contextlib.contextmanager
def cuda_is_identity():
    """DINO's script calls .cuda() on tensors: on CPU let it return the tensor itself."""
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda


def official_propagation(
    official, features, first_png, frame_names, patch, out_dir, n_last=7, topk=5, radius=12
) -> list[np.ndarray]:
    """Label maps from DINO's `eval_video_tracking_davis` on given features [T, h, w, D].

    first_png is the first annotation as an indexed PNG (object indices); the original frame
    size is its size.
    """
    t_frames, h, w, d = features.shape
    grid_px = (h * patch, w * patch)
    index = {f"/video/seq/{n}.jpg": t for t, n in enumerate(frame_names)}
    with Image.open(first_png) as img:
        ori_w, ori_h = img.size

    def read_frame(path, scale_size=None):  # the frame index, broadcast: the model reads it
        return torch.full((3, *grid_px), float(index[path])), ori_h, ori_w

    class Model:
        patch_embed = SimpleNamespace(patch_size=patch)

        def get_intermediate_layers(self, x, n=1):
            tokens = features[int(x[0, 0, 0, 0])].reshape(1, h * w, d)
            return [torch.cat([torch.zeros(1, 1, d), tokens], dim=1)]

    args = SimpleNamespace(
        output_dir=str(out_dir), n_last_frames=n_last, size_mask_neighborhood=radius, topk=topk,
        patch_size=patch,
    )  # fmt: skip
    official.args, official.read_frame = args, read_frame
    first_seg, seg_ori = official.read_seg(first_png, patch, scale_size=[grid_px[1], grid_px[0]])
    palette = np.zeros((256, 3), dtype=np.uint8)
    with cuda_is_identity():
        official.eval_video_tracking_davis(
            args, Model(), list(index), "/video/seq", first_seg, seg_ori, palette
        )
    return [np.array(Image.open(Path(out_dir) / "seq" / f"{n}.png")) for n in frame_names]


def check_official(official, backbone, root, seq, mean, std, ours_dir, device, size=480) -> dict:
    """Pixel agreement and J&F of DINO's propagation vs dinolab's on one sequence."""
    from dinolab.eval import davis_data as data
    from dinolab.eval.davis import frame_features, patch_size_of
    from dinolab.eval.davis_metrics import score_sequence, summarise

    patch = patch_size_of(backbone)
    frames, anns = data.sequence_files(root, seq)
    first = data.read_annotation(anns[0])
    size_hw = data.processing_size(*first.shape, size=size, patch=patch)
    feats = torch.stack(
        [frame_features(backbone, data.load_frame(p, size_hw, mean, std)[0], patch, device,
                        "auto").cpu() for p in frames]
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        first_png = Path(tmp) / "first.png"
        data.write_indexed_png(first_png, first, data.davis_palette())
        t0 = time.perf_counter()
        theirs = official_propagation(official, feats, first_png, [p.stem for p in frames],
                                      patch, Path(tmp) / "out")  # fmt: skip
        seconds = time.perf_counter() - t0
    ours = [np.array(Image.open(Path(ours_dir) / seq / f"{p.stem}.png")) for p in frames]
    gt = np.stack([data.read_annotation(a) for a in anns])
    agree = float(np.mean([np.mean(a == b) for a, b in zip(ours, theirs, strict=True)]))
    return {
        "sequence": seq,
        "pixel_agreement": agree,
        "official_J&F": summarise({seq: score_sequence(gt, np.stack(theirs))})["J&F-Mean"],
        "dinolab_J&F": summarise({seq: score_sequence(gt, np.stack(ours))})["J&F-Mean"],
        "official_seconds": seconds,
    }


def build_models(run: str, names: list[str]) -> dict:
    """name -> (backbone, mean, std): the run's teacher, its random init, raw pixels."""
    from dinolab.cli.options import resolve_model
    from dinolab.config.loader import load_saved_config
    from dinolab.eval.baselines import random_init_backbone

    resolved = resolve_model(run)
    cfg = load_saved_config(Path(run) / "config.yaml")
    patch = resolved.model.patch_size
    makers = {
        "trained": lambda: resolved.model,
        "random": lambda: random_init_backbone(cfg),
        "pixels": lambda: RawPixelPatches(patch).eval(),
    }
    return {n: (makers[n](), resolved.mean, resolved.std) for n in names}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--davis", required=True)
    p.add_argument("--run", required=True, help="a dinolab run directory")
    p.add_argument("--out", required=True)
    p.add_argument("--models", nargs="+", default=["trained", "random", "pixels"])
    p.add_argument("--sequences", nargs="+")
    p.add_argument("--size", type=int, default=480, help="shorter side of the frames")
    p.add_argument("--check-official", metavar="SEQ")
    p.add_argument("--official-repo", default=OFFICIAL_REPO)
    args = p.parse_args(argv)
    from dinolab.eval.davis import run_davis
    from dinolab.eval.davis_data import list_sequences

    device, out = torch.device("cpu"), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = build_models(args.run, args.models)
    rows = out / "per_sequence.jsonl"  # one line per (sequence, model) as it finishes
    for seq in list_sequences(args.davis, args.sequences):  # models side by side, sequence by
        for name, (backbone, mean, std) in models.items():  # sequence: partial runs compare
            res = run_davis(backbone, args.davis, out / name, sequences=[seq], mean=mean,
                            std=std, device=device, size=args.size, figure=False)  # fmt: skip
            frames = res["per_sequence"][seq]["frames"]
            row = {"sequence": seq, "model": name, **res["scores"], "frames": frames,
                   "seconds": res["seconds"]}  # fmt: skip
            with open(rows, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    if args.check_official:
        official = load_official(args.official_repo)
        if official is None:
            print(f"no {SCRIPT} in '{args.official_repo}': official check skipped")
        else:
            backbone, mean, std = models[args.models[0]]
            ours = out / args.models[0] / "davis"
            check = check_official(official, backbone, args.davis, args.check_official, mean,
                                   std, ours, device, args.size)  # fmt: skip
            (out / "official_check.json").write_text(json.dumps(check, indent=1))
            print(json.dumps(check, indent=1))
    print(summary_table([json.loads(line) for line in rows.read_text().splitlines()]))
    return 0


def summary_table(rows: list[dict]) -> str:
    """Markdown: J&F per sequence per model (in %), the mean J&F / J / F and seconds / frame."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    seqs = list(dict.fromkeys(r["sequence"] for r in rows))
    cell = {(r["sequence"], r["model"]): r for r in rows}
    lines = ["| sequence | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for s in seqs:
        vals = [f"{100 * cell[s, m]['J&F-Mean']:.1f}" if (s, m) in cell else "-" for m in models]
        lines.append(f"| {s} | " + " | ".join(vals) + " |")
    for key in ("J&F-Mean", "J-Mean", "F-Mean"):
        vals = [np.mean([r[key] for r in rows if r["model"] == m]) for m in models]
        lines.append(f"| **{key}** | " + " | ".join(f"**{100 * v:.1f}**" for v in vals) + " |")
    spf = [sum(r["seconds"] for r in rows if r["model"] == m)
           / sum(r["frames"] for r in rows if r["model"] == m) for m in models]  # fmt: skip
    lines.append("| s / frame | " + " | ".join(f"{v:.2f}" for v in spf) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
