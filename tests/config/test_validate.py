"""config.validate: values that cannot make a run are one sentence naming the key and the fix."""

import pytest
import torch

from dinolab.config.loader import ConfigError, load_config
from dinolab.config.validate import check_training_rules, validate_config

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
        (["eval.resize_ratio=0.9"], "eval.resize_ratio=0.9 must be at least 1.0."),
        (["model.interpolate_offset=-0.1"], "model.interpolate_offset=-0.1 must be in"),
        (["train.teacher_update=momentum"], "train.teacher_update='momentum' is unknown; use one "
         "of ema, student_copy, prev_iter, prev_epoch."),
        (["optim.clip_mode=global"], "optim.clip_mode='global' is unknown; use one of per_param"),
        (["train.parallel=zero3"], "train.parallel='zero3' is unknown; use one of ddp, fsdp."),
        (["gram.weight=1", "gram.highres_factor=0.5"], "gram.highres_factor=0.5 must be at least"),
        (["gram.weight=1", "gram.refresh_every=-2"], "gram.refresh_every=-2 at least 0"),
        (["train.time_budget=5min", "highres.iterations=5", "highres.global_size=48"],
         "train.time_budget and highres.iterations cannot be combined"),
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


def test_gram_anchoring_with_fsdp_is_refused_when_launched_on_several_processes(monkeypatch):
    cfg = load_config(overrides=[*VIT8, "gram.weight=1", "train.parallel=fsdp"])
    validate_config(cfg)  # one process: FSDP wraps nothing, the Gram teacher works
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets, read before any process group
    with pytest.raises(ConfigError, match=r"not supported with FSDP: use train.parallel=ddp"):
        validate_config(cfg)
    check_training_rules(load_config(overrides=[*VIT8, "gram.weight=1"]), world_size=2)  # ddp
    check_training_rules(load_config(overrides=[*VIT8, "train.parallel=fsdp"]), world_size=2)


def test_pretrain_refuses_a_bad_rule_before_building_or_writing_anything(tmp_path, monkeypatch):
    from dinolab.train import pretrain, step

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(step, "build_meta_arch", no_model)
    run = tmp_path / "run"
    cfg = load_config(
        overrides=[*VIT8, f"data.path={tmp_path}", f"out_dir={run}", "train.teacher_update=copy"]
    )
    with pytest.raises(ConfigError, match="train.teacher_update='copy' is unknown"):
        pretrain.pretrain(cfg)
    assert not run.exists()
