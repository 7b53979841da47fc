"""iBOT patch loss: hand-computed cases, masked positions only, centring variants."""

import math

import pytest
import torch

from dinolab.losses import IBOTPatchLoss


def test_hand_computed_two_images():
    # Image 0 has 2 masked patches, image 1 has 1, image 2 none: 3 images in the mean.
    masks = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    s = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0) * 0.1], [0.0, 0.0]])  # student logits
    t = torch.tensor([[0.0, 100.0], [0.0, 100.0], [100.0, 0.0]])  # one-hot teacher targets
    loss_fn = IBOTPatchLoss(2, student_temp=0.1, centering="ema")
    out = loss_fn(s, t, masks, teacher_temp=1.0)
    # -log P_s(target): patch 1: log 2; patch 2: log(4/3); patch 3: log 2
    img0 = (math.log(2) + math.log(4 / 3)) / 2
    img1 = math.log(2)
    assert float(out["loss"]) == pytest.approx((img0 + img1) / 3, rel=1e-5)
    assert float(out["masked_fraction"]) == pytest.approx(3 / 9)


def test_only_masked_positions_reach_the_loss():
    torch.manual_seed(0)
    tokens = torch.randn(2, 6, 4, requires_grad=True)  # student patch logits of 2 images
    masks = torch.zeros(2, 6, dtype=torch.bool)
    masks[0, [1, 4]] = True
    masks[1, 2] = True
    teacher = torch.randn(2, 6, 4)
    loss_fn = IBOTPatchLoss(4, centering="sinkhorn")
    loss = loss_fn(tokens[masks], teacher[masks], masks, teacher_temp=0.1)["loss"]
    loss.backward()
    touched = tokens.grad.abs().sum(-1) > 0
    assert torch.equal(touched, masks)
    # changing teacher outputs at unmasked positions changes nothing
    teacher2 = teacher.clone()
    teacher2[~masks] = 99.0
    again = loss_fn(tokens[masks], teacher2[masks], masks, teacher_temp=0.1)["loss"]
    assert torch.equal(loss.detach(), again.detach())


def test_each_image_weighs_the_same_whatever_its_mask_size():
    # Same per-patch CE everywhere: the loss is that CE times (masked images / all images).
    masks = torch.zeros(4, 10, dtype=torch.bool)
    masks[0, :1] = True
    masks[1, :7] = True
    m = int(masks.sum())
    s, t = torch.zeros(m, 3), torch.zeros(m, 3)
    out = IBOTPatchLoss(3, centering="ema")(s, t, masks, teacher_temp=1.0)
    assert float(out["loss"]) == pytest.approx(math.log(3) * 2 / 4)


def test_ema_centre_updates_from_masked_patches_and_empty_masks_are_safe():
    loss_fn = IBOTPatchLoss(2, center_momentum=0.5, centering="ema")
    masks = torch.tensor([[True, False], [False, True]])
    t = torch.tensor([[2.0, 0.0], [4.0, 2.0]])
    loss_fn(torch.zeros(2, 2), t, masks, teacher_temp=0.1)
    assert loss_fn.centering.center[0].tolist() == pytest.approx([1.5, 0.5])
    none = torch.zeros(2, 2, dtype=torch.bool)
    s = torch.zeros(0, 2, requires_grad=True)
    out = loss_fn(s, torch.zeros(0, 2), none, teacher_temp=0.1)
    out["loss"].backward()
    assert float(out["loss"].detach()) == 0.0 and loss_fn.centering.center[0].tolist() == [1.5, 0.5]
    sk = IBOTPatchLoss(2, centering="sinkhorn")(s, torch.zeros(0, 2), none, teacher_temp=0.1)
    assert float(sk["loss"].detach()) == 0.0


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="masked patches"):
        IBOTPatchLoss(2)(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(1, 2).bool(), 0.1)
