"""The frozen teacher of a distillation run: loaded once per process, never saved with the student.

Recipe mode reads a dinolab run directory's `checkpoint.pth`: its EMA teacher network, i.e. the
backbone *and* the DINO head (and the iBOT head of a DINOv2 run). Pretraining checkpoints keep
both networks with both heads (`model` holds `student.*` and `teacher.*`, heads included), so
any finished or interrupted run can teach; the exported `teacher_backbone.safetensors` has no
head and only serves feature mode. Feature mode takes any backbone `dinolab.hub.load` reads.

The teacher is referenced by path and sha256 (`distill.teacher`, `distill.teacher_sha256`),
runs in eval mode (BatchNorm uses its running statistics), requires no gradient, and re-normalises
the student's crops to its own mean / std when the two runs used different ones.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinolab.config.loader import load_saved_config
from dinolab.config.schema import Config
from dinolab.models.convert import sub_state
from dinolab.models.weights import load_state_dict_strict
from dinolab.run_dir import CHECKPOINT, CONFIG, TEACHER_FILE, load_checkpoint

log = logging.getLogger("dinolab")
_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


def file_sha256(path: Path) -> str:
    """sha256 of a file (cached per process by path, size and modification time)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def is_run_with_checkpoint(spec: str) -> bool:
    path = Path(spec).expanduser()
    return path.is_dir() and (path / CONFIG).is_file() and (path / CHECKPOINT).is_file()


def teacher_file(spec: str, mode: str) -> Path | None:
    """The file whose sha256 pins the teacher: a run's checkpoint.pth (recipe) or its teacher
    export (feature), a weights file itself; None for a hub name (pinned by its URL)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path / (CHECKPOINT if mode == "recipe" else TEACHER_FILE)
    return path if path.is_file() else None


class FrozenTeacher(nn.Module):
    """backbone (+ DINO head, + iBOT head) frozen in eval mode; `forward(images)` gives its
    CLS and patch tokens (and head logits in recipe mode) without gradient."""

    def __init__(
        self,
        backbone: nn.Module,
        dino_head: nn.Module | None = None,
        ibot_head: nn.Module | None = None,
        renorm: tuple[Tensor, Tensor] | None = None,
        size: int = 0,
    ) -> None:
        super().__init__()
        self.backbone, self.dino_head, self.ibot_head = backbone, dino_head, ibot_head
        self.size = size
        scale, shift = renorm if renorm is not None else (torch.ones(3), torch.zeros(3))
        self.renorm = renorm is not None
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @property
    def embed_dim(self) -> int:
        return int(self.backbone.embed_dim)

    def train(self, mode: bool = True) -> FrozenTeacher:
        """Always eval: a frozen teacher's BatchNorm and dropout never switch to training."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """{"cls": [N, D], "patch": [N, P, D] or absent} of images normalised for the student."""
        x = images * self.scale + self.shift if self.renorm else images
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if hasattr(self.backbone, "forward_features"):
            feats = self.backbone.forward_features(x)
            out = {"cls": feats["x_norm_clstoken"]}
            if feats.get("x_norm_patchtokens") is not None:
                out["patch"] = feats["x_norm_patchtokens"]
            return out
        return {"cls": self.backbone(x)}


def renormalisation(student: Config, mean, std) -> tuple[Tensor, Tensor] | None:
    """(scale, shift) turning crops normalised by the student's data.mean/std into crops
    normalised by the teacher's `mean`/`std`; None when they are the same."""
    s_mean, s_std = torch.tensor(student.data.mean), torch.tensor(student.data.std)
    t_mean, t_std = torch.tensor(list(mean)), torch.tensor(list(std))
    if torch.allclose(s_mean, t_mean) and torch.allclose(s_std, t_std):
        return None
    return s_std / t_std, (s_mean - t_mean) / t_std


def load_recipe_teacher(spec: str, student: Config) -> tuple[FrozenTeacher, Config]:
    """A run directory's EMA teacher network with its heads, and the run's config."""
    from dinolab.train.meta_arch import DINOMetaArch
    from dinolab.train.meta_arch_dinov2 import DINOv2MetaArch

    run = Path(spec).expanduser()
    if not is_run_with_checkpoint(spec):
        raise FileNotFoundError(
            f"distill.teacher='{spec}' is not a dinolab run directory with {CONFIG} and "
            f"{CHECKPOINT}: recipe mode needs the run's heads (or use distill.mode=feature)."
        )
    tcfg = load_saved_config(run / CONFIG)
    tcfg.distill.teacher = ""  # a distilled run teaches with its own networks, not its teacher's
    state = load_checkpoint(run / CHECKPOINT)
    if "model" not in state:
        raise ValueError(
            f"'{run / CHECKPOINT}' was saved sharded (FSDP): recipe distillation reads a "
            "whole checkpoint; use distill.mode=feature with its teacher_backbone.safetensors."
        )
    # The run's own meta-architecture, told by its checkpoint: DINOv2 heads sit under head.dino
    dinov2 = any(k.startswith("teacher.head.dino.") for k in state["model"])
    with torch.random.fork_rng(devices=[]):  # building the teacher must not shift the run's RNG
        meta = DINOv2MetaArch(tcfg) if dinov2 else DINOMetaArch(tcfg)
    net = meta.teacher
    prefix = "teacher."
    weights = sub_state(state["model"], prefix)
    load_state_dict_strict(net, weights, f"the teacher network of '{run}'")
    head = net.head
    if isinstance(head, nn.ModuleDict):  # DINOv2: {"dino", "ibot"}; a shared head serves both
        dino = head["dino"]
        ibot = head["ibot"] if "ibot" in head else (dino if tcfg.ibot.weight > 0 else None)
    else:
        dino, ibot = head, None
    renorm = renormalisation(student, tcfg.data.mean, tcfg.data.std)
    teacher = FrozenTeacher(net.backbone, dino, ibot, renorm, student.distill.teacher_size)
    return teacher, tcfg


def load_feature_teacher(spec: str, student: Config) -> FrozenTeacher:
    """Any backbone `dinolab.hub.load` reads (hub name, weights file, run directory)."""
    from dinolab import hub

    backbone = hub.load(spec)
    pre = getattr(backbone, "preprocessing", None)
    renorm = renormalisation(student, pre.mean, pre.std) if pre is not None else None
    return FrozenTeacher(backbone, renorm=renorm, size=student.distill.teacher_size)


def check_teacher_hash(cfg: Config) -> str:
    """The teacher file's sha256; a clear error when the run recorded another one."""
    path = teacher_file(cfg.distill.teacher, cfg.distill.mode)
    if path is None or not path.is_file():
        return ""
    digest = file_sha256(path)
    recorded = cfg.distill.teacher_sha256
    if recorded and recorded != digest:
        raise ValueError(
            f"The teacher file '{path}' changed since this distillation run began (sha256 "
            f"{digest[:12]}..., the run recorded {recorded[:12]}...): restore that teacher, or "
            "start a new run in another out_dir=..."
        )
    return digest
