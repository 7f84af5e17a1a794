"""The CPU hard-label paths of the overlap sums agree with the general path, values and gradients."""

from __future__ import annotations

import pytest
import torch

from stableloss import _overlap, dice_loss
from stableloss._overlap_hard import complement_if_hard, hard_sigmoid_sums, hard_softmax_sums

IGNORE = 255


def _multiclass(seed: int, ignore: bool, dtype=torch.float64, scale: float = 3.0):
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(3, 5, 6, 7, generator=gen)).to(dtype).requires_grad_()
    labels = torch.randint(0, 5, (3, 6, 7), generator=gen)
    if ignore:
        labels[0, :2] = IGNORE
        labels[2, :, 0] = IGNORE
    target, valid = _overlap.flatten_target(labels, mode="multiclass", num_classes=5, ignore_index=IGNORE if ignore else None,
                                            dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    return logits, target, valid


def _general(flat, target, valid, activation, per_image):
    return _overlap._OverlapSums.apply(flat, target, valid, activation, (2,) if per_image else (0, 2))[0]


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_hard_softmax_path_matches_the_general_path_values_and_gradients(per_image, ignore):
    logits, target, valid = _multiclass(0, ignore)
    flat = logits.reshape(3, 5, -1)
    general = _general(flat, target, valid, "softmax", per_image)
    hard = hard_softmax_sums(flat, target, valid, per_image)
    torch.testing.assert_close(hard, general, rtol=1e-12, atol=1e-12)
    weights = torch.randn(general.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grad_general, = torch.autograd.grad((general * weights).sum(), logits)
    grad_hard, = torch.autograd.grad((hard * weights).sum(), logits)
    torch.testing.assert_close(grad_hard, grad_general, rtol=1e-12, atol=1e-14)
    if ignore:  # ignored pixels get no gradient
        assert grad_hard[0, :, :2].abs().max() == 0


def test_hard_softmax_path_keeps_relative_precision_of_tiny_counts():
    """Near a perfect prediction FP and FN are sums of tiny probabilities: float32 keeps them to 1e-5."""
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 4, (2, 16, 16), generator=gen)
    logits = 30.0 * torch.nn.functional.one_hot(labels, 4).movedim(-1, 1).float() + torch.randn(2, 4, 16, 16, generator=gen)
    target, _ = _overlap.flatten_target(labels, mode="multiclass", num_classes=4, ignore_index=None)
    sums = hard_softmax_sums(logits.reshape(2, 4, -1), target, None, False)
    exact = _general(logits.double().reshape(2, 4, -1), target.double(), None, "softmax", False)
    assert exact[1:].abs().min() < 1e-9  # the counts are tiny: 1 - p in float32 would round them to multiples of 6e-8
    torch.testing.assert_close(sums.double(), exact, rtol=1e-5, atol=0.0)


def test_hard_softmax_path_propagates_nan_and_saturates_infinite_logits():
    logits, target, _ = _multiclass(3, False, dtype=torch.float32)
    flat = logits.detach().reshape(3, 5, -1).clone()
    flat[0, 0, 0] = float("inf")
    flat[0, 1, 0] = float("-inf")
    sums = hard_softmax_sums(flat.requires_grad_(), target, None, False)
    assert torch.isfinite(sums).all()
    grad, = torch.autograd.grad(sums.sum(), flat)
    assert torch.isfinite(grad).all()
    flat = flat.detach().clone()
    flat[1, 2, 3] = float("nan")
    assert torch.isnan(hard_softmax_sums(flat, target, None, False)).any()


@pytest.mark.parametrize("per_image", [False, True])
def test_hard_sigmoid_path_matches_the_general_path_values_and_gradients(per_image):
    gen = torch.Generator().manual_seed(4)
    logits = (3 * torch.randn(2, 3, 40, generator=gen, dtype=torch.float64)).requires_grad_()
    target = (torch.rand(2, 3, 40, generator=gen) > 0.6).double()
    spare = complement_if_hard(target, None)
    assert spare is not None
    hard = hard_sigmoid_sums(logits, target, None, per_image, spare)
    general = _general(logits, target, None, "sigmoid", per_image)
    torch.testing.assert_close(hard, general, rtol=1e-12, atol=1e-12)
    grad_hard, = torch.autograd.grad(hard.sum(), logits)
    grad_general, = torch.autograd.grad(general.sum(), logits)
    torch.testing.assert_close(grad_hard, grad_general, rtol=1e-12, atol=1e-14)


def test_hard_sigmoid_path_refuses_a_soft_target():
    target = torch.tensor([[[0.0, 1.0, 0.5]]])
    assert complement_if_hard(target, None) is None


def test_multiclass_dice_takes_the_hard_softmax_path_on_cpu(monkeypatch):
    import stableloss
    from stableloss import _overlap_hard

    calls = []
    original = _overlap_hard.hard_softmax_sums
    monkeypatch.setattr(_overlap_hard, "hard_softmax_sums", lambda *a: calls.append(1) or original(*a))
    logits, _, _ = _multiclass(5, False, dtype=torch.float32)
    labels = torch.randint(0, 5, (3, 6, 7), generator=torch.Generator().manual_seed(6))
    loss = stableloss.DiceLoss("multiclass")(logits, labels)
    loss.backward()
    assert calls == [1] and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("route", ["create_graph", "func_grad", "jvp"])
def test_differentiable_routes_give_the_first_order_target_and_input_gradients_at_saturated_pixels(route):
    # x = 20 has sigmoid(x) == 1.0 in float32: the pixel ties with its label. torch.minimum and
    # clamp_min split such ties their own way; the first-order backward uses sign(FP - FN). Every
    # route must give the same gradients, and the float64 gradients (where nothing ties).
    logits = torch.tensor([20.0, -3.0, 2.0, -20.0]).view(1, 1, 4)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 4)

    def loss(x, t):
        return dice_loss(x, t, mode="binary", validate_args=False)

    x64, t64 = logits.double().requires_grad_(), target.double().requires_grad_()
    loss(x64, t64).backward()
    x, t = logits.clone().requires_grad_(), target.clone().requires_grad_()
    loss(x, t).backward()
    first_order = (x.grad, t.grad)
    if route == "create_graph":
        x2, t2 = logits.clone().requires_grad_(), target.clone().requires_grad_()
        routed = torch.autograd.grad(loss(x2, t2), (x2, t2), create_graph=True)
    elif route == "func_grad":
        routed = torch.func.grad(loss, argnums=(0, 1))(logits, target)
    else:  # forward mode, one basis direction at a time
        def directional(index, of_target):
            tangent = torch.zeros(4).view(1, 1, 4)
            tangent.view(-1)[index] = 1.0
            tangents = (torch.zeros_like(logits), tangent) if of_target else (tangent, torch.zeros_like(target))
            return torch.func.jvp(loss, (logits, target), tangents)[1]
        routed = tuple(torch.stack([directional(i, of_target) for i in range(4)]).view(1, 1, 4) for of_target in (False, True))
    for got, first, exact in zip(routed, first_order, (x64.grad, t64.grad), strict=True):
        torch.testing.assert_close(got.detach(), first, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(got.detach().double(), exact, rtol=1e-5, atol=1e-9)
