"""Old key names keep loading: override strings, preset files and old runs' config.yaml."""

import logging
from pathlib import Path

import pytest

from dinolab.config import legacy
from dinolab.config.loader import list_presets, load_config, load_saved_config, save_config

OLD_RUN = Path(__file__).parent / "old_run_config.yaml"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(legacy, "_warned", set())


def test_every_old_override_lands_at_its_new_key_and_warns_once(caplog):
    values = {
        old: 3 if old.endswith(("dim", "nlayers", "epochs")) else 0.5 for old in legacy.RENAMED
    }
    overrides = [f"{old}={v}" for old, v in values.items()]
    with caplog.at_level(logging.WARNING, logger="dinolab"):
        cfg = load_config(overrides=overrides + ["optim.momentum_teacher=0.98"])
    for old, new in legacy.RENAMED.items():
        group, *rest = new.split(".")
        node = getattr(cfg, group)
        for part in rest:
            node = getattr(node, part)
        expected = 0.98 if old == "optim.momentum_teacher" else values[old]
        assert node == expected, (old, new)
    text = caplog.text
    assert "optim.momentum_teacher -> teacher.momentum" in text
    assert text.count("optim.momentum_teacher ->") == 1  # once per process, not per use
    assert "ibot.out_dim -> ibot.head.out_dim" in text


def test_old_keys_in_a_preset_file_and_new_keys_win(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text(
        "optim: {momentum_teacher: 0.99, base_lr: 0.001}\n"
        "teacher: {momentum: 0.97}\n"  # both spellings in one file: the new one wins
        "loss: {teacher_temp: 0.05}\n"
        "ibot: {weight: 1.0, out_dim: 256}\n"
    )
    cfg = load_config(str(preset))
    assert (cfg.teacher.momentum, cfg.teacher.temp, cfg.optim.base_lr) == (0.97, 0.05, 0.001)
    assert cfg.ibot.head.out_dim == 256


def test_an_old_runs_config_yaml_loads_and_round_trips(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="dinolab"):
        cfg = load_saved_config(OLD_RUN)
    assert "still work but have moved" in caplog.text
    assert (cfg.teacher.momentum, cfg.teacher.momentum_end) == (0.98, 1.0)
    assert (cfg.teacher.temp_start, cfg.teacher.temp, cfg.teacher.temp_warmup_epochs) == (
        0.04,
        0.04,
        0,
    )
    assert (cfg.ibot.head.out_dim, cfg.ibot.head.hidden_dim, cfg.ibot.head.nlayers) == (512, 128, 3)
    # the old iBOT head took the DINO head's norm_last_layer: it still does
    assert cfg.head.norm_last_layer is False and cfg.ibot.head.norm_last_layer is False
    assert cfg.eval.image_size == cfg.viz.image_size == cfg.data.global_size == 48  # 0 resolved
    assert cfg.highres.local_size == cfg.data.local_size == 24
    assert cfg.model.interpolate_offset == 0.0  # the run resampled with size=, and still does
    save_config(cfg, tmp_path / "config.yaml")  # written back in the new layout...
    text = (tmp_path / "config.yaml").read_text()
    assert "momentum_teacher" not in text and "teacher:\n  momentum: 0.98" in text
    assert "interpolate_offset: 0.0" in text
    assert load_saved_config(tmp_path / "config.yaml") == cfg  # ...and read the same


def test_unknown_keys_are_still_errors():
    from dinolab.config.loader import ConfigError

    with pytest.raises(ConfigError, match="Unknown config key 'optim.momentum_teachr'"):
        load_config(overrides=["optim.momentum_teachr=0.9"])


def test_keys_added_later_take_the_old_runs_value_only_for_saved_runs(tmp_path):
    assert load_config().model.interpolate_offset == 0.1  # new runs: the official "+0.1" rule
    for preset in list_presets():
        assert load_config(preset).model.interpolate_offset == 0.1, preset
    filled = legacy.fill_added({"model": {"arch": "vit_tiny"}})
    assert filled == {"model": {"arch": "vit_tiny", "interpolate_offset": 0.0}}
    kept = {"model": {"interpolate_offset": 0.1}}
    assert legacy.fill_added(kept) == kept and legacy.missing_added(kept) == []
    save_config(load_config(), tmp_path / "config.yaml")  # a new run's file keeps its 0.1
    assert load_saved_config(tmp_path / "config.yaml").model.interpolate_offset == 0.1
