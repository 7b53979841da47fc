"""Dense probes (`dinolab eval segment` / `depth`): a dinolab run vs the same net at random init
vs raw RGB patches, on sets built here (see `benchmarks/dense_sets.py`).

    python benchmarks/dense.py --run /tmp/q/q30/run --out /tmp/dense_bench

Tasks: segmentation lin. and +ms on the cut-and-paste set (4 classes) and on DAVIS-2016 as
object / background (5 sequences train, 5 val); depth lin.1 on the ray-cast scenes and on the
stereo motorcycle (one image, train = val: a smoke case). lin.4 / the 4-block +ms features equal
lin.1 / lin. for a convolutional backbone (one map), so they are run only for a ViT. Every
backbone's feature maps are cached under OUT/cache; head training is seeded and the same for
all three backbones (steps, crops, lr). Prints a table and writes OUT/dense.json / dense.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import dense_sets  # noqa: E402
from dinolab.cli.options import resolve_model  # noqa: E402
from dinolab.config.loader import load_saved_config  # noqa: E402
from dinolab.eval.baselines import random_init_backbone  # noqa: E402
from dinolab.eval.depth import run_depth  # noqa: E402
from dinolab.eval.segmentation import run_segmentation  # noqa: E402
from dinolab.models.patch_features import block_count  # noqa: E402
from dinolab.models.resnet import FeatureMapBackbone  # noqa: E402

BACKBONES = ("dinolab run", "random init", "raw RGB patches")
TASKS = ("cut-paste", "davis fg/bg", "ray-cast", "motorcycle")


class RawRGBPatches(FeatureMapBackbone):
    """The no-learning baseline: each patch's normalised pixels (patch x patch x 3) as its
    feature, on the trained backbone's grid."""

    def __init__(self, patch: int) -> None:
        super().__init__()
        self.patch_size = patch

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.patch_size)


def build_sets(out: Path, davis_every: int) -> dict:
    sets = out / "sets"
    made = {
        "cut-paste": sets / "cut_paste",
        "davis fg/bg": sets / "davis",
        "ray-cast": sets / "raycast",
        "motorcycle": sets / "motorcycle",
    }
    if not (made["cut-paste"] / "val").is_dir():
        dense_sets.cut_paste(made["cut-paste"], n_train=40, n_val=20)
    if not (made["davis fg/bg"] / "val").is_dir():
        dense_sets.davis_fg_bg(made["davis fg/bg"], every=davis_every)
    if not (made["ray-cast"] / "val").is_dir():
        dense_sets.raycast_depth(made["ray-cast"], n_train=40, n_val=20)
    if not (made["motorcycle"] / "val").is_dir():
        dense_sets.motorcycle_depth(made["motorcycle"])
    return made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="/tmp/q/q30/run", help="dinolab run directory (trained)")
    p.add_argument("--out", default="/tmp/dense_bench")
    p.add_argument("--steps", type=int, default=300, help="head steps (every probe)")
    p.add_argument("--size", type=int, default=96, help="shorter side at scale 1 (px)")
    p.add_argument("--davis-every", type=int, default=15, help="every n-th DAVIS frame")
    p.add_argument("--train-scales", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: least contention)")
    p.add_argument(
        "--backbones",
        nargs="+",
        default=list(BACKBONES),
        choices=list(BACKBONES),
        help="run only these (e.g. one per process); the table merges OUT/rows-*.json",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASKS),
        choices=list(TASKS),
        help="run only these; rows of earlier runs in OUT/rows-*.json are kept",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    sets = build_sets(out, args.davis_every)
    trained = resolve_model(args.run)
    cfg = load_saved_config(Path(args.run) / "config.yaml")
    patch = trained.model.patch_size
    models = {
        "dinolab run": lambda: trained.model,
        "random init": lambda: random_init_backbone(cfg),
        "raw RGB patches": lambda: RawRGBPatches(patch),
    }
    vit = block_count(trained.model) > 1
    seg_modes = ["lin", "ms"]
    depth_modes = ["lin1", "lin4"] if vit else ["lin1"]
    common = dict(size=args.size, steps=args.steps, mean=trained.mean, std=trained.std,
                  precision="fp32", progress=False)  # fmt: skip
    rows: list[dict] = []
    for name in args.backbones:
        model = models[name]()
        cache = out / "cache" / name.replace(" ", "_")
        for task in [t for t in ("cut-paste", "davis fg/bg") if t in args.tasks]:
            for mode in seg_modes:
                t0 = time.perf_counter()
                where = out / "results" / name.replace(" ", "_") / f"{task[:5]}_{mode}"
                r = run_segmentation(model, sets[task] / "train", sets[task] / "val", where,
                                     mode=mode, train_scales=args.train_scales, cache_dir=cache,
                                     **common)  # fmt: skip
                rows.append({"backbone": name, "task": task, "mode": mode,
                             "score": 100 * r["scores"]["mIoU"], "metric": "mIoU",
                             "extra": 100 * r["scores"]["pixel_accuracy"],
                             "seconds": r["seconds"],
                             "wall": time.perf_counter() - t0})  # fmt: skip
                print(rows[-1], flush=True)
        for task in [t for t in ("ray-cast", "motorcycle") if t in args.tasks]:
            for mode in depth_modes:
                t0 = time.perf_counter()
                where = out / "results" / name.replace(" ", "_") / f"{task[:5]}_{mode}"
                r = run_depth(model, sets[task] / "train", sets[task] / "val", where,
                              mode=mode, cache_dir=cache, **common)  # fmt: skip
                rows.append({"backbone": name, "task": task, "mode": mode,
                             "score": r["scores"]["rmse"], "metric": "RMSE m",
                             "extra": 100 * r["scores"]["d1"], "abs_rel": r["scores"]["abs_rel"],
                             "seconds": r["seconds"],
                             "wall": time.perf_counter() - t0})  # fmt: skip
                print(rows[-1], flush=True)
        path = out / f"rows-{name.replace(' ', '_')}.json"
        new = [r for r in rows if r["backbone"] == name]
        done = {(r["task"], r["mode"]) for r in new}
        old = json.loads(path.read_text()) if path.is_file() else []
        kept = [r for r in old if (r["task"], r["mode"]) not in done]
        path.write_text(json.dumps(kept + new, indent=1))
    merged = [r for b in BACKBONES for f in out.glob(f"rows-{b.replace(' ', '_')}.json")
              for r in json.loads(f.read_text())]  # fmt: skip
    text = table(sorted(merged, key=lambda r: (r["task"], r["mode"])), args)
    print(text)
    (out / "dense.json").write_text(json.dumps({"args": vars(args), "rows": merged}, indent=1))
    (out / "dense.md").write_text(text)


def table(rows: list[dict], args) -> str:
    lines = [
        f"Dense probes, {args.steps} head steps, shorter side {args.size} px "
        f"(train scales {args.train_scales}); trained run {args.run}",
        "",
        "| task | mode | backbone | mIoU / RMSE | pixel acc / d<1.25 | features s | head s "
        "| eval s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["seconds"]
        score = f"{r['score']:.3f}" if r["metric"] == "RMSE m" else f"{r['score']:.2f}"
        lines.append(f"| {r['task']} | {r['mode']} | {r['backbone']} | {score} | "
                     f"{r['extra']:.2f} | {s['features']:.1f} | {s['train']:.1f} | "
                     f"{s['eval']:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
