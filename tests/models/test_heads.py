import pytest
import torch

from dinolab.config.schema import HeadConfig
from dinolab.models import DINOHead, WeightNormLinear, build_head


def test_head_output_shape_and_layers():
    head = DINOHead(32, 100, hidden_dim=64, bottleneck_dim=16, nlayers=3)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 64), (64, 64), (64, 16)]
    out = head(torch.randn(5, 32))
    assert out.shape == (5, 100) and out.dtype == torch.float32


def test_single_layer_head_and_bn():
    head = DINOHead(32, 10, bottleneck_dim=8, nlayers=1)
    assert isinstance(head.mlp, torch.nn.Linear) and head.mlp.out_features == 8
    bn_head = DINOHead(32, 10, hidden_dim=16, bottleneck_dim=8, nlayers=2, use_bn=True)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in bn_head.mlp)
    assert bn_head(torch.randn(4, 32)).shape == (4, 10)
    with pytest.raises(ValueError, match="nlayers"):
        DINOHead(32, 10, nlayers=0)


def test_bottleneck_is_l2_normalised():
    head = DINOHead(32, 50, hidden_dim=64, bottleneck_dim=16)
    seen = {}
    head.last_layer.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    head(torch.randn(6, 32) * 100)
    torch.testing.assert_close(seen["x"].norm(dim=-1), torch.ones(6))
    # with unit prototypes and a unit input, every logit is a cosine
    assert head(torch.randn(6, 32)).abs().max() <= 1.0 + 1e-5


def test_norm_last_layer_freezes_gain():
    frozen = DINOHead(16, 20, hidden_dim=32, bottleneck_dim=8, norm_last_layer=True)
    free = DINOHead(16, 20, hidden_dim=32, bottleneck_dim=8, norm_last_layer=False)
    assert not frozen.last_layer.weight_g.requires_grad
    assert free.last_layer.weight_g.requires_grad
    assert frozen.last_layer.weight_v.requires_grad
    free(torch.randn(4, 16)).sum().backward()
    assert free.last_layer.weight_g.grad is not None
    assert set(frozen.state_dict()) >= {"last_layer.weight_g", "last_layer.weight_v"}
    assert frozen.last_layer.weight_g.shape == (20, 1)
    assert not any("bias" in k for k in frozen.state_dict() if k.startswith("last_layer"))


def test_weight_norm_rows_have_norm_g():
    layer = WeightNormLinear(8, 6)
    with torch.no_grad():
        layer.weight_g.copy_(torch.arange(1.0, 7.0).unsqueeze(1))
    torch.testing.assert_close(layer.weight.norm(dim=1), torch.arange(1.0, 7.0))
    x = torch.randn(3, 8)
    torch.testing.assert_close(layer(x), x @ layer.weight.T)
    # matches torch's own weight norm formula
    v, g = layer.weight_v, layer.weight_g
    torch.testing.assert_close(layer.weight, torch._weight_norm(v, g, 0))


def test_head_under_bf16_autocast_is_finite():
    head = DINOHead(16, 30, hidden_dim=32, bottleneck_dim=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(torch.randn(4, 16))
    assert out.shape == (4, 30) and torch.isfinite(out).all()


def test_build_head_from_config():
    cfg = HeadConfig(out_dim=40, hidden_dim=24, bottleneck_dim=12, nlayers=2, norm_last_layer=False)
    head = build_head(cfg, in_dim=16)
    assert head.last_layer.weight_v.shape == (40, 12)
    assert head.last_layer.weight_g.requires_grad
    assert head(torch.randn(2, 16)).shape == (2, 40)


def test_fp32_last_layer_under_bf16_autocast():
    """head.last_layer_fp32 (default): prototype scores as exact as fp32 under bf16 autocast;
    the bf16 path rounds them ~1e-3 (benchmarks/head_precision.py)."""
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(16, 32), dim=-1)
    exact, rounded = WeightNormLinear(32, 512, fp32=True), WeightNormLinear(32, 512)
    rounded.load_state_dict(exact.state_dict())
    v = exact.weight_v.double()
    ref = x.double() @ (v / v.norm(dim=1, keepdim=True)).t()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = exact(x), rounded(x)
    assert a.dtype == b.dtype == torch.float32
    assert (a.double() - ref).abs().max() < 1e-6 < 1e-4 < (b.double() - ref).abs().max()
    a.sum().backward()
    assert exact.weight_v.grad.dtype == torch.float32 and torch.isfinite(exact.weight_v.grad).all()
    assert build_head(HeadConfig(out_dim=64), 32).last_layer.fp32  # the default
    assert not build_head(HeadConfig(out_dim=64, last_layer_fp32=False), 32).last_layer.fp32
