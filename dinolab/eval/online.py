"""k-NN every few epochs during pretraining: the teacher's (and the student's) accuracy curve.

Cheap enough to run often: the folders are checked once when the trainer starts (a typo fails
the run at step 0, not at epoch N), the images are decoded and resized once and kept in RAM
as uint8 (the eval transform is deterministic), an optional bounded subset caps the cost, and
teacher and student are run on the same batches.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from dinolab.data import EvalTransform, collate_labeled
from dinolab.data.augment import IMAGENET_RESIZE_RATIO
from dinolab.eval.features import backbone_tokens, labelled_folder, same_class_folders
from dinolab.eval.knn import knn_classify
from dinolab.hardware import autocast

log = logging.getLogger("dinolab")


def _subset(n: int, limit: int, seed: int = 0) -> list[int]:
    """The same `limit` random indices every time (all of them when limit is 0)."""
    if limit <= 0 or limit >= n:
        return list(range(n))
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=g)[:limit].tolist())


class OnlineKNN:
    """`due(epoch)` says when; `run(teacher, student)` returns {"teacher_k20_top1": ...}."""

    def __init__(
        self,
        eval_cfg: Any,
        data_cfg: Any,
        device: torch.device | str,
        precision: str = "auto",
        num_workers: int = 0,
    ):
        self.cfg, self.device, self.precision = eval_cfg, torch.device(device), precision
        self.every = int(getattr(eval_cfg, "every_epochs", 0))
        self.with_student = bool(getattr(eval_cfg, "student", False))
        self.image_size = eval_cfg.image_size  # resolved by the Config (0 = data.global_size)
        self.resize_ratio = float(getattr(eval_cfg, "resize_ratio", IMAGENET_RESIZE_RATIO))
        self.mean, self.std = list(data_cfg.mean), list(data_cfg.std)
        self.num_workers = min(num_workers, 2)
        self.enabled = self.every > 0 and bool(eval_cfg.train and eval_cfg.val)
        self._images: dict[str, tuple[Tensor, Tensor]] = {}
        if self.enabled:  # fail now on a wrong folder, not after hours of training
            self.num_classes = len(same_class_folders(eval_cfg.train, eval_cfg.val))

    def due(self, epoch: int) -> bool:
        """True after every `eval.every_epochs`-th completed epoch (epoch counts from 1)."""
        return self.enabled and epoch > 0 and epoch % self.every == 0

    def _decoded(self, split: str) -> tuple[Tensor, Tensor]:
        """uint8 images [N, 3, S, S] and labels of a split, decoded once per run."""
        if split not in self._images:
            root = getattr(self.cfg, split)
            limit = int(getattr(self.cfg, f"max_{split}_images", 0))
            resize_crop = EvalTransform(self.image_size, self.resize_ratio).transforms[:2]
            ds = labelled_folder(root, T.Compose([*resize_crop, T.PILToTensor()]))
            loader = DataLoader(
                Subset(ds, _subset(len(ds), limit)),
                batch_size=256,
                num_workers=self.num_workers,
                collate_fn=collate_labeled,
                generator=torch.Generator(),  # keep the run's RNG (exact resume) untouched
            )
            batches = [b for b in loader if b["num_images"] > 0]
            if not batches:
                raise ValueError(f"No readable images under '{root}' for the online k-NN.")
            images = torch.cat([b["images"] for b in batches])
            labels = torch.cat([b["labels"] for b in batches])
            self._images[split] = (images, labels)
            log.info(
                "online k-NN: %d %s images cached (%.0f MB)",
                len(labels),
                split,
                images.numel() / 2**20,
            )
        return self._images[split]

    @torch.no_grad()
    def _features(self, models: dict[str, nn.Module], split: str, batch_size: int) -> dict:
        images, labels = self._decoded(split)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        feats: dict[str, list[Tensor]] = {name: [] for name in models}
        for s in range(0, len(labels), batch_size):
            x = images[s : s + batch_size].to(self.device, non_blocking=True).float() / 255.0
            x = (x - mean) / std
            with autocast(self.device, self.precision):
                for name, m in models.items():
                    feats[name].append(backbone_tokens(m, x))
        return {name: torch.cat(f) for name, f in feats.items()} | {"labels": labels}

    def run(self, teacher: nn.Module, student: nn.Module | None = None) -> dict[str, float]:
        """k-NN top-1 / top-5 of the teacher (and student) for every k of `eval.k`."""
        t0 = time.perf_counter()
        models = {"teacher": getattr(teacher, "module", teacher)}
        if student is not None and self.with_student:
            models["student"] = getattr(student, "module", student)  # unwrap DDP
        modes = {name: m.training for name, m in models.items()}
        for m in models.values():
            m.eval()  # the student's drop-path must be off while it is measured
        try:
            train = self._features(models, "train", self.cfg.batch_size)
            val = self._features(models, "val", self.cfg.batch_size)
        finally:
            for name, m in models.items():
                m.train(modes[name])
        out: dict[str, float] = {}
        for name in models:
            scores = knn_classify(
                train[name],
                train["labels"],
                val[name],
                val["labels"],
                ks=list(self.cfg.k),
                temperature=self.cfg.temperature,
                num_classes=self.num_classes,
                device=self.device,
            )
            for k, s in scores.items():
                out[f"{name}_k{k}_top1"], out[f"{name}_k{k}_top5"] = s["top1"], s["top5"]
        out["seconds"] = round(time.perf_counter() - t0, 2)
        return out
