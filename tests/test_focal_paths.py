"""The CPU hard-label sigmoid focal path against the definition, the general path and the focal loss's contract."""

from __future__ import annotations

import pytest
import torch

import stableloss
from stableloss import _sigmoid_focal, _sigmoid_focal_hard
from stableloss._sigmoid_focal import sigmoid_focal_reference, sigmoid_focal_terms

GAMMAS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def _inputs(seed: int, dtype=torch.float64, scale: float = 6.0):
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(2, 3, 40, generator=gen, dtype=torch.float64))
    logits[0, 0, :6] = torch.tensor([40.0, -40.0, 20.0, -20.0, 17.5, -17.5], dtype=torch.float64)  # sigmoid rounds to 0 or 1
    target = (torch.rand(2, 3, 40, generator=gen) > 0.5).double()
    target[0, 0, :6] = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])  # right, right, right, right, wrong, wrong
    weight = torch.rand(2, 3, 40, generator=gen, dtype=torch.float64) + 0.1
    return logits.to(dtype), target.to(dtype), weight.to(dtype)


def _terms(logits, target, weight, gamma, threshold, *, general=False):
    x = logits.clone().requires_grad_()
    if general:  # the general path, as a CPU without the hard-label path would run it
        out = _sigmoid_focal._SigmoidFocal.apply(x, target, weight, gamma, threshold)[0]
    else:
        out = sigmoid_focal_terms(x, target, gamma=gamma, reduced_threshold=threshold, weight=weight)
    upstream = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).view(out.shape)
    (out * upstream).sum().backward()
    return out.detach(), x.grad


def _spy(monkeypatch) -> list:
    calls: list = []
    original = _sigmoid_focal_hard.HardSigmoidFocal.apply

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(_sigmoid_focal_hard.HardSigmoidFocal, "apply", counted)
    return calls


@pytest.mark.parametrize("threshold", [None, 0.5])
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("weighted", [False, True])
def test_hard_focal_path_computes_the_definition_in_float64(gamma, threshold, weighted, monkeypatch):
    """In float64 the hard-label formulas (ce = softplus(m x), u = sigmoid(m x), d/dx = m u ...) equal the definition."""
    calls = _spy(monkeypatch)
    logits, target, weight = _inputs(0)
    weight = weight if weighted else None
    value, grad = _terms(logits, target, weight, gamma, threshold)
    assert calls == [1]
    x = logits.clone().requires_grad_()
    exact = sigmoid_focal_reference(x, target, weight, gamma, threshold)
    upstream = torch.linspace(-1.0, 2.0, exact.numel(), dtype=exact.dtype).view(exact.shape)
    (exact * upstream).sum().backward()
    torch.testing.assert_close(value, exact.detach(), rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(grad, x.grad, rtol=1e-11, atol=1e-300)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_hard_focal_path_keeps_float32_relative_precision_elementwise(gamma):
    """Every element's loss and gradient within 2e-5 of float64 (relative), the confident pixels whose
    sigmoid rounds to 0 or 1 included: as close as the general path, never a rounded-away gradient.
    Below float32's smallest normal number (1.2e-38) only absolute precision is possible."""
    floor = torch.finfo(torch.float32).tiny
    logits64, target64, weight64 = _inputs(1)
    exact, exact_grad = _terms(logits64, target64, weight64, gamma, None)
    args = (logits64.float(), target64.float(), weight64.float(), gamma, None)
    for value, grad in (_terms(*args), _terms(*args, general=True)):
        assert ((value.double() - exact).abs() <= 2e-5 * exact.abs() + floor).all()
        assert ((grad.double() - exact_grad).abs() <= 2e-5 * exact_grad.abs() + floor).all()
    tiny = _terms(*args)[1][0, 0, 2:4]  # right answers at |x| = 20, where sigmoid(x) - t rounds to 0: not 0
    assert (tiny != 0).all()


def test_focal_loss_takes_the_hard_path_on_cpu_and_not_for_soft_or_differentiable_targets(monkeypatch):
    calls = _spy(monkeypatch)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    hard = (torch.rand(2, 1, 8, 8) > 0.5).float()
    stableloss.FocalLoss("binary")(logits, hard).backward()
    assert calls == [1]
    soft = torch.rand(2, 1, 8, 8)
    stableloss.FocalLoss("binary")(logits, soft).backward()
    target = hard.clone().requires_grad_()
    stableloss.focal_loss(logits, target, mode="binary").backward()
    assert calls == [1] and target.grad is not None and torch.isfinite(target.grad).all()
    weight = torch.rand(2, 1, 64, requires_grad=True)
    sigmoid_focal_terms(logits.reshape(2, 1, -1), hard.reshape(2, 1, -1), gamma=2.0, reduced_threshold=None,
                        weight=weight).sum().backward()
    assert calls == [1] and weight.grad is not None


def test_hard_focal_path_with_ignore_index_matches_the_general_path(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    logits = 4.0 * torch.randn(2, 1, 9, 9, generator=gen, dtype=torch.float64)
    labels = (torch.rand(2, 1, 9, 9, generator=gen) > 0.5).double()
    labels[0, 0, :3] = 255
    results = []
    for hard in (True, False):
        with monkeypatch.context() as patch:
            if not hard:
                patch.setattr(_sigmoid_focal, "hard_label_sign", lambda *a: None)
            x = logits.clone().requires_grad_()
            loss = stableloss.focal_loss(x, labels, mode="binary", ignore_index=255, alpha=0.25)
            loss.backward()
            results.append((loss.detach(), x.grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-11, atol=1e-300)
    assert results[0][1][0, 0, :3].abs().max() == 0  # ignored pixels get no gradient


def test_hard_focal_path_saturates_infinite_logits_and_propagates_nan():
    logits = torch.tensor([[[float("inf"), float("-inf"), 70000.0, -3.0, 2.0]]], dtype=torch.float32)
    target = torch.tensor([[[0.0, 0.0, 1.0, 1.0, 0.0]]])
    value, grad = _terms(logits, target, None, 2.0, None)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    assert value[0, 0, 0] == 65504.0 and value[0, 0, 1] == 0.0  # the documented clamp at +-65504
    # straight through at +inf (the limit gradient 1, times the upstream -1); 0 for a saturated right answer
    assert grad[0, 0, 0] == -1.0 and grad[0, 0, 1] == 0.0 and grad[0, 0, 2] == 0.0
    general = _terms(logits, target, None, 2.0, None, general=True)
    torch.testing.assert_close((value, grad), general, rtol=1e-6, atol=0.0)
    half = logits.clamp(-60000, 60000).half()
    value16, grad16 = _terms(half, target, None, 2.0, None)
    assert value16.dtype == torch.float32 and grad16.dtype == torch.float16 and torch.isfinite(grad16).all()
    nan = logits.clone()
    nan[0, 0, 3] = float("nan")
    value_nan, grad_nan = _terms(nan, target, None, 2.0, None)
    assert torch.isnan(value_nan[0, 0, 3]) and torch.isfinite(value_nan[0, 0, [0, 1, 2, 4]]).all()
    assert torch.isnan(grad_nan[0, 0, 3])


def test_hard_focal_path_double_backward_and_repeated_backward_match_the_definition():
    logits, target, weight = _inputs(4)
    x = logits.clone().requires_grad_()
    out = sigmoid_focal_terms(x, target, gamma=2.0, reduced_threshold=None, weight=weight).sum()
    grad, = torch.autograd.grad(out, x, create_graph=True)
    second, = torch.autograd.grad(grad.square().sum(), x)
    y = logits.clone().requires_grad_()
    exact_grad, = torch.autograd.grad(sigmoid_focal_reference(y, target, weight, 2.0, None).sum(), y, create_graph=True)
    exact_second, = torch.autograd.grad(exact_grad.square().sum(), y)
    torch.testing.assert_close(grad, exact_grad, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(second, exact_second, rtol=1e-10, atol=1e-300)
    z = logits.clone().requires_grad_()
    loss = sigmoid_focal_terms(z, target, gamma=2.0, reduced_threshold=None, weight=weight).sum()
    loss.backward(retain_graph=True)
    first = z.grad.clone()
    loss.backward()  # the saved buffers were not overwritten by the first backward
    torch.testing.assert_close(z.grad, 2 * first, rtol=1e-15, atol=0.0)
