"""The overlap sums for hard labels with a sigmoid: dot products, one saved buffer (the CPU fast path).

For targets that are exactly 0 or 1 the general counts of :mod:`stableloss._overlap`
(``min(p, t)``, ``max(p - t, 0)``, ``max(q - (1 - t), 0)``) are dot products,

.. math::

    TP = \\langle p, t \\rangle, \\qquad FP = \\langle p, v - t \\rangle, \\qquad FN = \\langle q, t \\rangle

with ``v`` the validity mask (1 without ``ignore_index``) and ``q = sigmoid(-x)`` computed directly,
not as ``1 - p``, so each count is still a sum of non-negative terms and keeps float32 relative
precision near a perfect prediction. BLAS dot products read their two operands once and write
nothing, where the general path makes a dozen passes; the backward needs only ``p q`` (one saved
buffer instead of ``p``, ``q`` and a sign):

.. math::

    \\frac{\\partial L}{\\partial x} = \\bigl(g_{FP} v + (g_{TP} - g_{FN} - g_{FP}) t\\bigr) \\, p q

It is used on the CPU in eager mode when the target is known to be hard and needs no gradient; it
returns the same sums as the general path (to float32 rounding) and falls back to the general path's
differentiable definition for double backward and forward mode.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from stableloss._activation import compute_dtype
from stableloss._overlap import overlap_sums_reference


def batched_dot(a: Tensor, b: Tensor, per_image: bool) -> Tensor:
    """Sums of ``a * b`` over the last dim of ``(N, C, S)`` tensors: ``(N, C)``, or ``(C,)`` summed over N."""
    n, c, s = a.shape
    with torch.autocast(a.device.type, enabled=False):  # bmm is a lower-precision op under autocast
        out = torch.bmm(a.reshape(n * c, 1, s), b.reshape(n * c, s, 1)).reshape(n, c)
    return out if per_image else out.sum(dim=0)


def is_hard(target: Tensor) -> bool:
    """Whether every value of a float target is exactly 0 or 1 (a host sync; integer and bool: no pass)."""
    if not target.is_floating_point():
        return True
    return not bool(torch.logical_and(target > 0, target < 1).any())


class HardSigmoidOverlap(torch.autograd.Function):
    """TP, FP, FN ``(3, C)`` (``(3, N, C)`` per image) from logits ``(N, C, S)`` and a hard target."""

    @staticmethod
    def forward(input: Tensor, target: Tensor, valid: Optional[Tensor], per_image: bool) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        dtype = compute_dtype(input.dtype)
        logits = input if input.dtype == dtype else input.to(dtype)
        probs = torch.sigmoid(logits)
        spare = torch.rsub(target, 1.0) if valid is None else torch.sub(valid.to(dtype), target)  # v - t
        tp = batched_dot(probs, target, per_image)
        fp = batched_dot(probs, spare, per_image)
        complement = torch.neg(logits, out=spare).sigmoid_()
        fn = batched_dot(complement, target, per_image)
        pq = probs.mul_(complement)
        return torch.stack([tp, fp, fn]), pq

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, Tensor]) -> None:
        input, target, valid, per_image = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(input, target, valid, output[1])
        ctx.per_image = per_image

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *unused: Any) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        input, target, valid, pq = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiate the general definition
            dims = (2,) if ctx.per_image else (0, 2)
            pullback = torch.func.vjp(lambda x: overlap_sums_reference(x, target, valid, "sigmoid", dims), input)[1]
            return pullback(grad)[0], None, None, None
        shape = (pq.shape[0], pq.shape[1], 1) if ctx.per_image else (1, pq.shape[1], 1)
        g_tp, g_fp, g_fn = (g.reshape(shape) for g in grad.unbind(0))
        grad_probs = torch.mul(target, g_tp - g_fn - g_fp)
        grad_probs.add_(g_fp if valid is None else valid * g_fp)
        return grad_probs.mul_(pq).to(input.dtype), None, None, None


def hard_sigmoid_sums(input: Tensor, target: Tensor, valid: Optional[Tensor], per_image: bool) -> Tensor:
    """``(3, C)`` or ``(3, N, C)`` sums; see :class:`HardSigmoidOverlap`."""
    return HardSigmoidOverlap.apply(input, target, valid, per_image)[0]
