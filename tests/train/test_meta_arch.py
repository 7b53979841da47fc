import pytest
import torch

from dinolab.data import IBOTBatchMasks
from dinolab.train.meta_arch import DINOMetaArch

from .conftest import tiny_config


def _batch(b=4, n_local=2, g=32, loc=16):
    return {
        "global_crops": torch.randn(2 * b, 3, g, g),
        "local_crops": torch.randn(n_local * b, 3, loc, loc),
        "num_images": b,
    }


def test_ema_update_is_exact(tmp_path):
    model = DINOMetaArch(tiny_config(tmp_path, tmp_path))
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(torch.randn_like(p))
    t0 = {k: v.clone() for k, v in model.teacher.named_parameters()}
    s = dict(model.student.named_parameters())
    model.update_teacher(0.9)
    for k, p in model.teacher.named_parameters():
        torch.testing.assert_close(p, 0.9 * t0[k] + 0.1 * s[k], rtol=0, atol=1e-6)


def test_one_backbone_call_per_resolution(tmp_path):
    model = DINOMetaArch(tiny_config(tmp_path, tmp_path))
    calls = {"student": [], "teacher": []}
    for name in calls:
        net = getattr(model, name).backbone
        net.register_forward_hook(lambda m, i, o, n=name: calls[n].append(tuple(i[0].shape)))
    out = model.forward_loss(_batch(), teacher_temp=0.04)
    assert calls["teacher"] == [(8, 3, 32, 32)]  # globals only
    assert calls["student"] == [(8, 3, 32, 32), (8, 3, 16, 16)]
    assert out["loss"].requires_grad


def test_teacher_has_no_drop_path_and_no_grad(tmp_path):
    model = DINOMetaArch(tiny_config(tmp_path, tmp_path, **{"model.drop_path_rate": 0.5}))
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model.teacher.backbone(x), model.teacher.backbone(x)
    assert torch.equal(a, b)  # deterministic: the teacher never drops paths


def test_resnet50_trains_too(tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, **{"model.arch": "resnet50"})
    model = DINOMetaArch(cfg)
    out = model.forward_loss(_batch(b=2), teacher_temp=0.04)
    out["loss"].backward()
    assert model.student.backbone.embed_dim == 2048
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.head.mlp[0].weight.grad is not None


_V2 = {
    "model.patch_size": 4,
    "ibot.weight": 1.0,
    "ibot.head.out_dim": 48,
    "ibot.head.hidden_dim": 32,
    "ibot.head.bottleneck_dim": 16,
    "loss.koleo_weight": 0.1,
}


def test_dino_config_builds_the_dino_meta_arch(tmp_path):
    from dinolab.train.build import build_meta_arch

    assert type(build_meta_arch(tiny_config(tmp_path, tmp_path))) is DINOMetaArch


def test_dinov2_student_sees_masked_globals_teacher_unmasked(tmp_path):
    from dinolab.train.build import build_meta_arch

    model = build_meta_arch(tiny_config(tmp_path, tmp_path, **_V2))
    seen = {}
    for name in ("student", "teacher"):
        bb = getattr(model, name).backbone
        orig = bb.prepare_tokens_with_masks

        def spy(x, masks=None, n=name, orig=orig):
            seen.setdefault(n, []).append(None if masks is None else masks.clone())
            return orig(x, masks)

        bb.prepare_tokens_with_masks = spy
    masks = torch.zeros(8, 64, dtype=torch.bool)
    masks[0, :10] = True
    masks[5, 20:24] = True
    out = model.forward_loss({**_batch(), "masks": masks}, teacher_temp=0.04)
    assert seen["teacher"] == [None]  # globals only, unmasked
    assert torch.equal(seen["student"][0], masks) and seen["student"][1] is None  # locals
    assert {"dino_loss", "ibot_loss", "koleo_loss", "masked_fraction"} <= out.keys()
    assert float(out["masked_fraction"]) == pytest.approx(14 / (8 * 64))
    w = model.cfg
    total = out["dino_loss"] + w.ibot.weight * out["ibot_loss"] + 0.1 * out["koleo_loss"]
    torch.testing.assert_close(out["loss"].detach(), total)


def test_dinov2_heads_untied_or_shared_and_both_last_layers_freeze(tmp_path):
    from dinolab.train.build import build_meta_arch
    from dinolab.train.optim import cancel_last_layer_gradients

    untied = build_meta_arch(tiny_config(tmp_path, tmp_path, **_V2))
    keys = set(untied.state_dict())
    assert "student.head.ibot.last_layer.weight_v" in keys
    assert untied.student.head["ibot"].last_layer.weight_v.shape[0] == 48
    masks = IBOTBatchMasks.from_config(untied.cfg)(8, seeds=[1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"needs batch\['masks'\] of shape \(8, 64\), got none"):
        untied.forward_loss(_batch(), teacher_temp=0.04)  # the step only consumes masks
    untied.forward_loss({**_batch(), "masks": masks}, teacher_temp=0.04)["loss"].backward()
    cancel_last_layer_gradients(untied.student.head, epoch=0, freeze_epochs=1)
    assert untied.student.head["dino"].last_layer.weight_v.grad is None
    assert untied.student.head["ibot"].last_layer.weight_v.grad is None
    assert untied.student.head["ibot"].mlp[0].weight.grad is not None
    shared = build_meta_arch(
        tiny_config(tmp_path, tmp_path, **_V2, **{"ibot.separate_head": False})
    )
    assert not any(".head.ibot." in k for k in shared.state_dict())
    assert shared.ibot_loss.centering.center.shape == (1, 64)  # the DINO head's prototypes


def test_dinov2_rejects_ibot_on_a_resnet(tmp_path):
    from dinolab.train.build import build_meta_arch

    with pytest.raises(ValueError, match="ViT backbone"):
        build_meta_arch(tiny_config(tmp_path, tmp_path, **_V2, **{"model.arch": "resnet50"}))


def test_cls_token_init_dinov2_1e6_dino_002(tmp_path):
    """facebookresearch/dinov2 starts the CLS token at std 1e-6, DINO at 0.02."""
    from dinolab.train.build import build_meta_arch

    torch.manual_seed(0)
    dim = {"model.embed_dim": 64}
    v2 = build_meta_arch(tiny_config(tmp_path, tmp_path, **dim, **{"ibot.weight": 1.0}))
    v1 = build_meta_arch(tiny_config(tmp_path, tmp_path, **dim))
    assert type(v1) is DINOMetaArch and type(v2) is not DINOMetaArch
    s2, s1 = v2.student.backbone.cls_token.std().item(), v1.student.backbone.cls_token.std().item()
    assert 0.7e-6 < s2 < 1.4e-6 and 0.014 < s1 < 0.028  # 64 draws: sample sd within ~20%
    assert torch.equal(v2.teacher.backbone.cls_token, v2.student.backbone.cls_token)
    assert v2.student.backbone.pos_embed.std().item() > 0.01  # only the CLS token changes
