"""dinolab.models.convert_hf: dinolab's ViT keys to transformers' DINOv2 layout and back."""

import torch

from dinolab.config.schema import ModelConfig
from dinolab.models.build import build_backbone
from dinolab.models.convert_hf import from_hf, to_hf

# transformers >= 5 renames these in memory (the Hub files keep the older names)
V5_NAMES = {
    ".attention.attention.query.": ".attention.q_proj.",
    ".attention.attention.key.": ".attention.k_proj.",
    ".attention.attention.value.": ".attention.v_proj.",
    ".attention.output.dense.": ".attention.o_proj.",
}


def _state(**kw) -> dict:
    cfg = ModelConfig(arch="vit_tiny", patch_size=8, img_size=32, embed_dim=48, depth=2,
                      num_heads=2, **kw)  # fmt: skip
    return build_backbone(cfg).state_dict()


def _v5(hf: dict) -> dict:
    out = {}
    for k, v in hf.items():
        for old, new in V5_NAMES.items():
            k = k.replace(old, new)
        out[k] = v
    return out


def test_a_register_layerscale_model_round_trips_in_both_naming_generations():
    sd = _state(num_register_tokens=4, layerscale_init=1e-5)
    hf = to_hf(sd)
    assert {"embeddings.register_tokens", "encoder.layer.1.attention.attention.query.weight",
            "encoder.layer.0.layer_scale2.lambda1"} <= hf.keys()  # fmt: skip
    for stored in (hf, _v5(hf), {f"dinov2.{k}": v for k, v in hf.items()}):
        back = from_hf(stored)
        assert back.keys() == sd.keys()
        assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_a_model_without_layerscale_gets_gammas_of_one():
    hf = to_hf(_state())
    assert torch.equal(hf["encoder.layer.1.layer_scale1.lambda1"], torch.ones(48))
