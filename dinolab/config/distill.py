"""`distill.*`: a frozen teacher trains a (smaller) student (DINOv2 section 5; `dinolab distill`).

Empty `distill.teacher` (the default) is ordinary pretraining. Set, the run's meta-architecture
becomes a distillation one (`dinolab/train/distill*.py`): the student is `model.*` with fresh
heads, the teacher is loaded frozen from `distill.teacher` and never saved with the student,
and a spare EMA of the student (`teacher.momentum` -> `teacher.momentum_end`) is the run's
exported `teacher_backbone.safetensors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DISTILL_MODES = ("auto", "recipe", "feature")


@dataclass
class DistillConfig:
    """The frozen teacher and how the student learns from it."""

    # A dinolab run directory (recipe mode: its backbone + DINO head + iBOT head, from its
    # checkpoint.pth), or for feature mode also a hub name, a weights file or a .safetensors
    teacher: str = ""
    # auto: recipe when `teacher` is a run directory with a checkpoint, else feature | recipe
    # (DINOv2's distillation: the pretraining losses on the teacher's head outputs) | feature
    # (head-free: the student's features projected to the teacher's width, cosine + patch terms)
    mode: str = "auto"
    # sha256 of the teacher file (a run's checkpoint.pth or the weights file), set when the run
    # starts and checked on every resume: the run refuses a teacher that changed under it
    teacher_sha256: str = ""
    # The teacher sees the global crops resized to this size (bilinear); 0 = as the student
    # sees them (hub ViT/14 teachers need a multiple of 14)
    teacher_size: int = 0
    # feature mode: weight of the global term (1 - cosine of projected student CLS vs teacher
    # CLS) and of the patch term (KL between the teacher's and the student's patch-to-patch
    # similarity distributions, student patches resized to the teacher's grid)
    global_weight: float = 1.0
    patch_weight: float = 1.0
    patch_temp: float = 0.07  # temperature of the patch-to-patch similarity softmax
    # Several students from one teacher forward per step (recipe mode, one process), e.g.
    # [vit_tiny, small_resnet:embed_dim=64:depth=1]: each entry ARCH or ARCH:KEY=VALUE:...
    # with KEY one of embed_dim, depth, num_heads, cifar_stem (unset: the arch's own sizes,
    # cifar_stem false); every other model.* key is shared. Each student has fresh heads, its
    # own AdamW state (its own param groups: dinolab/train/student_set.py) and spare EMA,
    # exported to out_dir/students/NAME/ (NAME: the entry, other characters than letters,
    # digits, - and _ as _); the first is also model.* and the run's own export.
    # [] = one student, model.*.
    students: list[str] = field(default_factory=list)
