import pytest
import torch
import torch.nn.functional as F

from udarts.losses import DiceCELoss, build_loss, dice_loss, dice_loss_from_probs, soft_dice_score


def one_hot_probs(mask, num_classes):
    return F.one_hot(mask, num_classes).permute(0, 3, 1, 2).float()


def test_dice_is_zero_for_a_perfect_prediction_and_one_for_a_disjoint_one():
    mask = torch.randint(0, 3, (2, 8, 8))
    assert dice_loss_from_probs(one_hot_probs(mask, 3), mask).item() == pytest.approx(0.0, abs=1e-6)
    disjoint = one_hot_probs((mask + 1) % 3, 3)
    assert dice_loss_from_probs(disjoint, mask).item() == pytest.approx(1.0, abs=1e-6)
    # from logits: a confident correct prediction is near 0, a confident wrong one near 1
    assert dice_loss(20 * one_hot_probs(mask, 3), mask).item() < 1e-3
    assert dice_loss(20 * disjoint, mask).item() > 0.999


def test_dice_matches_the_paper_formula_for_two_classes():
    probs = torch.rand(1, 2, 4, 4)
    probs = probs / probs.sum(1, keepdim=True)
    mask = torch.randint(0, 2, (1, 4, 4))
    q = one_hot_probs(mask, 2)
    expected = 1 - torch.stack(
        [2 * (probs[:, c] * q[:, c]).sum() / ((probs[:, c] ** 2).sum() + (q[:, c] ** 2).sum()) for c in range(2)]
    ).mean()
    assert dice_loss_from_probs(probs, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    assert soft_dice_score(probs, q, dims=(0, 2, 3)).shape == (2,)


def test_ignored_pixels_do_not_count():
    mask = torch.randint(0, 3, (1, 6, 6))
    probs = one_hot_probs(mask, 3)
    noisy = mask.clone()
    noisy[:, :2] = 255  # pixels marked ignore: whatever the prediction there, the loss stays 0
    probs_wrong_there = probs.clone()
    probs_wrong_there[:, :, :2] = one_hot_probs((mask + 1) % 3, 3)[:, :, :2]
    assert dice_loss_from_probs(probs_wrong_there, noisy, ignore_index=255).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss_from_probs(probs_wrong_there, mask).item() > 0.1
    all_ignored = torch.full_like(mask, 255)
    assert dice_loss(torch.randn(1, 3, 6, 6), all_ignored, ignore_index=255).item() == 0.0


def test_losses_have_gradients_and_names():
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    mask = torch.randint(0, 4, (2, 8, 8))
    for name in ("dice", "ce", "dice_ce"):
        loss = build_loss(name, ignore_index=None)(logits, mask)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    combined = DiceCELoss(None)(logits, mask)
    assert combined.item() == pytest.approx(dice_loss(logits, mask).item() + F.cross_entropy(logits, mask).item(), rel=1e-5)
    with pytest.raises(ValueError, match="focal"):
        build_loss("focal")


def test_losses_keep_float64_and_upcast_half_precision():
    mask = torch.randint(0, 3, (2, 5, 5), generator=torch.Generator().manual_seed(0))
    logits = torch.randn(2, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for name in ("dice", "ce", "dice_ce"):
        assert build_loss(name)(logits, mask).dtype == torch.float64
        assert build_loss(name)(logits.float(), mask).dtype == torch.float32
        for half in (torch.float16, torch.bfloat16):
            assert build_loss(name)(logits.to(half), mask).dtype == torch.float32


def test_dice_and_dice_ce_gradients_in_float64_match_finite_differences():
    generator = torch.Generator().manual_seed(2)
    mask = torch.randint(0, 3, (2, 4, 4), generator=generator)
    mask[0, 0, 0] = 255  # an ignored pixel too
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    for loss in (lambda x: dice_loss(x, mask, ignore_index=255), lambda x: DiceCELoss(255)(x, mask)):
        # gradcheck compares the analytic gradient with central differences (eps 1e-6, atol 1e-5):
        # with float32 arithmetic inside, the differences would be noise and the check would fail
        assert torch.autograd.gradcheck(loss, (logits,))
