import pytest

from dinolab.finetune.classifier import Classifier
from dinolab.finetune.lr_decay import count_layers, layer_id, param_groups
from dinolab.models.small_resnet import SmallResNet
from tests.finetune.conftest import tiny_vit


def _scales(model, decay):
    return {n: g["lr_scale"] for g in param_groups(model, 0.05, decay) for n in g["names"]}


def test_vit_blocks_get_decayed_lrs_by_hand_values():
    model = Classifier(tiny_vit(), 3)  # 2 blocks: ids 0 (embeddings), 1, 2, 3 (norm, head)
    assert count_layers(model) == 3
    scales = _scales(model, 0.5)
    assert scales["backbone.cls_token"] == pytest.approx(0.125)  # 0.5 ** 3
    assert scales["backbone.pos_embed"] == pytest.approx(0.125)
    assert scales["backbone.patch_embed.proj.weight"] == pytest.approx(0.125)
    assert scales["backbone.blocks.0.attn.qkv.weight"] == pytest.approx(0.25)
    assert scales["backbone.blocks.1.mlp.fc2.weight"] == pytest.approx(0.5)
    assert scales["backbone.norm.weight"] == 1.0
    assert scales["head.weight"] == 1.0 and scales["head.bias"] == 1.0


def test_no_weight_decay_on_biases_norms_and_tokens():
    groups = param_groups(Classifier(tiny_vit(), 3), 0.05, 0.65)
    decay = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert decay["head.weight"] == 0.05 and decay["backbone.blocks.0.attn.qkv.weight"] == 0.05
    assert decay["head.bias"] == 0.0 and decay["backbone.blocks.0.norm1.weight"] == 0.0
    assert decay["backbone.cls_token"] == 0.0 and decay["backbone.pos_embed"] == 0.0


def test_resnet_stages_are_the_layers():
    model = Classifier(SmallResNet(embed_dim=16, depth=1), 2)
    assert count_layers(model) == 5  # stem 0, stages 1-4, head 5
    scales = _scales(model, 0.75)
    assert scales["backbone.stem.0.weight"] == pytest.approx(0.75**5)
    assert scales["backbone.stages.0.0.conv1.weight"] == pytest.approx(0.75**4)
    assert scales["backbone.stages.3.0.conv2.weight"] == pytest.approx(0.75)
    assert layer_id("backbone.layer3.0.conv1.weight", 5) == 3  # torchvision ResNets


def test_frozen_parameters_are_left_out_and_decay_one_is_flat():
    model = Classifier(tiny_vit(), 3)
    assert set(_scales(model, 1.0).values()) == {1.0}
    model.backbone.requires_grad_(False)
    assert {n for g in param_groups(model, 0.05, 0.65) for n in g["names"]} == {
        "head.weight",
        "head.bias",
    }
