"""Atomic saves, safe loads, clear errors, strict state dicts and RNG round trips."""

import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

from dinolab.train import checkpoint as ckpt
from dinolab.train.checkpoint import (
    find_checkpoint,
    load_checkpoint,
    load_state_dict_strict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))


def _draws():
    return torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist()


def test_round_trip_model_optimizer_rng(tmp_path):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    state = {
        "student": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "step": 120,
        "rng": rng_state(),
    }
    expected = _draws()  # what the RNGs give right after the save point
    set_rng_state(state["rng"])
    path = tmp_path / "run" / "checkpoint.pth"
    save_checkpoint(path, state)
    assert os.listdir(path.parent) == ["checkpoint.pth"]  # no temp file left behind

    loaded = load_checkpoint(path)
    fresh = _model()
    load_state_dict_strict(fresh, loaded["student"], "student")
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    fresh_opt.load_state_dict(loaded["optimizer"])
    w, fresh_w = model[0].weight, fresh[0].weight
    assert torch.equal(fresh_opt.state[fresh_w]["exp_avg"], opt.state[w]["exp_avg"])
    assert fresh_opt.state[fresh_w]["step"].item() == 1
    assert (loaded["epoch"], loaded["step"]) == (3, 120)

    _draws()  # move every RNG on
    set_rng_state(loaded["rng"])
    assert _draws() == expected


def test_rng_state_round_trip_in_memory():
    state = rng_state()
    first = _draws()
    set_rng_state(state)
    assert _draws() == first
    assert state["numpy"]["keys"].dtype == torch.int64 and len(state["python"]["state"]) == 625


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    # Unpicklable state: fails inside the real torch.save, after the temp file was opened.
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_checkpoint(path, {"step": 3, "fn": lambda x: x})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.pth"]
    assert load_checkpoint(path) == {"step": 1}


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, {"w": torch.randn(64, 64)})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"is not a readable dinolab checkpoint \("):
        load_checkpoint(path)


def test_foreign_pickle_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"obj": _Custom()}, path)
    with pytest.raises(ValueError, match="is not a readable dinolab checkpoint"):
        load_checkpoint(path)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="holds a list, not a dict"):
        load_checkpoint(path)


class _Custom:
    pass


def test_missing_checkpoint_and_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint at '.*nope.pth'"):
        load_checkpoint(tmp_path / "nope.pth")
    for run_dir in (tmp_path / "missing", tmp_path):
        with pytest.raises(FileNotFoundError, match="has no checkpoint.pth to resume from"):
            find_checkpoint(run_dir)
    save_checkpoint(tmp_path / "checkpoint.pth", {})
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint.pth"


def test_strict_load_names_missing_unexpected_and_mismatched_keys():
    model = _model()
    sd = _model().state_dict()
    sd.pop("2.bias")
    sd["3.weight"] = torch.zeros(1)
    sd["0.weight"] = torch.zeros(5, 3)
    before = model[0].weight.clone()
    with pytest.raises(ValueError) as err:
        load_state_dict_strict(model, sd, "student")
    msg = str(err.value)
    assert msg.startswith("Checkpoint does not fit the student: missing keys ['2.bias']")
    assert "unexpected keys ['3.weight']" in msg
    assert "0.weight: checkpoint (5, 3) vs model (4, 3)" in msg
    assert "another architecture" in msg
    assert torch.equal(model[0].weight, before)  # nothing was half-loaded


def test_strict_load_hints_at_wrapper_prefix():
    sd = {f"module.{k}": v for k, v in _model().state_dict().items()}
    with pytest.raises(ValueError, match="carry a 'module.' prefix") as err:
        load_state_dict_strict(_model(), sd, "teacher")
    assert "and 1 more" in str(err.value)  # 6 keys, the first 5 shown
