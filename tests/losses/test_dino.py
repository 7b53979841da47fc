"""DINO loss against hand-computed cross-entropies on tiny cases."""

import math

import pytest
import torch

from dinolab.losses import DINOLoss

LN2, LN3 = math.log(2.0), math.log(3.0)


def _logits(*probs_rows):
    """Logits whose softmax at temperature 1 is exactly the given rows."""
    return torch.tensor([[math.log(p) for p in row] for row in probs_rows], dtype=torch.float64)


def _softmax(xs, temp):
    """Plain-Python softmax, independent of the code under test."""
    m = max(x / temp for x in xs)
    e = [math.exp(x / temp - m) for x in xs]
    return [v / sum(e) for v in e]


def test_closed_form_two_globals_one_local():
    # B = 1, K = 3, temperatures 1, centre 0. P_t(view0) = [.5,.25,.25], P_t(view1) = [.25,.5,.25].
    teacher = _logits([0.5, 0.25, 0.25], [0.25, 0.5, 0.25])
    student = _logits([0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3])
    out = DINOLoss(3, student_temp=1.0)(student, teacher, teacher_temp=1.0)
    # Pairs (t0,s1) (t0,s2) (t1,s0) (t1,s2):
    # H([.5,.25,.25], [.25,.5,.25]) = -(.5 ln .25 + .25 ln .5 + .25 ln .25) = 1.75 ln 2 (twice),
    # H(anything, uniform) = ln 3 (twice).  Mean over 4 pairs:
    expected = (2 * 1.75 * LN2 + 2 * LN3) / 4
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    # h([.5,.25,.25]) = .5 ln 2 + 2 * .25 ln 4 = 1.5 ln 2 for both teacher rows.
    assert out["teacher_entropy"].item() == pytest.approx(1.5 * LN2, rel=1e-6)
    assert out["kl"].item() == pytest.approx(expected - 1.5 * LN2, rel=1e-5)
    assert out["teacher_probs_max"].item() == pytest.approx(0.5, rel=1e-6)


def test_realistic_temperatures_with_centre_used_before_update():
    # B = 2, K = 3, 2 globals + 1 local, tau_s = 0.1, tau_t = 0.04, a non-zero centre.
    t_rows = [[1.0, 0.5, -0.2], [0.1, 0.3, 0.0], [0.2, -0.4, 0.6], [0.0, 0.05, -0.05]]
    s_rows = [[0.3, 0.1, 0.2], [0.5, -0.5, 0.0], [0.2, 0.2, 0.1], [-0.1, 0.4, 0.3],
              [0.0, 0.1, 0.2], [0.6, 0.3, -0.2]]  # fmt: skip
    centre = [0.2, -0.1, 0.05]
    loss_fn = DINOLoss(3, student_temp=0.1, center_momentum=0.9)
    loss_fn.centering.center.copy_(torch.tensor([centre]))
    out = loss_fn(torch.tensor(s_rows), torch.tensor(t_rows), teacher_temp=0.04)

    batch, pairs, total = 2, 0, 0.0
    for i in range(2):  # teacher view
        for j in range(3):  # student view
            if i == j:
                continue
            pairs += 1
            for b in range(batch):
                p = _softmax(
                    [x - c for x, c in zip(t_rows[i * batch + b], centre, strict=True)], 0.04
                )
                q = _softmax(s_rows[j * batch + b], 0.1)
                total += -sum(pk * math.log(qk) for pk, qk in zip(p, q, strict=True)) / batch
    assert pairs == 4
    assert out["loss"].item() == pytest.approx(total / pairs, rel=1e-5)

    # After the step: c = 0.9 c + 0.1 * mean of the 4 teacher rows.
    mean = [sum(r[k] for r in t_rows) / 4 for k in range(3)]
    want = [0.9 * c + 0.1 * m for c, m in zip(centre, mean, strict=True)]
    assert loss_fn.center[0].tolist() == pytest.approx(want, abs=1e-7)


def test_no_update_leaves_centre_and_list_input_matches_tensor():
    torch.manual_seed(0)
    s, t = torch.randn(10, 7), torch.randn(4, 7)
    loss_fn = DINOLoss(7)
    a = loss_fn([s[:4], s[4:]], t, 0.05, update_center=False)
    b = loss_fn(s, t, 0.05, update_center=False)
    assert torch.equal(loss_fn.center, torch.zeros(1, 7))
    assert a["loss"].item() == pytest.approx(b["loss"].item(), rel=1e-6)


def test_entropy_kl_relations():
    torch.manual_seed(1)
    out = DINOLoss(16)(torch.randn(12, 16), torch.randn(4, 16), 0.04)
    assert out["loss"].item() == pytest.approx(
        (out["teacher_entropy"] + out["kl"]).item(), rel=1e-6
    )
    assert out["kl"].item() > 0
    assert 0 < out["teacher_entropy"].item() < math.log(16)
    assert all(not v.requires_grad for k, v in out.items() if k != "loss")


def test_identical_distributions_give_zero_kl():
    x = torch.tensor([[0.3, -0.2, 0.9, 0.0]])
    teacher = x.repeat(2 * 3, 1)  # n_global = 2, B = 3, every row the same
    student = x.repeat(4 * 3, 1)  # 4 views
    out = DINOLoss(4, student_temp=0.1)(student, teacher, teacher_temp=0.1)
    assert out["kl"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["loss"].item() == pytest.approx(out["teacher_entropy"].item(), rel=1e-6)


def test_gradient_reaches_student_only_and_matches_formula():
    torch.manual_seed(2)
    batch, k, tau_s, tau_t = 2, 5, 0.1, 0.04
    s = torch.randn(3 * batch, k, requires_grad=True)
    t = torch.randn(2 * batch, k, requires_grad=True)
    out = DINOLoss(k, student_temp=tau_s)(s, t, tau_t)
    out["loss"].backward()
    assert t.grad is None
    # d loss / d s_j = (n_teachers(j) * softmax(s_j / tau_s) - sum_{i != j} P_i) / (tau_s n_pairs B)
    p_t = torch.softmax(t.detach() / tau_t, -1).view(2, batch, k)
    q = torch.softmax(s.detach() / tau_s, -1).view(3, batch, k)
    n_pairs = 4
    want = torch.stack(
        [
            1 * q[0] - p_t[1],  # student view 0 meets teacher view 1
            1 * q[1] - p_t[0],  # student view 1 meets teacher view 0
            2 * q[2] - p_t[0] - p_t[1],  # the local view meets both
        ]
    ).view(3 * batch, k) / (tau_s * n_pairs * batch)
    torch.testing.assert_close(s.grad, want, rtol=1e-4, atol=1e-6)


def test_bf16_logits_are_computed_in_float32():
    torch.manual_seed(3)
    s, t = torch.randn(6, 8), torch.randn(4, 8)
    a = DINOLoss(8)(s.bfloat16(), t.bfloat16(), 0.04)
    b = DINOLoss(8)(s.bfloat16().float(), t.bfloat16().float(), 0.04)
    assert a["loss"].dtype == torch.float32
    assert a["loss"].item() == pytest.approx(b["loss"].item(), rel=1e-6)


def test_centre_is_in_state_dict():
    loss_fn = DINOLoss(4)
    loss_fn(torch.ones(6, 4), torch.arange(8.0).view(2, 4), 0.04)
    sd = loss_fn.state_dict()
    assert list(sd) == ["centering.center"]
    # mean of rows [0,1,2,3] and [4,5,6,7] is [2,3,4,5]; centre = 0.1 * mean
    assert sd["centering.center"][0].tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5])
    fresh = DINOLoss(4)
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.center, loss_fn.center)


def test_sinkhorn_variant_is_stateless_and_finite():
    torch.manual_seed(4)
    loss_fn = DINOLoss(6, centering="sinkhorn")
    out = loss_fn(torch.randn(8, 6), 50 * torch.randn(4, 6), 0.04)
    assert loss_fn.state_dict() == {} and loss_fn.center is None
    assert torch.isfinite(out["loss"]) and out["loss"].item() == pytest.approx(
        (out["teacher_entropy"] + out["kl"]).item(), rel=1e-6
    )


@pytest.mark.parametrize(
    "s_rows, t_rows, n_global, match",
    [
        (7, 4, 2, "Student logits have 7 rows"),
        (8, 5, 2, "not a multiple of n_global=2"),
        (1, 2, 2, "n_views >= n_global"),
        (2, 2, 1, "at least two views"),
    ],
)
def test_shape_errors_are_clear(s_rows, t_rows, n_global, match):
    with pytest.raises(ValueError, match=match):
        DINOLoss(3)(torch.zeros(s_rows, 3), torch.zeros(t_rows, 3), 0.04, n_global=n_global)


def test_unknown_centering_is_rejected():
    with pytest.raises(ValueError, match="Unknown centering 'foo'"):
        DINOLoss(3, centering="foo")
