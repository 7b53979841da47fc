"""`model.init`: start a run's student and teacher backbones from existing weights.

The weights come through the loaders that already exist (`dinolab.hub.load`): a dinolab
run directory or its teacher_backbone.safetensors, a published hub name, or a weights file in
any layout of `dinolab.models.convert`. They are loaded strictly into the backbone that
`model.*` describes, so `model.*` must describe the same network; the heads stay fresh.
"""

from __future__ import annotations

from torch import nn

from dinolab.models.weights import load_state_dict_strict


def init_backbones(meta: nn.Module, spec: str) -> None:
    """Load the backbone named by `spec` into `meta.student.backbone` and `meta.teacher.backbone`.

    A missing, unexpected or mis-shaped key is a ValueError naming the keys.
    """
    from dinolab import hub

    try:
        state = hub.load(spec).state_dict()
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"model.init={spec}: {exc}") from None
    what = f"model.arch={meta.cfg.model.arch} backbone (model.init={spec}; set model.* to match)"
    for net in (meta.student, meta.teacher):
        load_state_dict_strict(net.backbone, state, what)
