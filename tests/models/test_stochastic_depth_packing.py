"""DINOv2 efficiencies: subset stochastic depth and packed sequences keep the semantics."""

import pytest
import torch

from dinolab.models import VisionTransformer
from dinolab.models.layers import Block, DropPath


def _block(impl, rate=0.4, **kw):
    torch.manual_seed(0)
    blk = Block(16, 2, layerscale_init=0.5, drop_path=rate, drop_path_impl=impl, **kw)
    return blk


@pytest.mark.parametrize("impl", ["subset", "mask"])
def test_both_drop_path_impls_have_the_expectation_of_the_full_branch(impl):
    # E[x + drop(f(x))] = x + f(x) for each sample: Monte Carlo over 4000 draws, cheap branch.
    blk = _block(impl).train()
    x = torch.randn(8, 2, 4)

    def branch(xs):
        return [3 * torch.tanh(t) for t in xs]

    torch.manual_seed(2)
    with torch.no_grad():
        draws = torch.stack([blk._residual([x], branch, blk.drop_path1)[0] for _ in range(4000)])
    f = 3 * torch.tanh(x)
    rel = (draws.mean(0) - (x + f)).abs().mean() / f.abs().mean()
    assert rel < 0.05
    # per draw, a sample's branch is either absent or scaled (B / kept = 2 or 1 / keep = 1/0.6)
    added = (draws - x) / f
    scale = 2.0 if impl == "subset" else 1 / 0.6
    assert torch.all((added.abs() < 1e-4) | ((added - scale).abs() < 1e-4))
    if impl == "subset":  # exactly round(B * keep) = 4 of the 8 samples get the branch
        kept = (added.flatten(2).abs() > 1e-4).all(-1).sum(1)
        assert torch.all(kept == 4)


def test_subset_drop_path_is_identity_in_eval_and_auto_picks_by_rate():
    x = torch.randn(4, 5, 16)
    a, b = _block("subset").eval(), _block("mask").eval()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert DropPath(0.4, "auto").train().uses_subset()
    assert not DropPath(0.1, "auto").train().uses_subset()
    assert not DropPath(0.4, "subset").eval().uses_subset()
    with pytest.raises(ValueError, match="drop path impl"):
        DropPath(0.1, "fast")


def test_subset_drop_path_trains_every_parameter():
    blk = _block("subset").train()
    blk(torch.randn(6, 5, 16)).sum().backward()
    assert all(p.grad is not None for p in blk.parameters())


@pytest.mark.parametrize("attn_impl", ["math", "sdpa"])
def test_packed_forward_matches_separate_calls(attn_impl):
    torch.manual_seed(3)
    vit = VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, layerscale_init=0.1,
        num_register_tokens=1, attn_impl=attn_impl,
    ).eval()  # fmt: skip
    xs = [torch.randn(4, 3, 32, 32), torch.randn(8, 3, 16, 16)]
    masks = [torch.rand(4, 16) < 0.3, None]
    sep = vit.forward_features_list(xs, masks)
    pack = vit.forward_features_list(xs, masks, packed=True)
    for a, b in zip(sep, pack, strict=True):
        for key in ("x_norm_clstoken", "x_norm_patchtokens", "x_prenorm"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5)


def test_packed_gradients_match_separate_calls():
    torch.manual_seed(4)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    xs = [torch.randn(2, 3, 32, 32), torch.randn(4, 3, 16, 16)]
    grads = []
    for packed in (False, True):
        vit.zero_grad()
        outs = vit.forward_features_list(xs, packed=packed)
        sum(o["x_norm_clstoken"].pow(2).sum() for o in outs).backward()
        grads.append([p.grad.clone() for p in vit.parameters() if p.grad is not None])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_packed_blocks_run_through_module_call_so_wrappers_see_them():
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2).eval()
    seen = []
    vit.blocks[1].register_forward_pre_hook(lambda m, args: seen.append(type(args[0])))
    vit.forward_features_list([torch.randn(1, 3, 32, 32), torch.randn(2, 3, 16, 16)], packed=True)
    assert seen == [list]


def test_config_selects_uniform_rate_and_subset_impl():
    from dinolab.config.schema import ModelConfig
    from dinolab.models import build_backbone

    cfg = ModelConfig(
        arch="vit_tiny", patch_size=8, img_size=32, depth=3, drop_path_rate=0.3,
        drop_path_uniform=True, drop_path_impl="subset",
    )  # fmt: skip
    model = build_backbone(cfg)
    assert [b.drop_path1.drop_prob for b in model.blocks] == [0.3, 0.3, 0.3]
    assert all(b.drop_path2.impl == "subset" for b in model.blocks)
