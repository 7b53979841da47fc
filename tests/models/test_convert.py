"""Parity of dinolab's loaders with timm and HF transformers (random weights, no downloads).

Reference per family at non-native sizes (the original repositories are the ground truth):
- DINO v1: facebookresearch/dino vision_transformer.py `interpolate_pos_encoding` — bicubic
  with `scale_factor=(g + 0.1) / M`, no antialias. timm resamples with `size=` + antialias
  instead (checked below to differ), so the reference is timm's blocks fed the position
  embedding of `original_interpolate` (a re-implementation of that formula).
- DINOv2 without registers: facebookresearch/dinov2 dinov2/models/vision_transformer.py,
  same "+0.1" formula (interpolate_offset=0.1). HF `Dinov2Model` (transformers 5) uses
  `size=` without antialias and timm `size=` with antialias: both differ from the original,
  so the reference is again timm's blocks with `original_interpolate`; HF is the reference
  at the native size.
- DINOv2 with registers: dinov2/hub/backbones.py builds them with interpolate_offset=0 and
  interpolate_antialias=True (`size=`), which is exactly timm's and HF's
  `Dinov2WithRegistersModel` rule: both are direct references at every size.
ViT-S widths (384, 6 heads) with 2 blocks keep the tests fast; depth plays no part in the
conversions or in the position-embedding rules.
"""

import math

import pytest
import timm
import torch
import torch.nn.functional as F

from dinolab.models import convert, hub

TOL = 1e-4


def randomize(module, std=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return module.eval()


def original_interpolate(pos, gh, gw, offset, antialias):
    """dinov2/models/vision_transformer.py::interpolate_pos_encoding (and, with offset 0.1
    and no antialias, DINO v1's), re-implemented on a [1, 1 + M*M, D] embedding."""
    n = pos.shape[1] - 1
    m = int(math.sqrt(n))
    grid = pos[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    if offset:
        kw = {"scale_factor": (float(gh + offset) / m, float(gw + offset) / m)}
    else:
        kw = {"size": (gh, gw)}
    grid = F.interpolate(grid, mode="bicubic", antialias=antialias, **kw)
    assert grid.shape[-2:] == (gh, gw)
    return torch.cat((pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)), dim=1)


def max_diff(a, b):
    return float((a - b).abs().max())


def dinolab_from_timm(timm_model, offset, antialias):
    sd = convert.normalize_vit(timm_model.state_dict())
    model = hub.build_model(convert.infer_model_config(sd), offset, antialias)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def timm_tokens(t, x):
    out = t.forward_features(x)
    return out[:, 0], out[:, t.num_prefix_tokens :]


@torch.no_grad()
def test_dino_v1_vits16_matches_timm_and_original_formula():
    kw = dict(pretrained=False, num_classes=0, depth=2)
    t = randomize(timm.create_model("vit_small_patch16_224.dino", dynamic_img_size=True, **kw))
    m = dinolab_from_timm(t, 0.1, False)
    assert m.interpolate_offset == 0.1 and "mask_token" in m.state_dict()
    x = torch.randn(1, 3, 224, 224)
    ref_cls, ref_patch = timm_tokens(t, x)
    out = m.forward_features(x)
    assert max_diff(out["x_norm_clstoken"], ref_cls) < TOL
    assert max_diff(out["x_norm_patchtokens"], ref_patch) < TOL
    # 224x160: timm's rule is not the original's; the reference is timm's blocks with the
    # original formula's position embedding, in a timm model built for that grid.
    x = torch.randn(1, 3, 224, 160)
    static = timm.create_model("vit_small_patch16_224", img_size=(224, 160), **kw).eval()
    sd = dict(t.state_dict())
    sd["pos_embed"] = original_interpolate(sd["pos_embed"], 14, 10, 0.1, False)
    static.load_state_dict(sd)
    ref_cls, ref_patch = timm_tokens(static, x)
    out = m.forward_features(x)
    assert max_diff(out["x_norm_clstoken"], ref_cls) < TOL
    assert max_diff(out["x_norm_patchtokens"], ref_patch) < TOL
    assert max_diff(out["x_norm_patchtokens"], timm_tokens(t, x)[1]) > 1e-3  # timm differs
    # and back: dinolab -> timm state dict loads strictly
    t.load_state_dict(convert.to_timm(m.state_dict()), strict=True)


@torch.no_grad()
def test_dinov2_vits14_matches_hf_native_and_original_formula():
    from transformers import Dinov2Config, Dinov2Model

    cfg = Dinov2Config(
        hidden_size=384, num_hidden_layers=2, num_attention_heads=6, patch_size=14,
        image_size=224, layerscale_value=1e-5,
    )  # fmt: skip
    h = randomize(Dinov2Model(cfg))
    m = hub.build_model(convert.infer_model_config(convert.from_hf(h.state_dict())), 0.1)
    m.load_state_dict(convert.from_hf(h.state_dict()), strict=True)
    m.eval()
    x = torch.randn(1, 3, 224, 224)
    ref = h(pixel_values=x).last_hidden_state
    out = m.forward_features(x)
    assert max_diff(out["x_norm_clstoken"], ref[:, 0]) < TOL
    assert max_diff(out["x_norm_patchtokens"], ref[:, 1:]) < TOL
    # non-native 224x168 against the original "+0.1" formula in timm's blocks
    x = torch.randn(1, 3, 224, 168)
    t = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, num_classes=0, depth=2, img_size=(224, 168)
    ).eval()
    sd = convert.to_timm(m.state_dict())
    sd["pos_embed"] = original_interpolate(sd["pos_embed"], 16, 12, 0.1, False)
    t.load_state_dict(sd, strict=True)
    ref_cls, ref_patch = timm_tokens(t, x)
    out = m.forward_features(x)
    assert max_diff(out["x_norm_clstoken"], ref_cls) < TOL
    assert max_diff(out["x_norm_patchtokens"], ref_patch) < TOL
    hf_patch = h(pixel_values=x).last_hidden_state[:, 1:]
    assert max_diff(out["x_norm_patchtokens"], hf_patch) > 1e-4  # HF's size= rule differs


@torch.no_grad()
def test_dinov2_vits14_reg4_matches_timm_and_hf_at_every_size(tmp_path):
    from transformers import Dinov2WithRegistersModel

    from dinolab.exporters.hf import export_hf

    t = randomize(
        timm.create_model(
            "vit_small_patch14_reg4_dinov2", pretrained=False, num_classes=0, depth=2,
            img_size=224, dynamic_img_size=True,
        )
    )  # fmt: skip
    m = dinolab_from_timm(t, 0.0, True)
    assert m.num_register_tokens == 4 and m.pos_embed.shape[1] == 257
    # timm -> dinolab -> HF (our exporter) -> transformers' own loader
    h = Dinov2WithRegistersModel.from_pretrained(export_hf(m, tmp_path / "hf", check=False))
    h.eval()
    for size in ((224, 224), (224, 168)):
        x = torch.randn(1, 3, *size)
        out = m.forward_features(x)
        ref_cls, ref_patch = timm_tokens(t, x)
        hf = h(pixel_values=x).last_hidden_state
        assert max_diff(out["x_norm_clstoken"], ref_cls) < TOL
        assert max_diff(out["x_norm_patchtokens"], ref_patch) < TOL
        assert max_diff(out["x_norm_clstoken"], hf[:, 0]) < TOL
        assert max_diff(out["x_norm_patchtokens"], hf[:, 5:]) < TOL
    t.load_state_dict(convert.to_timm(m.state_dict()), strict=True)


@torch.no_grad()
def test_resnet50_matches_timm():
    t = randomize(timm.create_model("resnet50", pretrained=False, num_classes=0), std=0.02)
    sd = convert.normalize_resnet(t.state_dict())
    m = hub.build_model(convert.infer_model_config(sd))
    m.load_state_dict(sd, strict=True)
    m.eval()
    for size in ((224, 224), (224, 160)):
        x = torch.randn(1, 3, *size)
        ref = t.forward_features(x)  # [B, C, h, w]
        out = m.forward_features(x)
        scale = float(ref.abs().max().clamp_min(1.0))
        assert max_diff(out["x_norm_clstoken"], ref.mean(dim=(2, 3))) / scale < TOL
        assert max_diff(out["x_norm_patchtokens"], ref.flatten(2).transpose(1, 2)) / scale < TOL


def test_layout_fixes():
    v = torch.zeros(2)
    sd = convert.flatten_block_chunks({"blocks.3.9.norm1.weight": v, "blocks.1.norm1.weight": v})
    assert set(sd) == {"blocks.9.norm1.weight", "blocks.1.norm1.weight"}
    assert convert.strip_prefixes({"module._orig_mod.x": v}) == {"x": v}
    names = [f"last_layer.parametrizations.weight.original{i}" for i in (0, 1)]
    head = convert.rename_head_keys(dict.fromkeys(names, v))
    assert set(head) == {"last_layer.weight_g", "last_layer.weight_v"}


def test_split_training_checkpoints():
    t = torch.ones(1)
    v1 = {"student": {"module.backbone.cls_token": t, "module.head.mlp.0.weight": t},
          "teacher": {"backbone.cls_token": 2 * t, "head.mlp.0.weight": t}}  # fmt: skip
    b, h = convert.split_training_checkpoint(v1, "teacher")
    assert b["cls_token"].item() == 2 and set(h) == {"mlp.0.weight"}
    b, _ = convert.split_training_checkpoint(v1, "student")
    assert b["cls_token"].item() == 1
    v2 = {"model": {"teacher.backbone.blocks.0.3.ls1.gamma": t, "teacher.dino_head.mlp.0.bias": t}}
    b, h = convert.split_training_checkpoint(v2, "teacher")
    assert "blocks.0.3.ls1.gamma" in b and "mlp.0.bias" in h
    with pytest.raises(ValueError, match="which="):
        convert.split_training_checkpoint(v1, "ema")
