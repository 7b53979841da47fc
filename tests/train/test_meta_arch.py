import torch

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
