"""dinolab.models.convert_timm: dinolab's ViT keys to timm's layout and back."""

import torch

from dinolab.config.schema import ModelConfig
from dinolab.models.build import build_backbone
from dinolab.models.convert_timm import from_timm, timm_no_embed_class, to_timm


def _state(**kw) -> dict:
    cfg = ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, embed_dim=48, depth=2,
                      num_heads=2, **kw)  # fmt: skip
    return build_backbone(cfg).state_dict()


def test_a_register_swiglu_model_round_trips_through_timms_layout():
    sd = _state(num_register_tokens=4, ffn="swiglu")
    timm_sd = to_timm(sd)
    assert {"reg_token", "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight"} <= timm_sd.keys()
    assert "mask_token" not in timm_sd and "register_tokens" not in timm_sd
    assert timm_sd["pos_embed"].shape[1] == 16 and timm_no_embed_class(timm_sd)  # 4 x 4, no CLS
    back = from_timm(timm_sd)
    assert back.keys() == sd.keys() - {"mask_token"}
    for k in back.keys() - {"cls_token", "pos_embed"}:
        assert torch.equal(back[k], sd[k]), k
    assert torch.equal(back["pos_embed"][:, 1:], sd["pos_embed"][:, 1:])
    # timm folds the CLS position into cls_token: the CLS token the blocks see is the same
    cls = sd["cls_token"] + sd["pos_embed"][:, :1]
    assert torch.equal(back["cls_token"] + back["pos_embed"][:, :1], cls)


def test_a_plain_model_keeps_its_keys():
    sd = _state()
    timm_sd = to_timm(sd)
    assert timm_sd.keys() == sd.keys() - {"mask_token"} and not timm_no_embed_class(timm_sd)
    back = from_timm(timm_sd)
    assert all(torch.equal(back[k], sd[k]) for k in back)
