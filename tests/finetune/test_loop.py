"""The run: head-first then full, exact resume, the files it leaves."""

import json

import pytest
import torch

from dinolab.finetune.loop import run_finetune
from dinolab.finetune.run_files import BEST, CLASSIFIER, CONFUSION
from dinolab.finetune.schedule import backbone_frozen, lr_schedule
from dinolab.run_dir import CHECKPOINT, load_checkpoint, read_metrics
from tests.finetune.conftest import TINY_VIT, tiny_config, tiny_vit


def _backbone(state):
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_linear_then_full_schedule():
    cfg = tiny_config("t", "v", "o", "epochs=3", "head_epochs=1", "warmup_epochs=1")
    assert [backbone_frozen(cfg, e) for e in range(3)] == [True, False, False]
    lrs = lr_schedule(cfg, steps_per_epoch=4, effective_batch=256)
    assert len(lrs) == 12 and lrs.max() == pytest.approx(0.01)
    assert lrs[0] == 0.0 and lrs[4] == 0.0  # each phase warms up from zero
    assert lrs[3] > lrs[4] < lrs[7]
    cfg.head_lr_mult = 10.0
    lrs = lr_schedule(cfg, steps_per_epoch=4, effective_batch=256)
    assert lrs[:4].max() == pytest.approx(0.1) and lrs[4:].max() == pytest.approx(0.01)


def test_head_first_then_full_and_exact_resume(folders, tmp_path):
    train, val = folders
    extra = ("lr=0.1", "head_epochs=1", "mixup=0.4", "cutmix=1.0", "ema=0.5", "keep_best=false")
    start = {f"backbone.{k}": v.clone() for k, v in tiny_vit().state_dict().items()}

    whole = tiny_config(train, val, tmp_path / "whole", *extra)
    run_finetune(whole, tiny_vit(), TINY_VIT)

    cut = tiny_config(train, val, tmp_path / "cut", *extra)
    first = run_finetune(cut, tiny_vit(), TINY_VIT, max_epochs=1)
    assert first["finished"] is False and first["classifier"] is None
    after_head = load_checkpoint(tmp_path / "cut" / CHECKPOINT)["model"]
    assert _same(start, _backbone(after_head))  # epoch 1: backbone frozen ...
    assert after_head["head.weight"].abs().max() > 5e-4  # ... the head learns (init ~2e-5)
    with pytest.raises(FileExistsError, match="--resume"):
        run_finetune(cut, tiny_vit(), TINY_VIT)
    summary = run_finetune(cut, resume=True)
    resumed = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert not _same(start, _backbone(resumed["model"]))  # ... epoch 2: trained end to end
    uninterrupted = load_checkpoint(tmp_path / "whole" / CHECKPOINT)
    for key in ("model", "ema"):
        assert _same(uninterrupted[key], resumed[key]), key
    assert resumed["step"] == uninterrupted["step"] == 8  # 16 images / batch 4, 2 epochs

    run = tmp_path / "cut"
    for name in ("config.yaml", CLASSIFIER, BEST, CONFUSION, "curves.png", "summary.json"):
        assert (run / name).is_file(), name
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows if "val/top1" in r] == [1, 2]  # no epoch logged twice
    assert summary["finished"] and json.loads((run / "summary.json").read_text())["epochs"] == 2
    assert read_metrics(tmp_path / "whole" / "metrics.jsonl") == rows


def test_resume_without_a_run_is_one_sentence(folders, tmp_path):
    cfg = tiny_config(*folders, tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="no checkpoint.pth to resume from"):
        run_finetune(cfg, resume=True)
