"""`make demo`: pretrain on the bundled clothing photos for a few CPU minutes, then k-NN.

The bundled data (CC0, 64 px copy of the clothing-dataset-small) lives in `dinolab_data/`.
Extra `key=value` arguments override the demo's config, e.g. `python -m dinolab.demo
train.epochs=2`. At the end the teacher's k-NN accuracy is printed next to two baselines
(raw pixels, the same network at random init), so the demo shows whether it learned.
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


def compare_with_baselines(run_dir: Path) -> str:
    """Markdown: the teacher's k-NN beside raw pixels and random init, on the same split."""
    from dinolab.config.loader import load_saved_config
    from dinolab.eval.baselines import knn_baselines

    cfg = load_saved_config(run_dir / "config.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = knn_baselines(cfg, DATA / "train", DATA / "validation", k=K, progress=False)
    epochs = summary["epochs"]
    rows[f"DINO teacher, {epochs} epoch{'s' * (epochs != 1)}"] = summary["knn"]["scores"][str(K)]
    lines = [f"| features | {K}-NN top-1 | {K}-NN top-5 |", "|---|---|---|"]
    lines += [f"| {name} | {s['top1']:.2f} | {s['top5']:.2f} |" for name, s in rows.items()]
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
    table = compare_with_baselines(run_dir)
    (run_dir / "demo.md").write_text(table)
    print(f"\nThe teacher against two baselines (validation split, written to {run_dir}/demo.md):")
    print(table)
    print(f"Next: dinolab eval linear --run {run_dir} --train ... --val ...   (see README)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
