"""train.sharded_checkpoint: a DCP checkpoint that does not fit the run is one sentence."""

import pytest
import torch
from torch import nn

from dinolab.train.optim import build_optimizer
from dinolab.train.sharded_checkpoint import load_sharded, save_sharded


class _Student(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Module()
        self.head.last_layer = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.last_layer(self.backbone(x))


def _saved(tmp_path):
    """A plain (one-process) model and the DCP folder of its 2-group AdamW after one step."""
    torch.manual_seed(0)
    model = _Student()
    optimizer = build_optimizer(model)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return model, tmp_path / save_sharded(tmp_path, model, optimizer, 1)


def test_a_checkpoint_from_before_the_freeze_groups_says_what_to_do(tmp_path):
    model, folder = _saved(tmp_path)
    freeze = {id(p): 1 for p in model.head.last_layer.parameters()}  # DINOv2's lr-0 groups
    optimizer = build_optimizer(model, last_layer_freeze=freeze)
    with pytest.raises(ValueError, match=r"other parameter groups than this run has \(2 vs 4;"):
        load_sharded(folder, model, optimizer)
    with pytest.raises(ValueError, match=f"start a new run, .* model.init={tmp_path} "):
        load_sharded(folder, model, optimizer)


def test_other_group_keys_are_a_sentence_not_dcps_base_exception(tmp_path):
    model, folder = _saved(tmp_path)
    optimizer = build_optimizer(model, patch_embed_lr_mult=0.5)  # 2 groups, other keys
    with pytest.raises(ValueError, match="does not fit this run's model"):
        load_sharded(folder, model, optimizer)
