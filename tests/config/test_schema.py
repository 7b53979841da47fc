"""Derived defaults are resolved once, when a Config is built, and explicit values stay."""

from dinolab.config.loader import load_config
from dinolab.config.schema import Config, HeadConfig, IBOTHeadConfig


def test_sizes_of_zero_follow_the_data_sizes():
    cfg = load_config(overrides=["data.global_size=64", "data.local_size=32"])
    assert (cfg.eval.image_size, cfg.viz.image_size, cfg.highres.local_size) == (64, 64, 32)
    kept = load_config(overrides=["data.global_size=64", "eval.image_size=96", "viz.image_size=80"])
    assert (kept.eval.image_size, kept.viz.image_size) == (96, 80)
    bare = Config()  # built by hand, not by the loader: resolved all the same
    assert bare.eval.image_size == bare.data.global_size == 224


def test_ibot_head_is_a_head_config_that_follows_the_dino_heads_freeze_rule():
    cfg = load_config(overrides=["head.norm_last_layer=false", "head.freeze_last_layer_epochs=3"])
    assert isinstance(cfg.ibot.head, HeadConfig)
    assert (cfg.ibot.head.norm_last_layer, cfg.ibot.head.freeze_last_layer_epochs) == (False, 3)
    own = load_config(
        overrides=["head.norm_last_layer=false", "ibot.head.norm_last_layer=true",
                   "ibot.head.freeze_last_layer_epochs=0"]
    )  # fmt: skip
    assert (own.ibot.head.norm_last_layer, own.ibot.head.freeze_last_layer_epochs) == (True, 0)
    assert IBOTHeadConfig().norm_last_layer is None  # unset until the Config resolves it


def test_resolving_twice_changes_nothing():
    import dataclasses

    cfg = load_config(overrides=["data.global_size=64", "head.norm_last_layer=false"])
    assert dataclasses.replace(cfg) == cfg
