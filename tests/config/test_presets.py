"""Preset values that claim a released recipe (issue 13): what the official runs used."""

import pytest

from dinolab.config.loader import load_config
from dinolab.config.schema import Config

DINOV2 = ["dinov2_vits14", "dinov2_vitl14", "dinov2_vitg14", "dinov2_cifar10_vit_tiny"]


@pytest.mark.parametrize("preset", DINOV2)
def test_dinov2_presets_follow_the_released_training_code(preset):
    cfg = load_config(preset)
    assert cfg.data.blur_p == [0.0, 0.9, 0.5] and cfg.data.solarize_p == 0.2
    assert (cfg.optim.clip_mode, cfg.optim.clip_grad) == ("per_module_norm", 3.0)


def test_schema_defaults_stay_dino_v1():
    cfg = Config()
    assert cfg.data.blur_p == [1.0, 0.1, 0.5] and cfg.optim.clip_mode == "per_param"
