"""The sigmoid focal loss for hard labels (every target 0 or 1): the CPU fast path of :mod:`stableloss._sigmoid_focal`.

With ``m = 1 - 2 t`` (+1 where ``t = 0``, -1 where ``t = 1``) and ``s = m x``, the logit of the wrong
answer, every quantity of the general path is a function of ``s``:

.. math::

    ce = \\operatorname{softplus}(s) = \\max(s, 0) + \\log(1 + e^{-|s|}), \\qquad
    u = 1 - p_t = \\sigma(s), \\qquad \\sigma(x) - t = m \\, u

so the forward takes one ``exp``, one ``log1p`` and one ``sigmoid`` (the general path: ``exp``,
``log1p`` and the slower ``expm1``) and the backward no transcendental function at all (the general
path recomputes ``sigmoid(x)`` and selects ``-u`` where ``t = 1``, a comparison and a selection):

.. math::

    \\frac{\\partial \\ell}{\\partial x} = w \\, \\frac{d (u^{\\gamma} ce)}{d\\,ce} \\, m \\, u

Each factor is exact where it is tiny: ``ce`` is a ``log1p`` of the small ``e^{-|s|}`` for a
confident right answer, ``u = sigmoid(s)`` is computed directly (never ``1 - p``), and ``m u`` is
the exact ``sigmoid(x) - t`` of a hard label, so a near-perfect prediction keeps its small loss and
its small gradient to float32 relative precision. It is used in eager mode on the CPU when the
target is hard and needs no gradient (the test is :func:`stableloss._overlap_hard.complement_if_hard`'s
one dot product); double backward differentiates the general path's reference definition.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from stableloss._focal_math import focal_factor, focal_term_derivative


def hard_label_sign(logits: Tensor, target: Tensor, weight: Optional[Tensor]) -> Optional[Tensor]:
    """``1 - 2 t`` (a fresh buffer) when the hard-label path applies to these tensors, else ``None``.

    It applies on the CPU in eager mode, without forward-mode AD or a ``torch.func`` transform, when
    neither the target nor the weight needs a gradient and every target value is exactly 0 or 1.
    """
    from stableloss._overlap import _hard_path_applies
    from stableloss._overlap_hard import complement_if_hard

    if weight is not None and weight.requires_grad:
        return None
    if not _hard_path_applies(logits, target):
        return None
    spare = complement_if_hard(target, None)
    return None if spare is None else spare.sub_(target)


class HardSigmoidFocal(torch.autograd.Function):
    """Per-element ``w u^gamma ce`` (the reduced focal factor with a threshold) for a hard target.

    Inputs: ``logits`` (any float dtype), ``target`` and ``sign = 1 - 2 t`` of the compute dtype,
    an optional ``weight`` broadcastable to them, ``gamma`` and ``threshold``. Returns the loss and
    the auxiliary buffers the backward keeps (``ce``, ``u``), as :class:`~stableloss._sigmoid_focal._SigmoidFocal` does.
    """

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Optional[Tensor], gamma: float,  # type: ignore[override]
                threshold: Optional[float], sign: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        from stableloss._overlap_hard import clamp_if_needed

        logits = clamp_if_needed(input)  # autograd is off inside forward: a plain cast and clamp where needed
        wrong = torch.mul(logits, sign)  # s, the logit of the wrong answer
        ce = wrong.clamp_min(0.0)
        u = torch.abs(wrong).neg_().exp_().log1p_()
        ce.add_(u)  # softplus(s): max(s, 0) + log1p(exp(-|s|))
        torch.sigmoid(wrong, out=u)  # 1 - p_t, exact where it is tiny
        if threshold is None and gamma >= 1.0:  # focal_factor's u^gamma, written over s (no fresh buffer)
            loss = torch.mul(u, u, out=wrong) if gamma == 2.0 else torch.pow(u, gamma, out=wrong)
        else:
            loss = focal_factor(u, ce, gamma, threshold)
        loss.mul_(ce)
        if weight is not None:
            loss.mul_(weight)
        return loss, ce, u

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, ...]) -> None:
        input, target, weight, gamma, threshold, sign = inputs
        _, ce, u = output
        ctx.mark_non_differentiable(ce, u)
        ctx.set_materialize_grads(False)  # no full-size zeros for the unused auxiliary outputs
        ctx.save_for_backward(input, target, weight, sign, ce, u)
        ctx.gamma, ctx.threshold = gamma, threshold

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *unused: Any) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        if grad is None:  # only an auxiliary output was used (grads are not materialised)
            return (None,) * 6
        input, target, weight, sign, ce, u = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiate the general definition
            from stableloss._sigmoid_focal import _reference_backward

            return _reference_backward(ctx, grad, input, target, weight) + (None,)  # no gradient for the sign
        d_ce = focal_term_derivative(u, ce, ctx.gamma, ctx.threshold)
        if weight is not None:
            d_ce.mul_(weight)
        grad_input = d_ce.mul_(grad).mul_(u).mul_(sign)  # d ce / d x = sigmoid(x) - t = m u
        return grad_input.to(input.dtype), None, None, None, None, None
