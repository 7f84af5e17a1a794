"""Elementwise sigmoid focal loss with a hand-written backward (the hot path of ``focal_loss``).

Per element, with ``x`` the clamped logit, ``t`` the (soft) label and ``w`` an optional weight:

.. math::

    ce = \\operatorname{softplus}(x) - t x, \\quad u = 1 - p_t = -\\operatorname{expm1}(-ce), \\quad
    \\ell = w \\, u^{\\gamma} \\, ce

    \\frac{\\partial \\ell}{\\partial x} = w \\, u^{\\gamma - 1} \\bigl(u + \\gamma \\, ce \\, (1 - u)\\bigr)
    \\, (\\sigma(x) - t)

Autograd through the same formula keeps five full-size intermediates and allocates a fresh buffer
for each of a dozen operations; on a CPU those allocations cost more than the arithmetic. Here the
forward keeps the clamped logits, ``ce`` and ``u``, every step works in place on its own buffers,
and the backward builds the derivative from them. For ``gamma < 1``, ``u^(gamma - 1)`` is infinite where ``u = 0``; the
backward uses ``u^gamma (1 + gamma (1 - u) ce / u)`` with ``ce / u -> 1`` there, which is finite.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from stableloss._activation import saturate


def _cross_entropy(logits: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
    """``softplus(x) - t x`` as ``(max(x, 0) - t x) + log1p(exp(-|x|))``, and a spare buffer.

    For hard labels ``max(x, 0) - t x`` is exactly ``0`` or ``|x|`` (a subtraction of equal
    numbers, or no subtraction at all), so ``ce`` keeps full relative precision even where it is
    tiny; ``softplus(x) - t x`` summed in another order would cancel and lose it.

    Returns:
        ``(ce, spare)``: ``spare`` is a scratch buffer of the same shape the caller may reuse.
    """
    ce = logits.clamp_min(0.0)
    spare = torch.add(logits, ce, alpha=-2.0).exp_().log1p_()  # x - 2 max(x, 0) = -|x|
    return ce.addcmul_(target, logits, value=-1.0).add_(spare), spare


def _one_minus_pt(ce: Tensor, out: Tensor) -> Tensor:
    """``u = 1 - exp(-ce)`` computed as ``-expm1(-ce)`` into ``out``: exact where ``p_t`` rounds to 1."""
    return torch.neg(ce, out=out).expm1_().neg_()


class _SigmoidFocal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, gamma, reduced_threshold):  # type: ignore[override]
        logits = saturate(input)  # autograd is off inside forward: a plain clamp
        ce, spare = _cross_entropy(logits, target)
        if gamma == 0.0 and reduced_threshold is None:
            u, loss = None, ce.clone()
        else:
            u = _one_minus_pt(ce, out=spare)
            loss = _focal_factor(u, ce, gamma, reduced_threshold).mul_(ce)
        if weight is not None:
            loss.mul_(weight)
        ctx.save_for_backward(logits, target, ce, u, weight)
        ctx.gamma, ctx.reduced_threshold, ctx.input_dtype = gamma, reduced_threshold, input.dtype
        return loss

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        logits, target, ce, u, weight = ctx.saved_tensors
        gamma, threshold = ctx.gamma, ctx.reduced_threshold
        d_ce = torch.ones_like(ce) if u is None else _focal_derivative(u, ce, gamma)
        if threshold is not None:
            d_ce.mul_(threshold ** -gamma).masked_fill_(ce > -math.log(threshold), 1.0)
        if weight is not None:
            d_ce.mul_(weight)
        d_ce.mul_(grad)
        grad_input = torch.sigmoid(logits).sub_(target).mul_(d_ce)
        grad_target = grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_target = logits.neg().mul_(d_ce)  # d ce / d t = -x
        if ctx.needs_input_grad[2]:
            factor = torch.ones_like(ce) if u is None else _focal_factor(u, ce, gamma, threshold)
            grad_weight = factor.mul_(ce).mul_(grad)
        return grad_input.to(ctx.input_dtype), grad_target, grad_weight, None, None


def _focal_factor(u: Tensor, ce: Tensor, gamma: float, threshold: Optional[float]) -> Tensor:
    """``u^gamma = (1 - p_t)^gamma``, or the reduced-focal factor, in a fresh buffer."""
    factor = torch.ones_like(u) if gamma == 0.0 else u.pow(gamma)
    if threshold is not None:
        factor.mul_(threshold ** -gamma).masked_fill_(ce > -math.log(threshold), 1.0)
    return factor


def _focal_derivative(u: Tensor, ce: Tensor, gamma: float) -> Tensor:
    """``d (u^gamma ce) / d ce`` in a fresh buffer, finite everywhere (``u`` is not modified)."""
    if gamma == 0.0:
        return torch.ones_like(ce)
    if gamma >= 1.0:
        # u^(gamma-1) (u + gamma ce (1 - u)) = u^(gamma-1) (u + gamma ce - gamma ce u)
        inner = torch.mul(ce, u).mul_(-gamma).add_(ce, alpha=gamma).add_(u)
        if gamma == 2.0:
            return inner.mul_(u)
        return inner if gamma == 1.0 else inner.mul_(u.pow(gamma - 1.0))
    # gamma < 1: u^gamma (1 + gamma (1 - u) r), r = ce / u -> 1 as u -> 0.
    ratio = torch.div(ce, u).nan_to_num_(nan=1.0, posinf=1.0)
    ratio.sub_(ratio * u).mul_(gamma).add_(1.0)
    return ratio.mul_(u.pow(gamma))


def sigmoid_focal_terms(
    logits: Tensor, target: Tensor, *, gamma: float, reduced_threshold: Optional[float], weight: Optional[Tensor]
) -> Tensor:
    """Per-element sigmoid focal loss ``w (1 - p_t)^gamma CE`` (see the module docstring).

    Args:
        logits: Any float dtype, any shape; clamped to +-``LOGIT_LIMIT`` with a straight-through
            gradient (the formula's own limit gradient at +-inf).
        target: Labels in [0, 1] of the same shape, float32 (float64 for float64 logits).
        gamma: Focusing exponent >= 0.
        reduced_threshold: Reduced focal loss threshold, or ``None``.
        weight: Optional weights broadcastable to ``logits``.

    Returns:
        The per-element loss in float32 (float64 for float64 logits).
    """
    return _SigmoidFocal.apply(logits, target, weight, gamma, reduced_threshold)
