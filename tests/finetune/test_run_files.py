"""The fine-tuning run directory: the resume rule, the checkpoint, the end's exports."""

import json

import pytest
import torch

from dinolab.finetune.classifier import spec_for
from dinolab.finetune.run_files import (
    BEST,
    CLASSIFIER,
    finish,
    load_state,
    save_state,
)
from dinolab.run_dir import CHECKPOINT
from tests.finetune.conftest import TINY_VIT, tiny_config, tiny_vit


def _saved_run(tmp_path):
    spec = spec_for(tiny_vit(), TINY_VIT, ["a", "b"], "cls", 16)
    model = spec.build()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.zeros(1, 3, 16, 16)).sum().backward()
    optimizer.step()
    best, last = {"top1": 50.0, "epoch": 1}, {"top1": 50.0, "epoch": 1}
    save_state(tmp_path, model, optimizer, None, 3, 1, best, spec, last)
    return spec, model, optimizer


def test_a_new_run_is_refused_over_an_old_one_and_resume_needs_one(tmp_path):
    assert load_state(tmp_path, resume=False) is None
    with pytest.raises(FileNotFoundError, match=f"no {CHECKPOINT} to resume from"):
        load_state(tmp_path, resume=True)
    _saved_run(tmp_path)
    with pytest.raises(FileExistsError, match="pass --resume to continue it"):
        load_state(tmp_path, resume=False)


def test_the_checkpoint_holds_what_resuming_needs(tmp_path):
    spec, model, optimizer = _saved_run(tmp_path)
    state = load_state(tmp_path, resume=True)
    assert (state["step"], state["epoch"], state["ema"]) == (3, 1, None)
    assert state["best"] == {"top1": 50.0, "epoch": 1} and state["spec"]["classes"] == ["a", "b"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state["model"].items())
    assert state["optimizer"]["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert "torch" in state["rng"]


def test_finish_keeps_the_best_epoch_and_writes_the_summary(tmp_path):
    spec, model, _ = _saved_run(tmp_path)
    (tmp_path / BEST).write_bytes(b"best epoch's classifier")
    rows = [
        {"step": 3, "epoch": 1, "loss": 0.7, "lr": 0.1},
        {"step": 3, "epoch": 1, "val/top1": 50.0, "val/top5": 100.0, "val/loss": 0.6},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tiny_config("t", "v", tmp_path, "keep_best=true")
    summary = finish(cfg, tmp_path, spec, model, None, {"top1": 50.0}, {"epoch": 2}, done=True)
    assert (tmp_path / CLASSIFIER).read_bytes() == b"best epoch's classifier"
    assert summary["classifier"] == str(tmp_path / CLASSIFIER) and summary["epochs"] == 2
    assert json.loads((tmp_path / "summary.json").read_text())["finished"] is True
    assert (tmp_path / "curves.png").is_file()
    unfinished = finish(cfg, tmp_path, spec, model, None, {}, None, done=False)
    assert unfinished["classifier"] is None and unfinished["epochs"] == 0
