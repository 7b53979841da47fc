"""timm / torchvision backbones through the real trainer, export and k-NN path; model.init;
frozen-backbone warm-up and the backbone lr factor."""

import pytest
import torch

from dinolab.run_dir import TEACHER_FILE, load_run_backbone
from dinolab.train.optim import cancel_backbone_gradients
from dinolab.train.pretrain import pretrain
from dinolab.train.trainer import Trainer
from tests.threads import one_thread  # noqa: F401 (autouse)

from .conftest import make_images, tiny_config

pytest.importorskip("timm")

ADAPTERS = {
    "torchvision:resnet18": {"model.cifar_stem": True, "data.global_size": 16,
                             "data.local_size": 8},
    "timm:resnet18": {"model.cifar_stem": True, "data.global_size": 16, "data.local_size": 8},
    "timm:test_vit": {"data.global_size": 32, "data.local_size": 16},
    "small_resnet": {"model.embed_dim": 64, "data.global_size": 16, "data.local_size": 8},
}  # fmt: skip
FIXED_TARGETS = {  # teacher frozen and uncentred: the student must learn to match it
    "model.drop_path_rate": 0.0,
    "teacher.momentum": 1.0,
    "loss.center_momentum": 1.0,
    "teacher.temp": 0.04,
    "head.freeze_last_layer_epochs": 0,
    "optim.base_lr": 0.5,
    "train.batch_size": 4,
}


def _adapter_config(images, run, arch, **overrides):
    return tiny_config(images, run, **{"model.arch": arch, **ADAPTERS[arch], **overrides})


@pytest.mark.parametrize("arch", list(ADAPTERS))
def test_adapter_backbones_learn(tmp_path, arch):
    images = make_images(tmp_path / "images", n=8)
    cfg = _adapter_config(images, tmp_path / "run", arch, **FIXED_TARGETS)
    trainer = Trainer(cfg)
    batch = next(iter(trainer.loader))
    losses = [float(trainer._step(batch)["loss"]) for _ in range(6)]
    assert losses[-1] < losses[0] - 0.05, losses
    assert all(p.grad is None for p in trainer.model.teacher.parameters())

    assert all(p.grad is None for p in trainer.model.teacher.parameters())


def test_adapter_run_exports_reloads_and_evaluates(tmp_path):
    for split, seed in (("train", 1), ("val", 2)):
        for c in ("a", "b"):
            make_images(tmp_path / split / c, n=4, seed=seed + ord(c))
    run = tmp_path / "run"
    cfg = _adapter_config(
        tmp_path / "train", run, "torchvision:resnet18",
        **{"train.epochs": 1, "train.batch_size": 4, "head.use_bn": True,
           "eval.train": str(tmp_path / "train"), "eval.val": str(tmp_path / "val"),
           "eval.k": "[1,3]"},
    )  # fmt: skip
    summary = pretrain(cfg)
    assert {str(k) for k in summary["knn"]["scores"]} == {"1", "3"}
    assert all(0.0 <= s["top1"] <= 100.0 for s in summary["knn"]["scores"].values())
    trained = Trainer(cfg, resume=True).model.teacher.backbone.eval()
    reloaded, saved_cfg = load_run_backbone(run)
    assert saved_cfg.model.arch == "torchvision:resnet18" and saved_cfg.model.cifar_stem
    assert type(reloaded) is type(trained)
    from dinolab.models import hub

    by_file = hub.load(run / TEACHER_FILE)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        want = trained.forward_features(x)
        for model in (reloaded, by_file):
            got = model.forward_features(x)
            for key in ("x_norm_clstoken", "x_norm_patchtokens"):
                assert torch.equal(got[key], want[key]), key


def _official_dino_vit(path):
    """A random tiny ViT saved like the published DINO v1 files (no mask_token)."""
    from dinolab.config.schema import ModelConfig
    from dinolab.models import build_backbone

    torch.manual_seed(123)
    cfg = ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, embed_dim=32, depth=2,
                      num_heads=2, drop_path_rate=0.0)  # fmt: skip
    state = {k: v for k, v in build_backbone(cfg).state_dict().items() if k != "mask_token"}
    torch.save(state, path)
    return state


def test_init_from_official_weights_file(image_dir, tmp_path):
    state = _official_dino_vit(tmp_path / "dino_tiny.pth")
    cfg = tiny_config(image_dir, tmp_path / "run", **{"model.init": tmp_path / "dino_tiny.pth"})
    trainer = Trainer(cfg)
    for net in (trainer.model.student, trainer.model.teacher):
        got = net.backbone.state_dict()
        for k, v in state.items():
            assert torch.equal(got[k], v), k


def test_init_that_does_not_fit_names_the_keys(image_dir, tmp_path):
    _official_dino_vit(tmp_path / "dino_tiny.pth")
    cfg = tiny_config(
        image_dir, tmp_path / "run",
        **{"model.init": tmp_path / "dino_tiny.pth", "model.depth": 3},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"model.init=.*unexpected keys|missing keys.*blocks\.2"):
        Trainer(cfg)
    cfg = tiny_config(image_dir, tmp_path / "run", **{"model.init": tmp_path / "nothing.pth"})
    with pytest.raises(FileNotFoundError, match="model.init="):
        Trainer(cfg)


def test_init_from_a_run_directory(image_dir, tmp_path):
    pretrain(tiny_config(image_dir, tmp_path / "first", **{"train.epochs": 1}))
    teacher, _ = load_run_backbone(tmp_path / "first")
    trainer = Trainer(tiny_config(image_dir, tmp_path / "second",
                                  **{"model.init": tmp_path / "first"}))  # fmt: skip
    want = teacher.state_dict()
    for k, v in trainer.model.student.backbone.state_dict().items():
        assert torch.equal(v, want[k]), k


def test_frozen_backbone_epochs_move_only_the_heads(image_dir, tmp_path):
    overrides = {"train.freeze_backbone_epochs": 1, "head.freeze_last_layer_epochs": 0}
    cfg = tiny_config(image_dir, tmp_path / "run", **overrides)
    trainer = Trainer(cfg)
    student = trainer.model.student
    backbone0 = {k: v.clone() for k, v in student.backbone.named_parameters()}
    head0 = {k: v.clone() for k, v in student.head.named_parameters()}
    batch = next(iter(trainer.loader))
    trainer._step(batch)  # epoch 0: frozen
    assert all(torch.equal(p, backbone0[k]) for k, p in student.backbone.named_parameters())
    assert any(not torch.equal(p, head0[k]) for k, p in student.head.named_parameters())
    teacher = dict(trainer.model.teacher.backbone.named_parameters())
    assert all(torch.equal(teacher[k], v) for k, v in backbone0.items())
    trainer.epoch = 1  # warm-up over: the backbone learns
    trainer._step(batch)
    assert any(not torch.equal(p, backbone0[k]) for k, p in student.backbone.named_parameters())


def test_backbone_lr_mult_scales_only_backbone_groups(image_dir, tmp_path):
    cfg = tiny_config(image_dir, tmp_path / "run", **{"optim.backbone_lr_mult": 0.1})
    trainer = Trainer(cfg)
    from dinolab.train.optim import apply_schedules

    apply_schedules(trainer.optimizer, 1.0, 0.0)
    lr = {id(p): g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    student = trainer.model.student
    assert {lr[id(p)] for p in student.backbone.parameters() if p.requires_grad} == {0.1}
    assert {lr[id(p)] for p in student.head.parameters() if p.requires_grad} == {1.0}


def test_cancel_backbone_gradients_needs_a_backbone():
    with pytest.raises(ValueError, match="freeze_backbone_epochs=0"):
        cancel_backbone_gradients(torch.nn.Linear(2, 2), epoch=0, freeze_epochs=1)
