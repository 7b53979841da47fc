"""EMA centring and Sinkhorn-Knopp, on one process and on two (gloo)."""

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dinolab.losses import EMACenter, sinkhorn_knopp


def test_center_starts_at_zero_and_updates_by_ema():
    c = EMACenter(2, momentum=0.9)
    assert torch.equal(c.center, torch.zeros(1, 2))
    c.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # batch mean [2, 3]
    assert c.center[0].tolist() == pytest.approx([0.2, 0.3])
    c.update(torch.tensor([[0.0, 0.0], [2.0, -2.0]]))  # batch mean [1, -1]
    # 0.9 * [0.2, 0.3] + 0.1 * [1, -1] = [0.28, 0.17]
    assert c.center[0].tolist() == pytest.approx([0.28, 0.17])
    assert [k for k, _ in c.named_buffers()] == ["center"]


def test_probs_subtracts_centre_then_sharpens():
    c = EMACenter(2)
    c.center.copy_(torch.tensor([[1.0, 0.0]]))
    p = c.probs(torch.tensor([[1.0, 0.5]]), temp=0.5)
    # (t - c) / temp = [0, 1] -> softmax = [1, e] / (1 + e)
    e = math.e
    assert p[0].tolist() == pytest.approx([1 / (1 + e), e / (1 + e)])
    assert p.dtype == torch.float32 and not p.requires_grad


def test_momentum_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="center_momentum must be in"):
        EMACenter(3, momentum=1.5)


def test_sinkhorn_rows_sum_to_one_and_prototypes_balance():
    torch.manual_seed(0)
    logits = torch.randn(12, 4)
    q = sinkhorn_knopp(logits, temp=0.1, n_iterations=100)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(12))
    # Converged: every prototype gets B / K = 3 of the mass.
    torch.testing.assert_close(q.sum(dim=0), torch.full((4,), 3.0), rtol=1e-3, atol=1e-3)


def _dinov2_reference(logits, temp, n_iterations=3):
    """Literal transcription of DINOv2's single-process sinkhorn_knopp_teacher."""
    q = torch.exp(logits.double() / temp).t()
    b, k = q.shape[1], q.shape[0]
    q /= q.sum()
    for _ in range(n_iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).t()


def test_sinkhorn_matches_dinov2_reference():
    torch.manual_seed(1)
    logits = torch.randn(6, 5)
    ref = _dinov2_reference(logits, 0.1).float()
    torch.testing.assert_close(sinkhorn_knopp(logits, temp=0.1), ref, rtol=1e-5, atol=1e-6)


def test_sinkhorn_ignores_a_constant_shift_and_does_not_overflow():
    logits = torch.tensor([[0.2, 0.1, -0.3], [0.0, 0.5, 0.1]])
    a = sinkhorn_knopp(logits, temp=0.04)
    b = sinkhorn_knopp(logits + 1000.0, temp=0.04)
    assert torch.isfinite(b).all()
    torch.testing.assert_close(a, b)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        full = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
        mine = full[:1] if rank == 0 else full[1:]  # unequal batches: 1 row and 3 rows
        c = EMACenter(2, momentum=0.9)
        c.update(mine)
        scores = torch.randn(4, 3, generator=torch.Generator().manual_seed(7))
        q = sinkhorn_knopp(scores[:1] if rank == 0 else scores[1:], temp=0.1)
        torch.save({"center": c.center, "q": q}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_use_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    # Global mean of rows [1,2], [3,4], [5,6], [7,8] is [4, 5] (not the mean of rank means).
    for r in (r0, r1):
        assert r["center"][0].tolist() == pytest.approx([0.4, 0.5])
    # Sinkhorn over ranks equals Sinkhorn over the concatenated batch on one process.
    full = torch.randn(4, 3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(torch.cat([r0["q"], r1["q"]]), sinkhorn_knopp(full, temp=0.1))


def test_three_iterations_give_unit_rows_and_near_uniform_prototypes():
    # DINOv2's setting (3 iterations): rows are exact distributions after the last step and
    # the prototype marginals are already much closer to B / K than a plain softmax's.
    torch.manual_seed(2)
    logits = torch.randn(64, 8) + torch.linspace(0, 2, 8)  # prototypes of unequal popularity
    q = sinkhorn_knopp(logits, temp=0.5, n_iterations=3)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(64))
    soft = torch.softmax(logits / 0.5, dim=1).sum(dim=0)
    assert (q.sum(dim=0) - 8.0).abs().max() < 0.1 * (soft - 8.0).abs().max()


def test_no_rows_leave_the_centre_alone_and_sinkhorn_returns_empty():
    c = EMACenter(3, momentum=0.5)
    c.center.fill_(1.0)
    c.update(torch.zeros(0, 3))
    assert torch.equal(c.center, torch.ones(1, 3))
    assert sinkhorn_knopp(torch.zeros(0, 3), temp=0.1).shape == (0, 3)


def test_build_center_picks_the_targets_of_both_losses():
    from dinolab.losses.centering import build_center, teacher_targets

    t = torch.randn(6, 4)
    ema = build_center("ema", 4, momentum=0.5)
    assert isinstance(ema, EMACenter) and build_center("sinkhorn", 4) is None
    assert torch.equal(teacher_targets(ema, t, 0.1), ema.probs(t, 0.1))
    assert torch.equal(teacher_targets(None, t, 0.1, 2), sinkhorn_knopp(t, 0.1, 2))
    with pytest.raises(ValueError, match="Unknown centering 'foo'"):
        build_center("foo", 4)


def test_batch_softmax_is_a_softmax_over_the_batch_then_rows_normalised():
    from dinolab.losses import DINOLoss

    t = torch.randn(6, 5, dtype=torch.float64).float()
    loss = DINOLoss(5, centering="batch_softmax", sinkhorn_iterations=7)
    assert loss.centering is None and loss.sinkhorn_iterations == 1  # stateless, one iteration
    by_batch = torch.softmax(t.double() / 0.1, dim=0)  # each prototype: a distribution over B
    expected = by_batch / by_batch.sum(dim=1, keepdim=True)
    got = loss.teacher_probs(t, 0.1)
    assert torch.allclose(got.double(), expected, atol=1e-6)
    assert torch.allclose(got.sum(dim=1), torch.ones(6), atol=1e-6)


@pytest.mark.parametrize("centering", ["sinkhorn", "ema"])
def test_reuse_targets_computes_each_teacher_output_once(centering):
    from dinolab.losses.centering import CenteredLoss

    loss = CenteredLoss(8, centering=centering)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    outside = loss.teacher_probs(a, 0.04)
    with loss.reuse_targets():
        first = loss.teacher_probs(a, 0.04)
        assert loss.teacher_probs(a, 0.04) is first  # the same logits: no second Sinkhorn
        assert torch.equal(first, outside)  # and the same values as without reuse
        assert loss.teacher_probs(a, 0.07) is not first  # another temperature, other targets
        assert torch.equal(loss.teacher_probs(b, 0.04), loss.teacher_probs(b.clone(), 0.04))
    assert loss.teacher_probs(a, 0.04) is not first  # nothing is kept after the block
