import pytest
import torch

from dinolab.config.schema import ModelConfig
from dinolab.models import build_backbone
from dinolab.models.small_resnet import SmallResNet


def test_feature_dict_and_widths():
    torch.manual_seed(0)
    net = build_backbone(ModelConfig(arch="small_resnet", embed_dim=64, depth=2)).eval()
    assert isinstance(net, SmallResNet) and net.embed_dim == 64 and net.patch_size == 8
    widths = [s[0].conv1.out_channels for s in net.stages]
    assert widths == [8, 16, 32, 64] and all(len(s) == 2 for s in net.stages)
    x = torch.randn(3, 3, 32, 48)
    out = net.forward_features(x)
    assert out["x_norm_patchtokens"].shape == (3, 4 * 6, 64)
    torch.testing.assert_close(out["x_norm_clstoken"], out["x_norm_patchtokens"].mean(1))
    torch.testing.assert_close(net(x), out["x_norm_clstoken"])
    assert out["x_prenorm"].shape == (3, 25, 64) and out["masks"] is None


def test_defaults_are_the_cpu_recipe_size():
    net = build_backbone(ModelConfig(arch="small_resnet"))
    assert net.embed_dim == 256 and all(len(s) == 1 for s in net.stages)


def test_groups_and_bad_settings():
    net = SmallResNet(embed_dim=32).eval()
    outs = net.forward_features_list([torch.randn(2, 3, 16, 16), torch.randn(4, 3, 8, 8)])
    assert [o["x_norm_clstoken"].shape for o in outs] == [(2, 32), (4, 32)]
    with pytest.raises(ValueError, match="masks"):
        net.forward_features(torch.randn(1, 3, 16, 16), masks=torch.zeros(1, 4).bool())
    with pytest.raises(ValueError, match="multiple of 8"):
        SmallResNet(embed_dim=30)
