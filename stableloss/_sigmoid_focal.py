"""Elementwise sigmoid focal loss with a hand-written backward (the hot path of ``focal_loss``).

Per element, with ``x`` the clamped logit, ``t`` the (soft) label and ``w`` an optional weight:

.. math::

    ce = \\operatorname{softplus}(x) - t x, \\quad u = 1 - p_t = -\\operatorname{expm1}(-ce), \\quad
    \\ell = w \\, u^{\\gamma} \\, ce, \\quad
    \\frac{\\partial \\ell}{\\partial x} = w \\, \\frac{d (u^{\\gamma} ce)}{d\\,ce} \\, (\\sigma(x) - t)

Autograd through the same formula keeps five full-size intermediates and allocates a fresh buffer
for each of a dozen operations; on a CPU those allocations cost more than the arithmetic. Here the
forward keeps the clamped logits, ``ce`` and ``u``, and the backward builds the derivative from them
with :func:`~stableloss._focal_math.focal_term_derivative`. When the backward itself is
differentiated (``create_graph=True``, ``torch.func``), it differentiates
:func:`sigmoid_focal_reference` instead, so higher derivatives are exact. For a target of 0s and 1s
on the CPU, :mod:`stableloss._sigmoid_focal_hard` computes the same terms with fewer and cheaper passes.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from stableloss._activation import saturate
from stableloss._checks import is_compiling
from stableloss._focal_math import focal_factor, focal_term_derivative, one_minus_pt
from stableloss._sigmoid_focal_hard import HardSigmoidFocal, hard_label_sign


def sigmoid_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``softplus(x) - t x`` as ``(1 - t) softplus(x) + t softplus(-x)``, for finite ``x``.

    For a hard label one term is exactly 0, so ``ce`` keeps full relative precision even where it is
    tiny, and so does autograd's derivative of it, ``(1 - t) sigmoid(x) - t sigmoid(-x)``: a
    confident positive (``x = 20``, ``t = 1``) gets ``-sigmoid(-20)``, where differentiating
    ``max(x, 0) - t x + log1p(exp(-|x|))`` adds ``1 - 1 - 2e-9`` in an order that rounds it to 0 in
    float32 (the double-backward and ``torch.func`` routes go through this function).
    """
    return (1.0 - target) * F.softplus(logits) + target * F.softplus(-logits)


def sigmoid_focal_reference(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,
                            threshold: Optional[float]) -> Tensor:
    """The per-element loss in plain differentiable operations (the definition :class:`_SigmoidFocal` computes)."""
    ce = sigmoid_cross_entropy(saturate(input), target)
    loss = focal_factor(one_minus_pt(ce), ce, gamma, threshold) * ce
    return loss if weight is None else loss * weight


class _SigmoidFocal(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,  # type: ignore[override]
                threshold: Optional[float]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        logits = saturate(input)  # autograd is off inside forward: a plain cast and clamp
        if is_compiling():
            # The same operations out of place: torch 2.11's dynamo returns a zero gradient for this
            # Function when its forward builds the outputs in place (measured on an H200 machine,
            # docs/benchmarks.md "Second GPU run"; torch 2.14 is not affected).
            ce = logits.clamp_min(0.0) - target * logits + logits.abs().neg().exp().log1p()
            u = -torch.expm1(-ce)
            loss = focal_factor(u, ce, gamma, threshold) * ce
            return (loss if weight is None else loss * weight), logits, ce, u
        ce = logits.clamp_min(0.0).addcmul_(target, logits, value=-1.0)
        ce.add_(logits.abs().neg_().exp_().log1p_())  # the order of sigmoid_cross_entropy
        u = torch.neg(ce).expm1_().neg_()  # one_minus_pt(ce) in place: no autograd inside forward
        loss = focal_factor(u, ce, gamma, threshold).mul_(ce)
        if weight is not None:
            loss.mul_(weight)
        return loss, logits, ce, u

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, ...]) -> None:
        input, target, weight, gamma, threshold = inputs
        _, logits, ce, u = output
        ctx.mark_non_differentiable(logits, ce, u)
        ctx.set_materialize_grads(False)  # no full-size zeros for the unused auxiliary outputs
        ctx.save_for_backward(input, target, weight, logits, ce, u)
        ctx.save_for_forward(input, target, weight)
        ctx.gamma, ctx.threshold = gamma, threshold

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *unused: Any) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        if grad is None:  # only an auxiliary output was used (grads are not materialised)
            return (None,) * 5
        input, target, weight, logits, ce, u = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            return _reference_backward(ctx, grad, input, target, weight)
        d_ce = focal_term_derivative(u, ce, ctx.gamma, ctx.threshold)
        if weight is not None:
            d_ce.mul_(weight)
        d_ce.mul_(grad)
        # sigmoid(x) - t, where t = 1 as -u: sigmoid(x) rounds to 1 above x = 17 and the difference to 0,
        # while u = 1 - p_t = sigmoid(-x) there is exact (a wrong gradient of 0 would hide tiny losses).
        residual = torch.where(target == 1, u, torch.sigmoid(logits).sub_(target).neg_()).neg_()
        grad_input = residual.mul_(d_ce).to(input.dtype)
        grad_target = grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_target = logits.neg().mul_(d_ce)  # d ce / d t = -x
        if ctx.needs_input_grad[2]:
            grad_weight = focal_factor(u, ce, ctx.gamma, ctx.threshold).mul_(ce).mul_(grad)
        return grad_input, grad_target, grad_weight, None, None


class _SigmoidFocalForwardMode(_SigmoidFocal):
    """:class:`_SigmoidFocal` with forward-mode AD; dynamo cannot trace a custom ``jvp``, so eager only."""

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> Tuple[Any, ...]:
        """Forward mode (``torch.func.jvp``, ``jacfwd``, ``hessian``): the reference's directional derivative."""
        input, target, weight = ctx.saved_tensors
        primals = (input, target) if weight is None else (input, target, weight)
        filled = tuple(torch.zeros_like(p) if t is None else t for p, t in zip(primals, tangents, strict=False))
        loss_tangent = torch.func.jvp(lambda x, t, *w: sigmoid_focal_reference(x, t, w[0] if w else None, ctx.gamma,
                                                                                  ctx.threshold), primals, filled)[1]
        return loss_tangent, None, None, None


def _reference_backward(ctx: Any, grad: Tensor, input: Tensor, target: Tensor, weight: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
    primals = (input, target) if weight is None else (input, target, weight)
    pullback = torch.func.vjp(lambda x, t, *w: sigmoid_focal_reference(x, t, w[0] if w else None, ctx.gamma,
                                                                          ctx.threshold), *primals)[1]
    grads = pullback(grad) + (None,) * (3 - len(primals))
    return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad[:3], strict=False)) + (None, None)


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
    if not is_compiling():
        sign = hard_label_sign(logits, target, weight)
        if sign is not None:  # every label 0 or 1: the hard-label path (CPU, eager)
            return HardSigmoidFocal.apply(logits, target, weight, gamma, reduced_threshold, sign)[0]
    function = _SigmoidFocal if is_compiling() else _SigmoidFocalForwardMode
    return function.apply(logits, target, weight, gamma, reduced_threshold)[0]
