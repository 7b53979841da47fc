"""`make demo`: pretrain on the bundled clothing photos for a few CPU minutes, then k-NN.

The bundled data (CC0, 64 px copy of the clothing-dataset-small) lives in `dinolab_data/`.
Extra `key=value` arguments override the demo's config, e.g. `python -m dinolab.demo
train.epochs=2`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dinolab.cli import main as cli_main

DATA = Path(__file__).resolve().parents[1] / "dinolab_data" / "clothing-64"


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
        *extra,
    ]


def main() -> int:
    if not DATA.is_dir():
        print(f"dinolab demo: the bundled data is missing at {DATA}.", file=sys.stderr)
        return 2
    print(
        f"dinolab demo: DINO pretraining on {DATA / 'train'} (3,068 photos, 10 classes, "
        "64 px), then k-NN on the validation split.",
        flush=True,
    )
    return cli_main(demo_args(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
