"""dinolab.run_dir: the teacher export and its loaders give the same features at any size,
under either training rule (model.interpolate_offset 0.1, the official one; 0, older runs)."""

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from dinolab import hub
from dinolab.cli.options import resolve_model
from dinolab.config.loader import load_saved_config, save_config
from dinolab.config.schema import Config, ModelConfig
from dinolab.extract import extract
from dinolab.models.build import build_backbone
from dinolab.models.weights import FORMAT, load_backbone, save_backbone
from dinolab.run_dir import CHECKPOINT, CONFIG, TEACHER_FILE, export_teacher, load_run_backbone

TINY = ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, embed_dim=64, depth=2,
                   num_heads=2, drop_path_rate=0.0, interpolate_offset=0.0)  # fmt: skip
X = torch.randn(2, 3, 48, 24)  # 6 x 3 patches: not the native 4 x 4, not square


def _feats(model):
    with torch.no_grad():
        return model.eval().forward_features(X)["x_norm_patchtokens"]


def _run(tmp_path, model, cfg=None, name="run", export=True):
    """A run directory as training leaves it: config.yaml, checkpoint.pth, the teacher export."""
    run = tmp_path / name
    run.mkdir()
    cfg = cfg or Config(model=TINY)
    save_config(cfg, run / CONFIG)
    state = {f"teacher.backbone.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": state}, run / CHECKPOINT)
    if export:
        export_teacher(model, cfg, run)
    return run


@pytest.mark.parametrize("offset", [0.1, 0.0])
def test_every_entry_point_gives_the_trained_features(tmp_path, offset):
    cfg = Config(model=replace(TINY, interpolate_offset=offset))
    teacher = build_backbone(cfg.model).eval()  # as training builds it
    assert teacher.interpolate_offset == offset
    run = _run(tmp_path, teacher, cfg)
    bare = _run(tmp_path, teacher, cfg, "no_export", export=False)  # killed before the export
    want = _feats(teacher)
    other = build_backbone(cfg.model, interpolate_offset=0.1 - offset)
    other.load_state_dict(teacher.state_dict())
    assert not torch.allclose(_feats(other), want)  # the two rules differ at this size
    for model in (
        load_run_backbone(run)[0],
        load_run_backbone(run / TEACHER_FILE)[0],
        load_run_backbone(bare)[0],  # from checkpoint.pth and config.yaml
        hub.load(run),
        hub.load(run / TEACHER_FILE),
        hub.load(bare),
        load_backbone(run / TEACHER_FILE),
        resolve_model(run).model,  # what every CLI command (dinolab extract, eval, viz) uses
        resolve_model(run / TEACHER_FILE).model,
        resolve_model(run / CHECKPOINT).model,
    ):
        assert torch.equal(_feats(model), want)
    for source in (run, run / TEACHER_FILE, bare):  # dinolab.extract by path
        feats = extract(source, X, patch_tokens=True, precision="fp32", progress=False)
        assert torch.equal(feats["patch_tokens"].reshape(want.shape), want)


def test_a_run_saved_before_the_key_keeps_size_resampling(tmp_path):
    """An older run's config.yaml has no model.interpolate_offset: it trained with size=."""
    old = build_backbone(TINY).eval()
    run = _run(tmp_path, old, export=False)
    text = (run / CONFIG).read_text()
    (run / CONFIG).write_text(text.replace("  interpolate_offset: 0.0\n", ""))
    assert "interpolate_offset" not in (run / CONFIG).read_text()
    assert load_saved_config(run / CONFIG).model.interpolate_offset == 0.0
    assert Config().model.interpolate_offset == 0.1  # a new run: the official rule
    assert torch.equal(_feats(load_run_backbone(run)[0]), _feats(old))
    assert torch.equal(_feats(resolve_model(run / CHECKPOINT).model), _feats(old))


def test_old_exports_without_a_rule_load_with_the_training_rule(tmp_path):
    teacher = build_backbone(TINY).eval()
    path = tmp_path / "old.safetensors"
    old_cfg = {k: v for k, v in TINY.__dict__.items() if k != "interpolate_offset"}
    old_meta = {"format": FORMAT, "model": json.dumps(old_cfg)}  # before the rule was kept
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, path, old_meta)
    assert torch.equal(_feats(hub.load(path)), _feats(teacher))
    assert torch.equal(_feats(load_run_backbone(path)[0]), _feats(teacher))
    assert hub.load(path).interpolate_offset == 0.0


def test_a_published_rule_survives_the_export(tmp_path):
    v1 = build_backbone(TINY, interpolate_offset=0.1).eval()  # DINO v1's "+0.1" rule
    path = save_backbone(v1, TINY, tmp_path / "v1.safetensors")
    assert set(load_file(path)) == set(v1.state_dict())
    want = _feats(v1)
    plain = build_backbone(TINY)
    plain.load_state_dict(v1.state_dict())
    assert not torch.allclose(_feats(plain), want)  # the rules differ at this size
    assert torch.equal(_feats(hub.load(path)), want)
    assert torch.equal(_feats(load_run_backbone(path)[0]), want)
