import sys

import pytest
import torch
import torchvision

from dinolab.config.schema import HeadConfig, ModelConfig
from dinolab.eval.features import backbone_tokens
from dinolab.models import build_backbone, build_head
from dinolab.models.adapters import FeatureAdapter, TimmAdapter, TorchvisionAdapter

pytest.importorskip("timm")


def _check_feature_dict(net, x, n_patches):
    out = net.forward_features(x)
    b, dim = x.shape[0], net.embed_dim
    assert out["x_norm_clstoken"].shape == (b, dim)
    assert out["x_norm_patchtokens"].shape == (b, n_patches, dim)
    assert out["x_norm_regtokens"].shape == (b, 0, dim)
    assert out["x_prenorm"].shape == (b, n_patches + 1, dim)
    assert out["masks"] is None
    torch.testing.assert_close(net(x), out["x_norm_clstoken"])
    head = build_head(HeadConfig(out_dim=32, hidden_dim=16, bottleneck_dim=8), dim)
    assert head(net(x)).shape == (b, 32)
    rows = backbone_tokens(net, x, avgpool=True)  # what k-NN / linear evaluation read
    assert rows.shape == (b, 2 * dim)
    return out


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_resnet18_adapters_with_cifar_stem(source):
    torch.manual_seed(0)
    net = build_backbone(ModelConfig(arch=f"{source}:resnet18", cifar_stem=True)).eval()
    assert isinstance(net, FeatureAdapter)
    assert net.embed_dim == 512 and net.patch_size == 8
    out = _check_feature_dict(net, torch.randn(2, 3, 32, 48), n_patches=4 * 6)
    torch.testing.assert_close(out["x_norm_clstoken"], out["x_norm_patchtokens"].mean(1))
    plain = build_backbone(ModelConfig(arch=f"{source}:resnet18")).eval()
    assert plain.patch_size == 32
    _check_feature_dict(plain, torch.randn(2, 3, 64, 64), n_patches=4)


def test_torchvision_adapter_keeps_torchvision_keys():
    net = TorchvisionAdapter("resnet18")
    ref = torchvision.models.resnet18(weights=None).state_dict()
    ref = {k: v for k, v in ref.items() if not k.startswith("fc.")}
    net.load_state_dict(ref, strict=True)  # published torchvision weights load, minus the fc
    assert [type(b).__name__ for b in net.blocks] == ["Sequential"] * 4


def test_torchvision_mobilenet_adapter():
    net = build_backbone(ModelConfig(arch="torchvision:mobilenet_v3_small")).eval()
    assert net.embed_dim == 576 and net.patch_size == 32
    _check_feature_dict(net, torch.randn(2, 3, 64, 64), n_patches=4)


def test_timm_vit_adapter_takes_any_crop_size():
    net = build_backbone(ModelConfig(arch="timm:test_vit")).eval()
    p = net.patch_size
    out = _check_feature_dict(net, torch.randn(2, 3, 4 * p, 2 * p), n_patches=8)
    assert not torch.allclose(out["x_norm_clstoken"], out["x_norm_patchtokens"].mean(1))
    assert len(net.blocks) == len(net.net.blocks)
    with pytest.raises(ValueError, match="masks"):
        net.forward_features(torch.randn(1, 3, 2 * p, 2 * p), masks=torch.zeros(1, 4).bool())


@pytest.mark.parametrize(
    "cfg, match",
    [
        (ModelConfig(arch="timm:no_such_net"), "unknown to timm"),
        (ModelConfig(arch="torchvision:no_such_net"), "unknown to torchvision"),
        (ModelConfig(arch="torchvision:squeezenet1_0"), "cannot take apart"),
        (ModelConfig(arch="tensorflow:resnet18"), "timm:NAME or torchvision:NAME"),
        (ModelConfig(arch="vit_small", cifar_stem=True), "cifar_stem is for ResNets"),
        (ModelConfig(arch="timm:test_vit", cifar_stem=True), "cifar_stem=false"),
    ],
)
def test_bad_names_are_one_sentence(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(cfg)


def test_missing_timm_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    with pytest.raises(
        ImportError, match=r"model.arch=timm:resnet18 needs timm, .*'dinolab\[timm\]'"
    ):
        TimmAdapter("resnet18")


def test_native_resnet_cifar_stem():
    net = build_backbone(ModelConfig(arch="resnet50", cifar_stem=True)).eval()
    assert net.patch_size == 8 and tuple(net.conv1.weight.shape) == (64, 3, 3, 3)
    assert net.forward_features(torch.randn(1, 3, 32, 32))["x_norm_patchtokens"].shape[1] == 16


def test_head_use_bn_puts_batchnorm_after_each_hidden_linear():
    head = build_head(HeadConfig(out_dim=32, hidden_dim=16, bottleneck_dim=8, use_bn=True), 24)
    kinds = [type(m).__name__ for m in head.mlp]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Linear", "BatchNorm1d", "GELU", "Linear"]
    plain = build_head(HeadConfig(out_dim=32, hidden_dim=16, bottleneck_dim=8), 24)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())
