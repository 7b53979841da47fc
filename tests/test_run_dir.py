"""dinolab.run_dir: the teacher export and its loaders give the same features at any size."""

import json

import torch
from safetensors.torch import load_file, save_file

from dinolab import hub
from dinolab.config.loader import save_config
from dinolab.config.schema import Config, ModelConfig
from dinolab.models.build import build_backbone
from dinolab.models.weights import FORMAT, load_backbone, save_backbone
from dinolab.run_dir import CONFIG, TEACHER_FILE, export_teacher, load_run_backbone

TINY = ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, embed_dim=64, depth=2,
                   num_heads=2, drop_path_rate=0.0)  # fmt: skip
X = torch.randn(2, 3, 48, 24)  # 6 x 3 patches: not the native 4 x 4, not square


def _feats(model):
    with torch.no_grad():
        return model.eval().forward_features(X)["x_norm_patchtokens"]


def _run(tmp_path, model):
    run = tmp_path / "run"
    run.mkdir()
    cfg = Config(model=TINY)
    save_config(cfg, run / CONFIG)
    export_teacher(model, cfg, run)
    return run


def test_every_entry_point_gives_the_trained_features(tmp_path):
    teacher = build_backbone(TINY).eval()  # the rule training uses
    run = _run(tmp_path, teacher)
    want = _feats(teacher)
    for model in (
        load_run_backbone(run)[0],
        load_run_backbone(run / TEACHER_FILE)[0],
        hub.load(run),
        hub.load(run / TEACHER_FILE),
        load_backbone(run / TEACHER_FILE),
    ):
        assert torch.equal(_feats(model), want)


def test_old_exports_without_a_rule_load_with_the_training_rule(tmp_path):
    teacher = build_backbone(TINY).eval()
    path = tmp_path / "old.safetensors"
    old_meta = {"format": FORMAT, "model": json.dumps(TINY.__dict__)}  # before the rule was kept
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, path, old_meta)
    assert torch.equal(_feats(hub.load(path)), _feats(teacher))
    assert torch.equal(_feats(load_run_backbone(path)[0]), _feats(teacher))


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
