"""`make demo`: pretrain on the bundled clothing photos for a few CPU minutes, then k-NN.

The bundled data (CC0, 64 px copy of the clothing-dataset-small) lives in `dinolab_data/`.
Extra `key=value` arguments override the demo's config, e.g. `python -m dinolab.demo
train.epochs=2`. At the end the teacher's k-NN accuracy is printed next to two baselines
(raw pixels, the same network at random init), by k-NN and by a linear probe.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dinolab.cli import main as cli_main

DATA = Path(__file__).resolve().parents[1] / "dinolab_data" / "clothing-64"
K = 20


def demo_args(extra: list[str]) -> list[str]:
    run_dir = Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    return [
        "pretrain",
        str(DATA / "train"),
        "--preset",
        "quickstart",
        f"out_dir={run_dir}",
        f"eval.train={DATA / 'train'}",
        f"eval.val={DATA / 'validation'}",
        "eval.every_epochs=2",  # the k-NN curve of the teacher, drawn in curves.png
        *extra,
    ]


def run_dir_of(args: list[str]) -> Path:
    """The last `out_dir=` wins, as in the config loader."""
    return Path([a for a in args if a.startswith("out_dir=")][-1].split("=", 1)[1])


def baseline_table(run_dir: Path) -> str:
    """Markdown: the teacher beside raw pixels and random init, k-NN and linear, same split."""
    from dinolab.eval.baselines import compare_with_baselines
    from dinolab.train.export import load_run_backbone

    teacher, cfg = load_run_backbone(run_dir)
    epochs = json.loads((run_dir / "summary.json").read_text())["epochs"]
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


def main() -> int:
    if not DATA.is_dir():
        print(f"dinolab demo: the bundled data is missing at {DATA}.", file=sys.stderr)
        return 2
    print(
        f"dinolab demo: DINO pretraining on {DATA / 'train'} (3,068 photos, 10 classes, "
        "64 px), then k-NN on the validation split.",
        flush=True,
    )
    args = demo_args(sys.argv[1:])
    rc = cli_main(args)
    if rc != 0:
        return rc
    run_dir = run_dir_of(args)
    table = baseline_table(run_dir)
    (run_dir / "demo.md").write_text(table)
    print(
        "\nThe teacher against two baselines on the validation split (linear = logistic"
        f" regression on frozen features; written to {run_dir}/demo.md):"
    )
    print(table)
    print(
        "A few CPU minutes are the very start of a DINO run (papers train 100-800 epochs): expect\n"
        "the teacher near its random init here; train longer (e.g. `python -m dinolab.demo\n"
        "train.epochs=100`) and watch the k-NN panel of curves.png. Measured learning curves on\n"
        "CIFAR-10 are in benchmarks/RESULTS.md.\n"
        f"Next: dinolab viz attention {run_dir} IMAGE.jpg  |  dinolab eval linear --run {run_dir}"
        " --train ... --val ..."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
