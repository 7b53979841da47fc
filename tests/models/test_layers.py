import pytest
import torch

from dinolab.models.layers import (
    Attention,
    Block,
    DropPath,
    LayerScale,
    PatchEmbed,
    SwiGLUFFN,
    swiglu_hidden_dim,
)
from dinolab.models.layers.attention import attention_note, auto_uses_sdpa


def test_drop_path_is_identity_in_eval():
    dp = DropPath(0.5).eval()
    x = torch.randn(8, 5, 4)
    assert dp(x) is x


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    dp = DropPath(0.3).train()
    x = torch.ones(20000, 3, 2)
    y = dp(x)
    per_sample = y.flatten(1)
    # each sample is either dropped entirely or scaled by 1 / keep_prob
    assert torch.all(
        (per_sample == 0).all(1) | torch.isclose(per_sample, torch.tensor(1 / 0.7)).all(1)
    )
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.3) < 0.02
    assert abs(y.mean().item() - 1.0) < 0.03


def test_drop_path_rejects_bad_rate():
    with pytest.raises(ValueError, match="drop path rate"):
        DropPath(1.0)


def test_layer_scale_init_and_effect():
    ls = LayerScale(4, 1e-5)
    assert torch.equal(ls.gamma, torch.full((4,), 1e-5))
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(ls(x), x * 1e-5)


def test_swiglu_hidden_dim_matches_dinov2():
    # DINOv2 ViT-g/14: 1536 dim, mlp_ratio 4 -> w12 is [8192, 1536], w3 is [1536, 4096]
    assert swiglu_hidden_dim(1536, 4.0) == 4096
    assert swiglu_hidden_dim(100, 4.0) % 8 == 0 and swiglu_hidden_dim(100, 4.0) >= 266
    ffn = SwiGLUFFN(16, swiglu_hidden_dim(16, 4.0))
    assert ffn.w12.weight.shape == (2 * 48, 16) and ffn.w3.weight.shape == (16, 48)
    x = torch.randn(2, 5, 16)
    x1, x2 = (x @ ffn.w12.weight.T + ffn.w12.bias).chunk(2, dim=-1)
    expected = (torch.nn.functional.silu(x1) * x2) @ ffn.w3.weight.T + ffn.w3.bias
    torch.testing.assert_close(ffn(x), expected)


def test_patch_embed_shape_and_size_check():
    pe = PatchEmbed(patch_size=4, in_chans=3, embed_dim=8)
    assert pe(torch.randn(2, 3, 8, 12)).shape == (2, 6, 8)
    with pytest.raises(ValueError, match="image size 8x10 is not a multiple of the patch size 4"):
        pe(torch.randn(1, 3, 8, 10))


def test_attention_sdpa_and_math_agree():
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, attn_impl="math")
    x = torch.randn(3, 17, 32)
    out_math = attn(x)
    attn.attn_impl = "sdpa"
    out_sdpa = attn(x)
    torch.testing.assert_close(out_math, out_sdpa, atol=1e-5, rtol=1e-5)
    attn.attn_impl = "auto"  # fp32 on CPU -> sdpa
    torch.testing.assert_close(attn(x), out_sdpa, atol=0, rtol=0)
    with torch.autocast("cpu", torch.bfloat16):  # bf16 on CPU -> math
        auto_bf16 = attn(x)
        attn.attn_impl = "math"
        torch.testing.assert_close(auto_bf16, attn(x), atol=0, rtol=0)


def test_auto_attention_kernel_choice():
    assert not auto_uses_sdpa("cpu", torch.bfloat16)
    assert auto_uses_sdpa("cpu", torch.float32)
    assert auto_uses_sdpa("cuda", torch.bfloat16)
    assert attention_note("auto", torch.device("cpu"), "fp32") == "auto -> sdpa for fp32 on cpu"
    assert "math" in attention_note("auto", torch.device("cpu"), "bf16")
    assert attention_note("math", torch.device("cpu"), "fp32") == "math (set explicitly)"


def test_attention_weights_are_row_stochastic():
    attn = Attention(16, num_heads=2)
    w = attn(torch.randn(2, 9, 16), return_attention=True)
    assert w.shape == (2, 2, 9, 9)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 9))


def test_attention_rejects_bad_config():
    with pytest.raises(ValueError, match="attn_impl"):
        Attention(16, 2, attn_impl="flash")
    with pytest.raises(ValueError, match="divisible"):
        Attention(10, 3)


def test_block_layout_with_and_without_layerscale():
    plain = Block(16, 2)
    keys = set(plain.state_dict())
    assert "attn.qkv.weight" in keys and "mlp.fc1.weight" in keys
    assert not any(k.startswith(("ls1", "ls2")) for k in keys)
    assert isinstance(plain.ls1, torch.nn.Identity) and isinstance(
        plain.drop_path1, torch.nn.Identity
    )
    scaled = Block(16, 2, ffn="swiglu", layerscale_init=1e-5, drop_path=0.1)
    keys = set(scaled.state_dict())
    assert {"ls1.gamma", "ls2.gamma", "mlp.w12.weight", "mlp.w3.weight"} <= keys
    x = torch.randn(2, 5, 16)
    # with gamma = 0 both residual branches vanish
    torch.nn.init.zeros_(scaled.ls1.gamma)
    torch.nn.init.zeros_(scaled.ls2.gamma)
    torch.testing.assert_close(scaled.eval()(x), x)
    with pytest.raises(ValueError, match="ffn"):
        Block(16, 2, ffn="geglu")
