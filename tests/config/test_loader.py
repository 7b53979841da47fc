import re

import pytest

from dinolab.config.loader import (
    ConfigError,
    list_presets,
    load_config,
    load_saved_config,
    save_config,
)
from dinolab.config.schema import Config


def test_defaults_are_the_schema():
    assert load_config() == Config()


def test_preset_then_overrides():
    cfg = load_config("cifar10_vit_tiny", ["train.epochs=3", "data.global_scale=[0.3,1.0]"])
    assert cfg.model.arch == "vit_tiny" and cfg.model.patch_size == 4
    assert cfg.train.epochs == 3
    assert cfg.data.global_scale == [0.3, 1.0]
    assert cfg.optim.weight_decay_end == 0.4  # untouched default


@pytest.mark.parametrize("preset", ["quickstart", "cifar10_vit_tiny", "dino_vits16", "dino_vitb8"])
def test_required_presets_exist_and_load(preset):
    assert preset in list_presets()
    assert isinstance(load_config(preset), Config)


def test_paper_recipe_values():
    cfg = load_config("dino_vits16")
    assert (cfg.model.arch, cfg.model.patch_size, cfg.head.out_dim) == ("vit_small", 16, 65536)
    assert (cfg.teacher.temp_start, cfg.teacher.temp) == (0.04, 0.07)
    assert cfg.teacher.temp_warmup_epochs == 30
    assert cfg.teacher.momentum == 0.996 and cfg.loss.center_momentum == 0.9


def test_unknown_key_is_one_clear_sentence_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"Unknown config key 'train.epoch'.*train.epochs"):
        load_config(overrides=["train.epoch=3"])


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("train.epochs=many", "'train.epochs' in override 'train.epochs=many' must be an int"),
        ("train.epochs=1.5", "must be an int (a whole number, e.g. 5), not 1.5."),
        ("optim.base_lr=fast", "'optim.base_lr' in override 'optim.base_lr=fast' must be a float"),
        ("train.progress=maybe", "must be a bool (true or false), not 'maybe'."),
        ("data.global_scale=3", "must be a list"),
    ],
)
def test_wrong_type_names_the_key_and_the_type_in_words(item, words):
    with pytest.raises(ConfigError, match=re.escape(words)) as err:
        load_config(overrides=[item])
    assert "class" not in str(err.value) and "Node" not in str(err.value)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="quickstart"):
        load_config("nope")


def test_preset_path_for_each_kind_of_preset(tmp_path):
    from dinolab.config.finetune import list_finetune_presets, load_finetune_config
    from dinolab.config.loader import PRESET_DIR, preset_path

    assert preset_path("quickstart") == PRESET_DIR / "quickstart.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("train:\n  epochs: 3\n")
    assert preset_path(str(own)) == own and load_config(str(own)).train.epochs == 3
    for name in ("cpu", "finetune_cpu"):  # the prefix is optional
        assert preset_path(name, "finetune_") == PRESET_DIR / "finetune_cpu.yaml"
    with pytest.raises(ConfigError) as err:
        load_finetune_config("quickstart")  # a pretraining preset is not a fine-tuning one
    assert str(err.value) == (
        f"Unknown fine-tuning preset 'quickstart': choose one of "
        f"{', '.join(list_finetune_presets())} or pass a path to a .yaml file."
    )
    assert "finetune_cpu" not in str(pytest.raises(ConfigError, load_config, "x").value)


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(overrides=["train.epochs"])


def test_saved_config_round_trip(tmp_path):
    cfg = load_config("quickstart", ["train.seed=7", "data.path=/x/y"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_saved_config(tmp_path / "config.yaml") == cfg


def test_missing_saved_config(tmp_path):
    with pytest.raises(ConfigError, match="No config.yaml"):
        load_saved_config(tmp_path / "config.yaml")
