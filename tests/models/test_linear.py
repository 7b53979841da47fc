"""The oneDNN fp32 linear kernel: same values and gradients as nn.Linear, same state dict."""

import pytest
import torch

from dinolab.models.layers.linear import Linear, onednn_available

pytestmark = pytest.mark.skipif(not onednn_available(), reason="torch built without oneDNN")


@pytest.mark.parametrize("bias", [True, False])
def test_onednn_matches_torch_forward_and_backward(bias):
    torch.manual_seed(0)
    ref = Linear(24, 40, bias=bias, kernel="torch")
    fast = Linear(24, 40, bias=bias, kernel="onednn")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(3, 7, 24, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.randn(3, 7, 40)
    (ref(x) * g).sum().backward()
    (fast(x2) * g).sum().backward()
    torch.testing.assert_close(fast(x2), ref(x))
    torch.testing.assert_close(x2.grad, x.grad)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad)
    if bias:
        torch.testing.assert_close(fast.bias.grad, ref.bias.grad)


def test_frozen_weight_still_gives_input_gradient():
    layer = Linear(8, 4, kernel="onednn").requires_grad_(False)
    x = torch.randn(5, 8, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(5, 8))


def test_autocast_and_other_dtypes_use_torch():
    layer = Linear(8, 4, kernel="onednn")
    with torch.autocast("cpu", torch.bfloat16):
        assert layer(torch.randn(2, 8)).dtype == torch.bfloat16
    assert layer.double()(torch.randn(2, 8, dtype=torch.float64)).dtype == torch.float64


def test_state_dict_keys_are_nn_linear_keys():
    assert set(Linear(3, 2).state_dict()) == set(torch.nn.Linear(3, 2).state_dict())
    assert isinstance(Linear(3, 2), torch.nn.Linear)


def test_unknown_kernel_is_one_sentence():
    with pytest.raises(ValueError, match="linear kernel 'blas' is unknown"):
        Linear(3, 2, kernel="blas")


def test_flop_counter_counts_the_onednn_kernel():
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(10, 64, requires_grad=True)
    counts = []
    for kernel in ("torch", "onednn"):
        with FlopCounterMode(display=False) as counter:
            Linear(64, 32, kernel=kernel)(x).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[1] == pytest.approx(counts[0], rel=0.01)  # 3 GEMMs of 2 * 10 * 64 * 32
