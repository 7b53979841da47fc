"""`make demo`: pretrain on the bundled clothing photos for a few CPU minutes, then k-NN.

The recipe is the `cpu_fast` preset (issue 21: a narrow ResNet that learns in CPU minutes, where
a ViT does not); its picture is the PCA of the teacher's feature map.

The bundled data (CC0, 64 px copy of the clothing-dataset-small) lives in `dinolab_data/`.
Training runs for a fixed wall-clock budget (`train.time_budget`, DEMO_BUDGET), so the demo
takes the same few minutes on a fast or a slow CPU, with bf16 only where the CPU has it.
Extra `key=value` arguments override the demo's config, e.g. `python -m dinolab.demo
train.time_budget=20min`. At the end the teacher's k-NN accuracy is printed next to two
baselines (raw pixels, the same network at random init), by k-NN and by a linear probe, with
the attention maps of a few validation photos and the time each part took.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dinolab.cli import main as cli_main
from dinolab.run_dir import SUMMARY

DATA = Path(__file__).resolve().parents[1] / "dinolab_data" / "clothing-64"
K = 20
DEMO_BUDGET = "6min"  # training time; evaluation and pictures add about a minute


def demo_args(extra: list[str]) -> list[str]:
    run_dir = Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    return [
        "pretrain",
        str(DATA / "train"),
        "--preset",
        "cpu_fast",
        f"out_dir={run_dir}",
        f"eval.train={DATA / 'train'}",
        f"eval.val={DATA / 'validation'}",
        f"train.time_budget={DEMO_BUDGET}",
        "eval.every_epochs=2",  # the k-NN curve of the teacher, drawn in curves.png
        *extra,
    ]


def last_value(args: list[str], key: str) -> str:
    """The value of the last `key=` override: the one the config loader keeps."""
    return [a for a in args if a.startswith(f"{key}=")][-1].split("=", 1)[1]


def run_dir_of(args: list[str]) -> Path:
    return Path(last_value(args, "out_dir"))


def baseline_table(run_dir: Path) -> str:
    """Markdown: the teacher beside raw pixels and random init, k-NN and linear, same split."""
    from dinolab.eval.baselines import compare_with_baselines
    from dinolab.run_dir import load_run_backbone

    teacher, cfg = load_run_backbone(run_dir)
    epochs = json.loads((run_dir / SUMMARY).read_text())["epochs"]
    rows = compare_with_baselines(
        cfg, teacher, DATA / "train", DATA / "validation", K, progress=False
    )
    rows[f"DINO teacher, {epochs} epoch{'s' * (epochs != 1)}"] = rows.pop("trained")
    lines = [
        f"| features | {K}-NN top-1 | {K}-NN top-5 | linear top-1 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {s['knn_top1']:.2f} | {s['knn_top5']:.2f} | {s['linear_top1']:.2f} |"
        for name, s in rows.items()
    ]
    return "\n".join(lines) + "\n"


def teacher_picture(run_dir: Path, n: int = 4) -> Path | None:
    """What the teacher sees in the first validation photo of `n` classes: the CLS attention
    of a ViT, or the PCA of a convolutional backbone's feature map (ResNet, small_resnet)."""
    from dinolab.models.vision_transformer import VisionTransformer
    from dinolab.run_dir import load_run_backbone

    teacher, cfg = load_run_backbone(run_dir)
    classes = sorted(p for p in (DATA / "validation").iterdir() if p.is_dir())[:n]
    photos = [sorted(c.iterdir())[0] for c in classes]
    size, norm = 4 * cfg.data.global_size, {"mean": cfg.data.mean, "std": cfg.data.std}
    if isinstance(teacher, VisionTransformer):
        from dinolab.viz.attention import attention_maps, plot_attention

        maps = attention_maps(teacher, photos, size=size, **norm)
        return plot_attention(maps, run_dir / "attention.png")
    if not hasattr(teacher, "feature_map"):  # a timm / torchvision adapter: no picture
        return None
    from dinolab.viz.pca import pca_maps, plot_pca

    result = pca_maps(teacher, photos, size=size, per_image=True, **norm)
    return plot_pca(result, run_dir / "pca.png")


def main() -> int:
    if not DATA.is_dir():
        print(f"dinolab demo: the bundled data is missing at {DATA}.", file=sys.stderr)
        return 2
    print(
        f"dinolab demo: DINO pretraining on {DATA / 'train'} (3,068 photos, 10 classes, "
        "64 px), then k-NN on the validation split.",
        flush=True,
    )
    from dinolab.hardware import probe_cpu, resolve_precision

    cpu = probe_cpu()
    args = demo_args(sys.argv[1:])
    print(
        f"Machine: {cpu.model}, {cpu.cores} cores, torch capability {cpu.capability}; "
        f"{resolve_precision('auto', 'cpu')[1]}. "
        f"Training budget: {last_value(args, 'train.time_budget')}.",
        flush=True,
    )
    t0 = time.perf_counter()
    rc = cli_main(args)
    if rc != 0:
        return rc
    t_train = time.perf_counter() - t0
    run_dir = run_dir_of(args)
    table = baseline_table(run_dir)
    (run_dir / "demo.md").write_text(table)
    picture = teacher_picture(run_dir)
    t_total = time.perf_counter() - t0
    print(
        "\nThe teacher against two baselines on the validation split (linear = logistic"
        f" regression on frozen features; written to {run_dir}/demo.md):"
    )
    print(table)
    if picture is not None:
        what = "Attention" if picture.stem == "attention" else "PCA of the feature map"
        print(f"{what} of the teacher on validation photos: {picture}")
    print(
        f"Time: {t_total / 60:.1f} min in all ({t_train / 60:.1f} min pretraining with its "
        f"online k-NN, {(t_total - t_train) / 60:.1f} min baselines and pictures).\n"
        "A few CPU minutes are the very start of a DINO run (papers train 100-800 epochs);\n"
        "train longer (e.g. `python -m dinolab.demo train.time_budget=30min`) and watch the\n"
        "k-NN panel of curves.png. Measured learning curves are in benchmarks/RESULTS.md.\n"
        f"Next: dinolab viz {'pca' if picture is None or picture.stem == 'pca' else 'attention'}"
        f" {run_dir} IMAGE.jpg  |  dinolab eval linear {run_dir}"
        " --train ... --val ..."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
