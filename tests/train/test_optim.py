"""Parameter groups, schedules on the optimizer, clipping (per parameter, per module), frozen
last layer."""

import math

import pytest
import torch
from torch import nn

from dinolab.train.optim import (
    apply_schedules,
    build_optimizer,
    cancel_last_layer_gradients,
    clip_gradients,
    clip_module_norms,
    clip_units,
    param_groups,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))  # 3-D: decayed, as in DINO
        self.fc = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.gamma = nn.Parameter(torch.ones(4))  # LayerScale-like, 1-D
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def _ids(params):
    return {id(p) for p in params}


def test_param_groups_split_bias_and_1d_and_skip_frozen():
    m = Tiny()
    decay, no_decay = param_groups(m)
    assert _ids(decay["params"]) == _ids([m.cls_token, m.fc.weight])
    assert _ids(no_decay["params"]) == _ids([m.fc.bias, m.norm.weight, m.norm.bias, m.gamma])
    assert decay["apply_wd"] is True
    assert no_decay["apply_wd"] is False and no_decay["weight_decay"] == 0.0


def test_build_optimizer_and_apply_schedules_decay_only_weights():
    m = Tiny()
    opt = build_optimizer(m, betas=(0.9, 0.95))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["foreach"] and not opt.defaults["fused"]  # CPU parameters
    assert opt.defaults["betas"] == (0.9, 0.95)
    apply_schedules(opt, lr=0.1, wd=1.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    assert [g["weight_decay"] for g in opt.param_groups] == [1.0, 0.0]
    # With zero gradients AdamW's step is pure decoupled decay: w <- w * (1 - lr * wd).
    with torch.no_grad():
        m.fc.weight.fill_(2.0)
        m.fc.bias.fill_(2.0)
    for p in m.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    opt.step()
    assert torch.allclose(m.fc.weight, torch.full((4, 3), 2.0 * 0.9))
    assert torch.equal(m.fc.bias, torch.full((4,), 2.0))


def test_apply_schedules_honours_multipliers():
    p, q = nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW(
        [
            {"params": [p], "apply_wd": True, "lr_multiplier": 0.2, "wd_multiplier": 0.5},
            {"params": [q], "apply_wd": False, "weight_decay": 0.0},
        ]
    )
    apply_schedules(opt, lr=1.0, wd=0.4)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(0.2)
    assert opt.param_groups[1]["lr"] == 1.0 and opt.param_groups[1]["weight_decay"] == 0.0


def test_optimizer_needs_trainable_parameters():
    m = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(m)


def test_clipping_is_per_parameter():
    m = nn.Linear(2, 2)
    m.weight.grad = torch.tensor([[6.0, 0.0], [0.0, 8.0]])  # norm 10
    m.bias.grad = torch.tensor([0.6, 0.8])  # norm 1, below the limit
    total = clip_gradients(m, max_norm=3.0)
    assert total.item() == pytest.approx(math.sqrt(10.0**2 + 1.0**2))
    # weight rescaled to norm 3 in the same direction; bias untouched.
    torch.testing.assert_close(m.weight.grad, torch.tensor([[1.8, 0.0], [0.0, 2.4]]))
    assert torch.equal(m.bias.grad, torch.tensor([0.6, 0.8]))
    assert torch.linalg.vector_norm(m.weight.grad).item() == pytest.approx(3.0, rel=1e-5)


def test_clipping_disabled_only_measures_and_skips_missing_grads():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    m[0].weight.grad = torch.full((2, 2), 5.0)  # norm 10; the rest have no grad
    total = clip_gradients(m, max_norm=0.0)
    assert total.item() == pytest.approx(10.0)
    assert torch.equal(m[0].weight.grad, torch.full((2, 2), 5.0))
    assert clip_gradients(nn.Linear(2, 2), 3.0).item() == 0.0


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Linear(3, 3)
        self.last_layer = nn.Linear(3, 5, bias=False)


def _with_grads(module):
    for p in module.parameters():
        p.grad = torch.ones_like(p)
    return module


def test_cancel_last_layer_only_during_freeze():
    head = _with_grads(Head())
    cancel_last_layer_gradients(head, epoch=0, freeze_epochs=1)
    assert head.last_layer.weight.grad is None
    assert head.mlp.weight.grad is not None and head.mlp.bias.grad is not None
    head = _with_grads(Head())
    cancel_last_layer_gradients(head, epoch=1, freeze_epochs=1)
    assert head.last_layer.weight.grad is not None
    wrapped = _with_grads(nn.ModuleDict({"head": Head()}))  # works through a wrapper too
    cancel_last_layer_gradients(wrapped, epoch=0, freeze_epochs=2)
    assert wrapped["head"].last_layer.weight.grad is None


def test_cancel_last_layer_without_one_is_a_clear_error():
    with pytest.raises(ValueError, match="no 'last_layer' parameters"):
        cancel_last_layer_gradients(nn.Linear(2, 2), epoch=0, freeze_epochs=1)


def test_layer_decay_and_patch_embed_multipliers_match_dinov2():
    from dinolab.models import VisionTransformer
    from dinolab.models.heads import DINOHead

    student = nn.Module()
    student.backbone = VisionTransformer(32, 8, embed_dim=16, depth=3, num_heads=2)
    student.head = DINOHead(16, 8, hidden_dim=8, bottleneck_dim=4)
    groups = param_groups(student, layer_decay=0.5, patch_embed_lr_mult=0.2)
    mult = {id(p): g["lr_multiplier"] for g in groups for p in g["params"]}
    wd = {id(p): g["apply_wd"] for g in groups for p in g["params"]}
    named = dict(student.named_parameters())
    # depth 3: embeddings are layer 0 -> 0.5 ** 4; block i -> 0.5 ** (3 - i); norm, head -> 1
    assert mult[id(named["backbone.cls_token"])] == pytest.approx(0.5**4)
    assert mult[id(named["backbone.patch_embed.proj.weight"])] == pytest.approx(0.2 * 0.5**4)
    assert mult[id(named["backbone.blocks.0.attn.qkv.weight"])] == pytest.approx(0.5**3)
    assert mult[id(named["backbone.blocks.2.mlp.fc2.bias"])] == pytest.approx(0.5)
    assert mult[id(named["backbone.norm.weight"])] == 1.0
    assert mult[id(named["head.last_layer.weight_v"])] == 1.0
    assert wd[id(named["backbone.blocks.1.attn.qkv.weight"])]
    assert not wd[id(named["backbone.blocks.1.attn.qkv.bias"])]
    assert "head.last_layer.weight_g" not in {n for n, p in named.items() if id(p) in mult}
    opt = build_optimizer(student, layer_decay=0.5, patch_embed_lr_mult=0.2)
    apply_schedules(opt, lr=1.0, wd=0.1)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(g["lr_multiplier"])
        assert g["weight_decay"] == (0.1 if g["apply_wd"] else 0.0)


def test_default_multipliers_keep_the_two_dino_groups():
    groups = param_groups(Tiny(), layer_decay=1.0, patch_embed_lr_mult=1.0)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert all("lr_multiplier" not in g for g in groups)


class TwoHeads(nn.Module):
    """The DINOv2 student's layout: backbone + ModuleDict {dino, ibot}."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8))
        self.head = nn.ModuleDict({"dino": nn.Linear(8, 5), "ibot": nn.Linear(8, 7)})


def _grads_with_scales(m: nn.Module, scales: dict[str, float]) -> None:
    g = torch.Generator().manual_seed(0)
    for name, p in m.named_parameters():
        unit = next(k for k in scales if name.startswith(k))
        p.grad = torch.randn(p.shape, generator=g) * scales[unit]


def test_per_module_norm_clipping_matches_clip_grad_norm_per_module():
    m, ref = TwoHeads(), TwoHeads()
    # backbone far above the limit, DINO head below it (left alone), iBOT head just above
    scales = {"backbone.": 5.0, "head.dino.": 0.05, "head.ibot.": 0.8}
    _grads_with_scales(m, scales)
    _grads_with_scales(ref, scales)
    assert [type(u) for u in clip_units(m)] == [nn.Sequential, nn.Linear, nn.Linear]
    expected = [
        torch.nn.utils.clip_grad_norm_(u.parameters(), 3.0)
        for u in (ref.backbone, ref.head["dino"], ref.head["ibot"])
    ]
    assert expected[0] > 3.0 and expected[1] < 3.0 and expected[2] > 3.0  # all three cases
    total = clip_module_norms(m, 3.0)
    assert torch.allclose(total, torch.linalg.vector_norm(torch.stack(expected)))
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=0), name
    after = [torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in u.parameters()]))
             for u in clip_units(m)]  # fmt: skip
    assert abs(after[0] - 3.0) < 1e-4 and abs(after[2] - 3.0) < 1e-4


def test_per_module_norm_keeps_the_direction_per_param_does_not():
    m, p_m = TwoHeads(), TwoHeads()
    scales = {"backbone.": 5.0, "head.": 5.0}
    _grads_with_scales(m, scales)
    _grads_with_scales(p_m, scales)
    before = torch.cat([p.grad.flatten() for p in m.backbone.parameters()])
    clip_module_norms(m, 1.0)
    clip_gradients(p_m, 1.0)
    module = torch.cat([p.grad.flatten() for p in m.backbone.parameters()])
    per_param = torch.cat([p.grad.flatten() for p in p_m.backbone.parameters()])
    cos = torch.nn.functional.cosine_similarity
    assert cos(module, before, dim=0) > 1 - 1e-6  # one scale for the whole module
    assert cos(per_param, before, dim=0) < 0.999  # each tensor scaled on its own
    assert per_param.norm() > 1.5  # per-tensor limits add up: looser than one module norm


def test_per_module_norm_zero_only_measures():
    m = TwoHeads()
    _grads_with_scales(m, {"backbone.": 5.0, "head.": 5.0})
    before = [p.grad.clone() for p in m.parameters()]
    total = clip_module_norms(m, 0.0)
    assert torch.allclose(total, torch.linalg.vector_norm(torch.stack([g.norm() for g in before])))
    assert all(torch.equal(p.grad, g) for p, g in zip(m.parameters(), before, strict=True))
    assert clip_module_norms(nn.Linear(2, 2), 3.0).item() == 0.0  # no gradients yet
