"""config.validate: values that cannot make a run are one sentence naming the key and the fix."""

import pytest
import torch

from dinolab.config.loader import ConfigError, load_config
from dinolab.config.validate import validate_config

VIT8 = ["model.arch=vit_tiny", "model.patch_size=8", "data.global_size=32", "data.local_size=16"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["data.global_size=30"], "data.global_size=30 is not a multiple of model.patch_size=8: "
         "set data.global_size to 24 or 32"),
        (["data.local_size=20"], "set data.local_size to 16 or 24"),
        (["highres.iterations=5", "highres.global_size=50"], "set highres.global_size to 48 or 56"),
        (["train.precision=fp16"], "train.precision=fp16 is not one of auto, bf16, fp32"),
        (["train.device=gpu"], "device 'gpu' is not a device name"),
        (["train.epochs=0"], "train.epochs=0 must be at least 1."),
        (["train.max_steps=-1"], "train.max_steps=-1 must be at least 0."),
        (["train.checkpoint_every_epochs=0"], "train.checkpoint_every_epochs=0 must be at least 1"),
        (["model.interpolate_offset=1.1"], "model.interpolate_offset=1.1 must be in"),
        (["model.interpolate_offset=-0.1"], "model.interpolate_offset=-0.1 must be in"),
    ],
)  # fmt: skip
def test_values_that_cannot_make_a_run_are_refused(overrides, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")) as err:
        validate_config(load_config(overrides=[*VIT8, *overrides]))
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_without_a_gpu_is_refused():
    with pytest.raises(ConfigError, match="train.device: device 'cuda' asks for a GPU, but Py"):
        validate_config(load_config(overrides=["train.device=cuda"]))


def test_good_configs_and_size_free_backbones_pass():
    validate_config(load_config(overrides=VIT8))
    validate_config(load_config(overrides=["model.arch=resnet50", "data.global_size=30"]))
    validate_config(load_config(overrides=[*VIT8, "data.num_local_crops=0", "data.local_size=5"]))
