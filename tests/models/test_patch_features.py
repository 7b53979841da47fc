import pytest
import torch

from dinolab.models.patch_features import (
    block_count,
    evenly_spaced_blocks,
    layer_count,
    layer_maps,
    patch_feature_map,
    patch_size_of,
)
from dinolab.models.resnet import ResNetBackbone
from dinolab.models.small_resnet import SmallResNet
from dinolab.models.vision_transformer import VisionTransformer
from tests.curate.toys import PixelNet
from tests.eval.conftest import tiny_vit
from tests.eval.dense_sets import PatchMean


@pytest.fixture
def backbone() -> torch.nn.Module:
    return tiny_vit()


def test_vit_last_block_is_the_final_normed_patch_tokens(backbone):
    x = torch.randn(2, 3, 32, 24)
    with torch.no_grad():
        fmap = patch_feature_map(backbone, x)
        tokens = backbone.forward_features(x)["x_norm_patchtokens"]
    assert fmap.shape == (2, 32, 4, 3)
    assert torch.allclose(fmap.flatten(2).transpose(1, 2), tokens, atol=1e-6)


def test_vit_blocks_and_cls_are_concatenated_per_block(backbone):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        fmap = patch_feature_map(backbone, x, blocks=[0, 1], with_cls=True)
        cls = backbone.forward_features(x)["x_norm_clstoken"]
    assert fmap.shape == (1, 4 * 32, 4, 4)
    # channels: block 0 patches, block 0 CLS, block 1 patches, block 1 CLS (the final one)
    assert torch.allclose(fmap[0, 96:, 2, 3], cls[0], atol=1e-6)
    assert torch.allclose(fmap[0, 32:64, 0, 0], fmap[0, 32:64, 3, 1])


def test_convolutional_backbones_give_their_last_map_and_refuse_blocks():
    x = torch.rand(1, 3, 16, 24)
    fmap = patch_feature_map(PatchMean(), x, with_cls=True)
    assert fmap.shape == (1, 6, 2, 3)
    assert torch.allclose(fmap[0, :3, 1, 2], x[0, :, 8:, 16:].mean(dim=(1, 2)))
    assert torch.allclose(fmap[0, 3:, 0, 0], x[0].mean(dim=(1, 2)), atol=1e-6)
    assert block_count(PatchMean()) == 1
    with pytest.raises(ValueError, match="no intermediate blocks"):
        patch_feature_map(PatchMean(), x, blocks=4)


def test_evenly_spaced_blocks_end_at_the_last():
    assert evenly_spaced_blocks(12, 4) == [0, 4, 7, 11]
    assert evenly_spaced_blocks(2, 1) == [1]
    with pytest.raises(ValueError, match="cannot take 5 blocks"):
        evenly_spaced_blocks(2, 5)


def test_a_module_without_a_patch_grid_is_one_sentence():
    with pytest.raises(ValueError, match="no patch-token grid"):
        patch_size_of(torch.nn.Linear(2, 2))
    assert patch_size_of(PatchMean()) == 8


def _net() -> SmallResNet:
    torch.manual_seed(0)
    return SmallResNet(embed_dim=32).eval()


@torch.no_grad()
def test_layer_maps_are_the_backbones_own_stages_and_blocks():
    x = torch.randn(2, 3, 32, 32)
    net = _net()
    s1, s4, s2 = layer_maps(net, x, [1, 4, 2])
    assert torch.allclose(s4, net.feature_map(x))
    assert torch.allclose(s1, net.stages[0](net.stem(x)))
    assert s1.shape == (2, 4, 32, 32) and s2.shape == (2, 8, 16, 16)
    rn = ResNetBackbone("resnet18").eval()
    assert layer_count(rn) == 4
    assert torch.allclose(layer_maps(rn, x, [4])[0], rn.feature_map(x), atol=1e-6)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=3, num_heads=2).eval()
    ref = vit.get_intermediate_layers(x, [0, 2], reshape=True)
    last, first = layer_maps(vit, x, [3, 1])
    assert torch.allclose(first, ref[0]) and torch.allclose(last, ref[1])
    assert first.shape == (2, 16, 4, 4)


def test_layers_a_model_lacks_are_one_sentence():
    with pytest.raises(ValueError, match="exposes no intermediate feature maps"):
        layer_maps(PixelNet(), torch.zeros(1, 3, 16, 16), [1])
    with pytest.raises(ValueError, match=r"has layers 1\.\.4"):
        layer_maps(_net(), torch.zeros(1, 3, 16, 16), [5])
