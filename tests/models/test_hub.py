"""dinolab.hub.load: names, configs, downloads (offline), file layouts and bad input."""

import argparse
import urllib.error

import pytest
import torch
from safetensors.torch import save_file

from dinolab.config.schema import ModelConfig
from dinolab.hub import load
from dinolab.models import hub
from dinolab.models.vision_transformer import VisionTransformer

TINY = ModelConfig(
    arch="vit_tiny",
    patch_size=8,
    img_size=32,
    embed_dim=64,
    depth=2,
    num_heads=1,
    drop_path_rate=0.0,
)  # heads of a raw file: dim // 64


def tiny(offset=0.1, antialias=False, **kw):
    cfg = ModelConfig(**{**TINY.__dict__, **kw})
    return hub.build_model(cfg, offset, antialias).eval()


def test_registry_configs():
    names = hub.list_models()
    for v2 in ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14"):
        assert v2 in names and v2 + "_reg" in names
        assert hub.MODELS[v2].model.img_size == 518 and hub.MODELS[v2].model.layerscale_init
        assert hub.MODELS[v2 + "_reg"].model.num_register_tokens == 4
        assert hub.MODELS[v2 + "_reg"].interpolate_antialias
        assert hub.MODELS[v2].interpolate_offset == 0.1
    assert hub.MODELS["dinov2_vitg14"].model.ffn == "swiglu"
    assert hub.MODELS["dinov2_vits14_reg"].url.endswith(
        "dinov2_vits14/dinov2_vits14_reg4_pretrain.pth"
    )
    for v1 in ("dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8", "dino_resnet50"):
        assert hub.MODELS[v1].model.img_size == 224 and hub.MODELS[v1].url.startswith(hub.DINO_URL)
    m = load("dinov2_vits14_reg", pretrained=False)
    assert isinstance(m, VisionTransformer) and m.interpolate_antialias
    assert m.pos_embed.shape == (1, 37 * 37 + 1, 384) and m.register_tokens.shape[1] == 4


def test_pos_interpolation_rules_follow_the_originals():
    """Each rule against the formula of facebookresearch/dinov2 interpolate_pos_encoding."""
    from tests.models.test_convert import original_interpolate

    for offset, antialias in ((0.1, False), (0.0, True)):
        m = tiny(offset, antialias)
        x = torch.zeros(1, 12, 64)
        got = m.interpolate_pos_encoding(x, 32, 24)
        want = original_interpolate(m.pos_embed, 4, 3, offset, antialias)
        assert torch.equal(got, want)
        assert m.interpolate_pos_encoding(x, 32, 32) is m.pos_embed  # native: untouched
    base = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=1)
    assert not torch.allclose(
        base.interpolate_pos_encoding(None, 32, 24), tiny().interpolate_pos_encoding(None, 32, 24)
    )


def test_offline_download_fails_with_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_net(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_net)
    with pytest.raises(FileNotFoundError) as err:
        load("dino_vits16")
    msg = str(err.value)
    assert hub.MODELS["dino_vits16"].url in msg and str(tmp_path) in msg and "weights=" in msg
    # the same file put where the message says loads without any download
    src = tiny()
    dst = hub.cached_path("https://example.org/x/dino_tiny.pth")
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(src.state_dict(), dst)
    got = load(str(dst))
    assert torch.equal(got.pos_embed, src.pos_embed)
    assert hub.fetch("https://example.org/x/dino_tiny.pth") == dst


def test_dino_v1_layout_and_full_checkpoint(tmp_path):
    src = tiny()
    sd = {k: v for k, v in src.state_dict().items() if k != "mask_token"}  # v1 has none
    torch.save(sd, tmp_path / "v1.pth")
    m = load(tmp_path / "v1.pth")
    assert isinstance(m, VisionTransformer) and m.interpolate_offset == 0.1
    assert torch.count_nonzero(m.mask_token) == 0
    # full checkpoint: student behind module., the head with parametrized weight-norm names
    from dinolab.models.heads import DINOHead

    head = DINOHead(64, 64, hidden_dim=48, bottleneck_dim=16)
    hsd = {k.replace("last_layer.weight_g", "last_layer.parametrizations.weight.original0")
            .replace("last_layer.weight_v", "last_layer.parametrizations.weight.original1"): v
           for k, v in head.state_dict().items()}  # fmt: skip
    student = {f"module.backbone.{k}": v * 2 for k, v in sd.items()}
    student.update({f"module.head.{k}": v for k, v in hsd.items()})
    teacher = {f"backbone.{k}": v for k, v in sd.items()}
    teacher.update({f"head.{k}": v for k, v in hsd.items()})
    ckpt = {"student": student, "teacher": teacher, "epoch": 3,
            "args": argparse.Namespace(arch="vit_small", lr=0.1)}  # fmt: skip
    torch.save(ckpt, tmp_path / "full.pth")
    t = load(tmp_path / "full.pth")
    assert torch.equal(t.pos_embed, src.pos_embed)
    s = load(tmp_path / "full.pth", which="student")
    assert torch.equal(s.pos_embed, 2 * src.pos_embed)
    wh = load(tmp_path / "full.pth", with_head=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(wh(x), head.eval()(src(x)), atol=1e-5)


def test_dinov2_chunked_training_keys_and_safetensors(tmp_path):
    src = tiny(0.0, True, num_register_tokens=4, layerscale_init=1e-5)
    chunked = {}
    for k, v in src.state_dict().items():
        if k.startswith("blocks."):
            i = int(k.split(".")[1])
            k = f"blocks.{i // 1}.{k.split('.', 1)[1]}"  # chunk i holds block i
        chunked[f"teacher.backbone.{k}"] = v
    torch.save({"model": chunked, "iteration": 10}, tmp_path / "v2.pth")
    m = load(tmp_path / "v2.pth")
    assert m.num_register_tokens == 4 and m.interpolate_antialias
    assert torch.equal(m.blocks[1].ls1.gamma, src.blocks[1].ls1.gamma)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "v2.safetensors")
    assert torch.equal(load(tmp_path / "v2.safetensors").register_tokens, src.register_tokens)


def test_hub_name_with_local_weights_and_run_dir(tmp_path):
    from dinolab.config.schema import Config
    from dinolab.models.weights import save_backbone

    # a hub name + weights=PATH uses the hub config: a ViT-tiny file does not fit ViT-S/16
    torch.save(tiny().state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(ValueError, match=r"shape mismatches.*another architecture"):
        load("dino_vits16", weights=tmp_path / "tiny.pth")
    run = tmp_path / "run"
    run.mkdir()
    plain = hub.build_model(TINY)
    save_backbone(plain, Config(model=TINY), run / "teacher_backbone.safetensors")
    (run / "config.yaml").write_text(
        "model:\n"
        + "".join(
            f"  {k}: {v if v is not None else 'null'}\n" for k, v in TINY.__dict__.items()
        )  # fmt: skip
    )
    got = load(run)
    assert torch.equal(got.pos_embed, plain.pos_embed)


def test_bad_inputs_are_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'dino_vitz16'.*dinov2_vits14_reg"):
        load("dino_vitz16")
    with pytest.raises(FileNotFoundError, match="No weights file"):
        load(tmp_path / "missing.pth")
    (tmp_path / "notes.pth").write_text("these are not weights")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load(tmp_path / "notes.pth")
    torch.save(tiny().state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load(tmp_path / "cut.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load(tmp_path / "cut.safetensors")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "layer4.0.conv1.weight": torch.zeros(1)},
               tmp_path / "resnet.pth")  # fmt: skip
    with pytest.raises(ValueError, match="holds a ResNet, which does not fit the dino_vits16"):
        load("dino_vits16", weights=tmp_path / "resnet.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="neither a ViT"):
        load(tmp_path / "other.pth")
    torch.save(tiny().state_dict(), tmp_path / "nohead.pth")
    with pytest.raises(ValueError, match="no DINO head"):
        load(tmp_path / "nohead.pth", with_head=True)
