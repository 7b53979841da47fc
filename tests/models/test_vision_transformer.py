import pytest
import torch
import torch.nn.functional as F

from dinolab.config.schema import ModelConfig
from dinolab.models import VisionTransformer, build_backbone, vit_giant2, vit_large, vit_small


def tiny_vit(**kwargs) -> VisionTransformer:
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    args.update(kwargs)
    return VisionTransformer(**args).eval()


@pytest.mark.parametrize(
    ("patch_size", "img_size", "regs"), [(16, 32, 0), (14, 28, 4), (8, 32, 1), (4, 16, 0)]
)
def test_forward_features_shapes(patch_size, img_size, regs):
    model = tiny_vit(patch_size=patch_size, img_size=img_size, num_register_tokens=regs)
    h, w = 2 * patch_size, 3 * patch_size
    out = model.forward_features(torch.randn(2, 3, h, w))
    assert set(out) == {
        "x_norm_clstoken",
        "x_norm_regtokens",
        "x_norm_patchtokens",
        "x_prenorm",
        "masks",
    }
    assert out["x_norm_clstoken"].shape == (2, 32)
    assert out["x_norm_regtokens"].shape == (2, regs, 32)
    assert out["x_norm_patchtokens"].shape == (2, 6, 32)
    assert out["x_prenorm"].shape == (2, 1 + regs + 6, 32)
    assert out["masks"] is None
    torch.testing.assert_close(model.norm(out["x_prenorm"])[:, 0], out["x_norm_clstoken"])
    assert model(torch.randn(2, 3, h, w)).shape == (2, 32)


def test_state_dict_uses_dinov2_key_names():
    model = tiny_vit(num_register_tokens=4, layerscale_init=1e-5, ffn="swiglu")
    sd = model.state_dict()
    for key in [
        "cls_token",
        "pos_embed",
        "register_tokens",
        "mask_token",
        "patch_embed.proj.weight",
        "blocks.1.norm1.weight",
        "blocks.1.attn.qkv.weight",
        "blocks.1.attn.proj.bias",
        "blocks.1.ls1.gamma",
        "blocks.1.norm2.bias",
        "blocks.1.mlp.w12.weight",
        "blocks.1.mlp.w3.weight",
        "blocks.1.ls2.gamma",
        "norm.weight",
    ]:
        assert key in sd, key
    assert sd["register_tokens"].shape == (1, 4, 32)
    assert sd["mask_token"].shape == (1, 32)
    assert sd["pos_embed"].shape == (1, 1 + 16, 32)
    assert torch.equal(sd["mask_token"], torch.zeros(1, 32))
    assert torch.equal(sd["blocks.0.ls2.gamma"], torch.full((32,), 1e-5))
    assert torch.equal(sd["blocks.0.attn.qkv.bias"], torch.zeros(96))
    assert 0.01 < sd["blocks.0.attn.qkv.weight"].std() < 0.03
    no_ls = tiny_vit().state_dict()
    assert not any(".ls1." in k or "register_tokens" in k for k in no_ls)


def test_factories_sizes_and_attributes():
    model = vit_small(patch_size=14, img_size=56, num_register_tokens=4)
    assert (model.embed_dim, model.n_blocks, model.num_heads) == (384, 12, 6)
    assert (model.patch_size, model.num_register_tokens) == (14, 4)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(21.7e6, rel=0.02)
    with torch.device("meta"):  # no memory for the big ones
        large = vit_large(patch_size=14)
        giant = vit_giant2(patch_size=14, img_size=518, layerscale_init=1e-5)
    assert (large.embed_dim, large.n_blocks, large.num_heads) == (1024, 24, 16)
    assert (giant.embed_dim, giant.n_blocks, giant.num_heads) == (1536, 40, 24)
    assert giant.blocks[0].mlp.w12.weight.shape == (8192, 1536)
    assert giant.blocks[0].mlp.w3.weight.shape == (1536, 4096)
    assert giant.pos_embed.shape == (1, 1 + 37 * 37, 1536)
    with torch.device("meta"):
        assert hasattr(vit_giant2(ffn="mlp").blocks[0].mlp, "fc1")


def test_drop_path_rate_is_linear_over_depth():
    model = tiny_vit(depth=5, drop_path_rate=0.4)
    assert isinstance(model.blocks[0].drop_path1, torch.nn.Identity)  # rate 0 -> no module
    rates = [b.drop_path1.drop_prob for b in model.blocks[1:]]
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4])
    uniform = tiny_vit(depth=3, drop_path_rate=0.3, drop_path_uniform=True)
    assert [b.drop_path2.drop_prob for b in uniform.blocks] == pytest.approx([0.3] * 3)


def test_pos_embed_native_size_is_returned_as_is():
    model = tiny_vit()
    assert model.interpolate_pos_encoding(torch.zeros(1, 17, 32), 32, 32) is model.pos_embed


def test_pos_embed_interpolation_non_square_matches_bicubic():
    model = tiny_vit()
    pos = model.interpolate_pos_encoding(torch.zeros(1, 1, 32), 24, 56)
    assert pos.shape == (1, 1 + 3 * 7, 32)
    grid = model.pos_embed[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    manual = F.interpolate(grid, size=(3, 7), mode="bicubic", align_corners=False)
    manual = manual.permute(0, 2, 3, 1).reshape(1, 21, 32)
    torch.testing.assert_close(pos[:, 1:], manual)
    torch.testing.assert_close(pos[:, :1], model.pos_embed[:, :1])
    out = model.forward_features(torch.randn(1, 3, 24, 56))
    assert out["x_norm_patchtokens"].shape == (1, 21, 32)


def test_non_multiple_size_raises():
    model = tiny_vit()
    with pytest.raises(ValueError, match="image size 30x32 is not a multiple of the patch size 8"):
        model(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match="img_size"):
        VisionTransformer(img_size=30, patch_size=8)


def test_sdpa_and_math_models_agree():
    torch.manual_seed(0)
    model = tiny_vit(attn_impl="math", num_register_tokens=2)
    x = torch.randn(2, 3, 32, 40)
    ref = model.forward_features(x)["x_prenorm"]
    for blk in model.blocks:
        blk.attn.attn_impl = "sdpa"
    torch.testing.assert_close(model.forward_features(x)["x_prenorm"], ref, atol=1e-5, rtol=1e-5)


def test_self_attention_maps():
    model = tiny_vit(num_register_tokens=1)
    x = torch.randn(2, 3, 32, 48)
    attn = model.get_last_selfattention(x)
    n = 1 + 1 + 4 * 6
    assert attn.shape == (2, 2, n, n)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, n))
    first = model.get_selfattention(x, block_index=0)
    tokens = model.prepare_tokens_with_masks(x)
    expected = model.blocks[0].attn(model.blocks[0].norm1(tokens), return_attention=True)
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(model.get_selfattention(x, 1), attn)
    with pytest.raises(ValueError, match="out of range"):
        model.get_selfattention(x, 2)


def test_intermediate_layers_match_forward_features():
    model = tiny_vit(depth=3, num_register_tokens=2)
    x = torch.randn(2, 3, 32, 48)
    out = model.forward_features(x)
    (last,) = model.get_intermediate_layers(x, n=1)
    torch.testing.assert_close(last, out["x_norm_patchtokens"])
    layers = model.get_intermediate_layers(x, n=2, reshape=True, return_class_token=True)
    assert len(layers) == 2
    patch, cls = layers[-1]
    assert patch.shape == (2, 32, 4, 6)
    torch.testing.assert_close(cls, out["x_norm_clstoken"])
    torch.testing.assert_close(patch.flatten(2).transpose(1, 2), out["x_norm_patchtokens"])
    (raw,) = model.get_intermediate_layers(x, n=[2], norm=False)
    torch.testing.assert_close(raw, out["x_prenorm"][:, 3:])
    picked = model.get_intermediate_layers(x, n=[0, 2])
    assert len(picked) == 2 and not torch.allclose(picked[0], picked[1])


def test_mask_token_replaces_masked_patches():
    torch.manual_seed(0)
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    no_mask = model.forward_features(x)
    empty = torch.zeros(2, 16, dtype=torch.bool)
    out_empty = model.forward_features(x, masks=empty)
    torch.testing.assert_close(out_empty["x_prenorm"], no_mask["x_prenorm"])
    assert out_empty["masks"] is empty
    masks = empty.clone()
    masks[0, :5] = True
    with torch.no_grad():
        model.mask_token.normal_()
    tokens = model.prepare_tokens_with_masks(x, masks)
    expected = model.mask_token + model.pos_embed[0, 1:6]
    torch.testing.assert_close(tokens[0, 1:6], expected)
    # two different images look identical where both are masked
    tokens2 = model.prepare_tokens_with_masks(torch.randn(2, 3, 32, 32), masks)
    torch.testing.assert_close(tokens2[0, 1:6], tokens[0, 1:6])
    masked = model.forward_features(x, masks=masks)["x_norm_patchtokens"]
    assert not torch.allclose(masked[0], no_mask["x_norm_patchtokens"][0])
    with pytest.raises(ValueError, match="masks of shape"):
        model.forward_features(x, masks=torch.zeros(2, 15, dtype=torch.bool))


def test_forward_features_list_one_call_per_resolution():
    model = tiny_vit()
    xs = [torch.randn(2, 3, 32, 32), torch.randn(3, 3, 16, 16)]
    masks = [torch.zeros(2, 16, dtype=torch.bool), None]
    outs = model.forward_features_list(xs, masks)
    assert [o["x_norm_patchtokens"].shape for o in outs] == [(2, 16, 32), (3, 4, 32)]
    torch.testing.assert_close(outs[1]["x_norm_clstoken"], model(xs[1]))
    with pytest.raises(ValueError, match="one mask"):
        model.forward_features_list(xs, [None])


def test_bf16_autocast_training_step():
    model = tiny_vit(drop_path_rate=0.2, layerscale_init=1e-5).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.forward_features(torch.randn(4, 3, 32, 32))
        loss = out["x_norm_clstoken"].float().pow(2).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert model.patch_embed.proj.weight.grad is not None
    assert model.blocks[1].ls1.gamma.grad is not None


def test_build_backbone_from_config():
    cfg = ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, num_register_tokens=2)
    model = build_backbone(cfg)
    assert isinstance(model, VisionTransformer)
    assert (model.embed_dim, model.patch_size, model.num_register_tokens) == (192, 8, 2)
    assert model.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
    with pytest.raises(ValueError, match="vit_small.*resnet50"):
        build_backbone(ModelConfig(arch="vit_huge"))


def test_timm_parity():
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    torch.manual_seed(0)
    ref = timm_vit.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=0
    ).eval()
    ours = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2)
    ours.eval()
    state = ref.state_dict()
    state["mask_token"] = ours.mask_token.detach().clone()
    ours.load_state_dict(state, strict=True)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = ref.forward_features(x)
        out = ours.forward_features(x)
    assert (out["x_norm_clstoken"] - expected[:, 0]).abs().max() < 1e-4
    assert (out["x_norm_patchtokens"] - expected[:, 1:]).abs().max() < 1e-4
