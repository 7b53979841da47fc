"""Class and probability per image from a fine-tuned classifier (`dinolab predict`).

RUN is a `dinolab finetune` run directory (its classifier.safetensors, else the best epoch's
while the run is unfinished) or a classifier file. Images are prepared as the classifier was
validated (its preprocessing record). When every image sits in a folder named after one of
the classes (a labelled folder), the accuracy is reported too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dinolab.data import ImageDataset, collate_labeled
from dinolab.data.datasets import find_images
from dinolab.finetune.classifier import Classifier, ClassifierSpec, load_classifier
from dinolab.finetune.data import eval_transform
from dinolab.hardware import autocast


def classifier_file(run: str | Path) -> Path:
    """The classifier a run directory (or a file) stands for."""
    from dinolab.finetune.run_files import BEST, CLASSIFIER

    run = Path(run).expanduser()
    if run.is_file():
        return run
    for name in (CLASSIFIER, BEST):
        if (run / name).is_file():
            return run / name
    raise FileNotFoundError(
        f"'{run}' holds no {CLASSIFIER}: pass a `dinolab finetune` run directory that has "
        "finished an epoch, or a classifier .safetensors file."
    )


def image_paths(images: list[str | Path]) -> list[str]:
    """Every image file named or under the folders named, in order."""
    paths: list[str] = []
    for item in images:
        item = Path(item).expanduser()
        if item.is_dir():
            paths += find_images(item)
        elif item.is_file():
            paths.append(str(item))
        else:
            raise FileNotFoundError(f"No image or folder at '{item}': check the path.")
    if not paths:
        raise ValueError(f"No images found under {', '.join(map(str, images))}.")
    return paths


@torch.no_grad()
def predict(
    model: Classifier,
    spec: ClassifierSpec,
    paths: list[str],
    device: torch.device,
    precision: str = "auto",
    batch_size: int = 128,
    num_workers: int = 0,
    top_k: int = 1,
) -> list[dict]:
    """One row per readable image: path, class, probability (and the next top_k - 1 guesses);
    unreadable images get a row with an `error`."""
    dataset = ImageDataset(paths, transform=eval_transform(spec.input_preprocessing()))
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_labeled
    )
    model.to(device).eval()
    rows: dict[int, dict] = {}
    for batch in loader:
        for error in batch["skipped"]:
            path = error.split(": ", 1)[0]
            rows[paths.index(path)] = {"path": path, "error": error}
        if batch["num_images"] == 0:
            continue
        with autocast(device, precision):
            logits = model(batch["images"].to(device)).float()
        probs = logits.softmax(dim=1).cpu()
        k = min(top_k, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        for i, index in enumerate(batch["indices"].tolist()):
            row = {"path": paths[index]}
            for j in range(k):
                suffix = "" if j == 0 else f"_{j + 1}"
                row[f"class{suffix}"] = spec.classes[int(indices[i, j])]
                row[f"probability{suffix}"] = round(float(values[i, j]), 6)
            rows[index] = row
    return [rows[i] for i in sorted(rows)]


def accuracy_from_folders(rows: list[dict], classes: list[str]) -> float | None:
    """Top-1 % when every image's folder is a class name (a labelled folder), else None."""
    known = set(classes)
    predicted = [r for r in rows if "class" in r]
    truth = [Path(r["path"]).parent.name for r in predicted]
    if not truth or not all(t in known for t in truth):
        return None
    hits = sum(t == r["class"] for t, r in zip(truth, predicted, strict=True))
    return 100.0 * hits / len(truth)


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """The rows as CSV (columns: path, class, probability, ..., error)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def load_for_predict(run: str | Path) -> tuple[Classifier, ClassifierSpec]:
    return load_classifier(classifier_file(run))
