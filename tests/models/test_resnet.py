import pytest
import torch

from dinolab.config.schema import ModelConfig
from dinolab.models import ResNetBackbone, build_backbone


def test_resnet18_named_outputs():
    torch.manual_seed(0)
    net = ResNetBackbone("resnet18").eval()
    x = torch.randn(2, 3, 64, 96)
    out = net.forward_features(x)
    assert out["x_norm_patchtokens"].shape == (2, 2 * 3, 512)
    assert out["x_norm_regtokens"].shape == (2, 0, 512)
    assert out["x_prenorm"].shape == (2, 7, 512)
    torch.testing.assert_close(out["x_norm_clstoken"], out["x_norm_patchtokens"].mean(1))
    torch.testing.assert_close(net(x), out["x_norm_clstoken"])
    with pytest.raises(ValueError, match="masks"):
        net.forward_features(x, masks=torch.zeros(2, 6, dtype=torch.bool))


def test_resnet50_from_config_has_torchvision_keys():
    net = build_backbone(ModelConfig(arch="resnet50"))
    assert isinstance(net, ResNetBackbone)
    assert net.embed_dim == 2048 and net.patch_size == 32
    keys = set(net.state_dict())
    assert "conv1.weight" in keys and "layer4.2.bn3.running_var" in keys
    assert not any(k.startswith("fc.") for k in keys)
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 2048)


def test_unknown_resnet():
    with pytest.raises(ValueError, match="resnet18"):
        ResNetBackbone("resnet7")
