"""The backward of the fused sums in plain torch ops, itself differentiable (for ``create_graph=True``).

The Triton backward kernel computes numbers, not a graph. When autograd needs the gradient as a
function it can differentiate again (``create_graph=True``: gradient penalties, Hessian-vector
products, ``torch.func`` transforms), the custom op's backward calls :func:`sums_vjp` instead,
which gives the same first derivative from torch operations:

- overlap counts: the closed form of ``_overlap._OverlapSums.backward``,
  ``dL/dx = (a + b s) v p_v q`` with ``s = sign(p - t)`` held constant (it is piecewise constant, so
  its derivative is 0 almost everywhere) and ``p = sigmoid(x)``, ``q = sigmoid(-x)`` differentiable;
- focal sums: autograd of the per-element focal loss, with ``ce`` valued by the precise form
  ``max(x, 0) - t x + log1p(exp(-|x|))`` but differentiated as ``binary_cross_entropy_with_logits``
  (whose derivative ``sigmoid(x) - t`` is right at ``x = 0``, where autograd of ``|x|`` and
  ``max(x, 0)`` is not), and the power ``u^gamma`` guarded at ``u = 0`` so that second derivatives
  at a saturated, correct prediction are 0 rather than ``0 * inf``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from stableloss._activation import LOGIT_LIMIT, compute_dtype


class _Saturate(torch.autograd.Function):
    """Clamp to +-``LOGIT_LIMIT`` with the identity as gradient (``_activation.saturate``, but with a
    ``setup_context``, so that ``torch.func`` transforms accept it)."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:  # type: ignore[override]
        return x.clamp(-LOGIT_LIMIT, LOGIT_LIMIT)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


def _overlap_vjp(grad: Tensor, x: Tensor, t: Tensor, v: Tensor | None) -> tuple[Tensor, Tensor]:
    g_tp, g_fp, g_fn = (g.unsqueeze(-1) for g in grad.unbind(0))
    p, q = torch.sigmoid(x), torch.sigmoid(-x)
    pv = p if v is None else p * v
    with torch.no_grad():
        sign = torch.sign((pv - t).clamp_min(0.0) - (q - (1.0 - t)).clamp_min(0.0))
    grad_probs = sign * ((g_fp + g_fn - g_tp) / 2) + (g_tp + g_fp - g_fn) / 2
    grad_target = sign * ((g_tp - g_fp - g_fn) / 2) + (g_tp - g_fp + g_fn) / 2
    if v is not None:
        grad_probs, grad_target = grad_probs * v, grad_target * v
    return grad_probs * pv * q, grad_target


def focal_terms(x: Tensor, t: Tensor, v: Tensor | None, alpha: Tensor | None, *, gamma: float,
                alpha_scalar: float | None, threshold: float | None) -> Tensor:
    """Per-element ``w v (1 - p_t)^gamma ce`` in torch operations, twice differentiable."""
    xc = _Saturate.apply(x)
    bce = F.binary_cross_entropy_with_logits(xc, t, reduction="none")
    with torch.no_grad():
        precise = xc.clamp_min(0.0) - t * xc + torch.log1p(torch.exp(-xc.abs()))
    ce = bce + (precise - bce).detach()
    loss = ce
    if gamma != 0.0 or threshold is not None:
        u = -torch.expm1(-ce)
        if gamma == 0.0:
            factor = torch.ones_like(u)
        else:
            positive = u > 0
            factor = torch.where(positive, torch.where(positive, u, 1.0) ** gamma, 0.0)
        if threshold is not None:
            factor = torch.where(ce > -math.log(threshold), 1.0, factor * threshold ** -gamma)
        loss = factor * ce
    if alpha is not None:
        loss = loss * alpha.to(loss.dtype).view(1, -1, 1)
    elif alpha_scalar is not None:
        loss = loss * (t * (2.0 * alpha_scalar - 1.0) + (1.0 - alpha_scalar))
    return loss if v is None else loss * v


def sums_vjp(grad: Tensor, logits: Tensor, target: Tensor, valid: Tensor | None, alpha: Tensor | None,
             overlap: bool, focal: bool, gamma: float, alpha_scalar: float | None, threshold: float | None,
             want_input: bool, want_target: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``sum(grad * sums)`` for the logits and the target, as differentiable tensors.

    Args:
        grad: ``(K, N, C)`` incoming gradient of the op's output (``K = 3 overlap + 2 focal``).
        logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar, threshold: the op's inputs.
        want_input, want_target: Which gradients to return (the other is ``None``).
    """
    dtype = compute_dtype(logits.dtype)
    grad_input: Tensor | None = None
    grad_target: Tensor | None = None
    with torch.enable_grad():
        x, t = logits.to(dtype), target.to(dtype)
        x = x if x.requires_grad or not want_input else x.detach().requires_grad_()
        t = t if t.requires_grad or not want_target else t.detach().requires_grad_()
        v = None if valid is None else valid.to(dtype)
        if overlap:
            grad_input, grad_target = _overlap_vjp(grad[:3], x, t, v)
        if focal:
            terms = focal_terms(x, t, v, alpha, gamma=gamma, alpha_scalar=alpha_scalar, threshold=threshold)
            weight = grad[3 if overlap else 0].unsqueeze(-1).expand_as(terms)
            wrt = [x] * want_input + [t] * want_target
            focal_grads = torch.autograd.grad(terms, wrt, weight, create_graph=True)
            if want_input:
                grad_input = focal_grads[0] if grad_input is None else grad_input + focal_grads[0]
            if want_target:
                grad_target = focal_grads[-1] if grad_target is None else grad_target + focal_grads[-1]
    grad_input = grad_input.to(logits.dtype) if want_input and grad_input is not None else None
    grad_target = grad_target.to(target.dtype) if want_target and grad_target is not None else None
    return grad_input, grad_target
