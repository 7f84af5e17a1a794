"""nnU-Net's recipe as ``stableloss.monai`` computes it, against a float64 transcription of nnU-Net's formulas.

nnU-Net (Isensee et al. 2021, ``DC_and_CE_loss`` with ``SoftDiceLoss(batch_dice=True, do_bg=False,
smooth=1e-5)``): ``CE + (-dc)`` with ``dc = mean_c (2 TP_c + s) / max(2 TP_c + FP_c + FN_c + s, 1e-8)``
over the foreground classes, the counts summed over the whole batch, and deep-supervision weights
``1 / 2^i`` with the lowest resolution's set to 0, normalised to sum 1.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stableloss.monai import DeepSupervisionLoss, nnunet_deep_supervision_weights, nnunet_dice_ce


def nnunet_reference(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """nnU-Net's Dice + CE in float64: labels ``(B, 1, *S)``."""
    logits = logits.double()
    probs = logits.softmax(dim=1)
    one_hot = F.one_hot(labels[:, 0].long(), logits.shape[1]).movedim(-1, 1).double()
    axes = [0] + list(range(2, logits.dim()))
    tp = (probs * one_hot).sum(axes)
    fp = (probs * (1 - one_hot)).sum(axes)
    fn = ((1 - probs) * one_hot).sum(axes)
    dc = ((2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(1e-8))[1:]  # do_bg=False
    ce = F.cross_entropy(logits, labels[:, 0].long())
    return ce - dc.mean()


@pytest.mark.parametrize("shape", [(2, 3, 16, 12), (2, 4, 6, 5, 4)], ids=["2d", "3d"])
def test_nnunet_dice_ce_is_nnunets_loss_plus_one_with_the_same_gradient(shape):
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(shape, generator=gen)).requires_grad_(True)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    ours = nnunet_dice_ce()(logits, labels)
    (grad,) = torch.autograd.grad(ours, logits)
    reference_logits = logits.detach().double().requires_grad_(True)
    expected = nnunet_reference(reference_logits, labels)
    (expected_grad,) = torch.autograd.grad(expected, reference_logits)
    torch.testing.assert_close(ours.double() - 1.0, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-4, atol=1e-6 * expected_grad.abs().max().item())


def test_nnunet_dice_ce_settings_and_overrides():
    loss = nnunet_dice_ce(weight=[1.0, 2.0, 3.0])
    dice = loss.dice
    assert (dice.batch, dice.include_background, dice.softmax, dice.to_onehot_y) == (True, False, True, True)
    assert (dice.smooth_nr, dice.smooth_dr, loss.lambda_dice, loss.lambda_ce) == (1e-5, 1e-5, 1.0, 1.0)
    assert loss.ce_weight.tolist() == [1.0, 2.0, 3.0] and dice.class_weight.tolist() == [2.0, 3.0]


@pytest.mark.parametrize("levels, expected", [
    (1, [1.0]),
    (2, [1.0, 0.0]),
    (3, [2 / 3, 1 / 3, 0.0]),
    (5, [8 / 15, 4 / 15, 2 / 15, 1 / 15, 0.0]),
])
def test_nnunet_deep_supervision_weights(levels, expected):
    weights = nnunet_deep_supervision_weights(levels)
    assert weights == pytest.approx(expected, rel=1e-12)
    assert sum(weights) == pytest.approx(1.0)


@pytest.mark.parametrize("levels", [0, -1, 2.0, True])
def test_nnunet_deep_supervision_weights_refuses_a_bad_level_count(levels):
    with pytest.raises((TypeError, ValueError), match="levels"):
        nnunet_deep_supervision_weights(levels)


def test_deep_supervised_nnunet_loss_is_the_weighted_sum_over_scales():
    gen = torch.Generator().manual_seed(1)
    outputs = [3 * torch.randn(2, 3, 32 // 2**i, 24 // 2**i, generator=gen) for i in range(4)]
    labels = torch.randint(0, 3, (2, 1, 32, 24), generator=gen).float()
    weights = nnunet_deep_supervision_weights(len(outputs))
    total = DeepSupervisionLoss(nnunet_dice_ce(), weights=weights)(outputs, labels)
    expected = 0.0
    for weight, output in zip(weights, outputs, strict=True):
        small = F.interpolate(labels, size=output.shape[2:], mode="nearest-exact")
        expected = expected + weight * (nnunet_reference(output, small) + 1.0)
    torch.testing.assert_close(total.double(), expected, rtol=1e-5, atol=1e-6)


def test_fp16_nnunet_loss_finite_with_overflowed_logits():
    logits = torch.randn(2, 3, 32, 32).half() * 1000
    logits[:, 1, :4] = float("inf")
    logits[:, 2, 4:8] = -float("inf")
    logits.requires_grad_(True)
    labels = torch.randint(0, 3, (2, 1, 32, 32))
    value = nnunet_dice_ce()(logits, labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def saved_bytes(loss, logits, target):
    """Bytes of the distinct per-pixel storages (a float32 or more per pixel) autograd saves for the
    backward, the logits' own excluded; per-class sums and scalars are left out."""
    storages = {}
    pixels = target.numel()

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() != logits.untyped_storage().data_ptr() and storage.nbytes() >= 4 * pixels:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss(logits, target)
    return sum(storages.values())


def test_nnunet_dice_ce_saves_no_full_size_overlap_buffers(monkeypatch):
    # nnU-Net's memory-frugal form: what its backward keeps is the softmax output, the one-hot target
    # (built without autograd), the cross-entropy's log-softmax and the labels; no TP/FP/FN maps.
    logits = torch.randn(2, 3, 12, 10, 8, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 12, 10, 8)).float()
    size = logits.numel() * logits.element_size()
    budget = 3 * size + labels.numel() * 8  # probabilities, one-hot, log-softmax (float32); labels (int64)
    frugal = saved_bytes(nnunet_dice_ce(), logits, labels)
    assert frugal <= budget
    import stableloss.monai._hard as hard_module

    monkeypatch.setattr(hard_module, "_hard_path_applies", lambda *args: False)  # the general path (CUDA, compile)
    assert saved_bytes(nnunet_dice_ce(), logits, labels) > budget
