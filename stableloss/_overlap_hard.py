"""The overlap sums for hard labels (sigmoid with a 0/1 target, softmax): few passes, one saved buffer (the CPU fast path).

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

The softmax (multiclass) target is always hard (a one-hot of class indices), and the same idea
replaces the general path's complement ``q_c`` (the other classes' mass, from two cumulative sums
over the classes, five full-size buffers) by what the counts need of it: with ``v - t`` the
complement of the one-hot target,

.. math::

    TP_c = \\langle p_c, t_c \\rangle, \\qquad FP_c = \\langle p_c, v - t_c \\rangle, \\qquad
    FN_c = \\langle t_c, r \\rangle, \\quad r_i = \\sum_k p_{ik} (v_i - t_{ik})

``r_i`` is the mass of the classes other than pixel ``i``'s label, a sum of non-negative terms
(never ``1 - p``), so every count keeps float32 relative precision. The backward is
``dL/dp_k = g_{TP,k} t_k + (g_{FP,k} + g_{FN,label}) (v - t_k)`` through the softmax's backward;
``p`` is the one saved buffer besides the target.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from stableloss._activation import LOGIT_LIMIT, compute_dtype, saturate
from stableloss._overlap import overlap_sums_reference


def clamp_if_needed(input: Tensor) -> Tensor:
    """:func:`~stableloss._activation.saturate`, or ``input`` itself when it is already float32 (float64)
    and within the limits: one read (``aminmax``) instead of a full-size copy. NaN fails the test and
    is clamped (it stays NaN). The backward is the identity either way."""
    if input.dtype == compute_dtype(input.dtype) and input.numel():
        low, high = torch.aminmax(input)
        if bool(low >= -LOGIT_LIMIT) and bool(high <= LOGIT_LIMIT):
            return input
    return saturate(input)


_MAX_DOT_ROWS = 64
"""Most ``(image, class)`` rows :func:`batched_dot` takes one BLAS dot product each (a Python loop)."""


def batched_dot(a: Tensor, b: Tensor, per_image: bool) -> Tensor:
    """Sums of ``a * b`` over the last dim of ``(N, C, S)`` tensors: ``(N, C)``, or ``(C,)`` summed over N.

    ``b`` may have one channel (``(N, 1, S)``, broadcast over the classes). One channel: BLAS dot
    products. Several, with contiguous rows and at most ``_MAX_DOT_ROWS`` of them: one BLAS dot
    product per image and class (each reads its two rows once and writes nothing, where a product
    and a sum write a full-size temporary: 2.5x faster at 2x3x96^3 on one CPU thread; an ``einsum``
    over the strided class dim measured slower than both). Otherwise a product and a sum.
    """
    n, c, _ = a.shape
    with torch.autocast(a.device.type, enabled=False):  # matrix products are lower-precision under autocast
        if c == 1 and b.shape[1] == 1:
            if per_image:
                return torch.einsum("ncs,ncs->nc", a, b)
            return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(1)
        if n * c <= _MAX_DOT_ROWS and a.is_contiguous() and b.is_contiguous():
            shared = b.shape[1] == 1
            sums = torch.stack([torch.dot(a[i, k], b[i, 0 if shared else k]) for i in range(n) for k in range(c)])
            sums = sums.view(n, c)
            return sums if per_image else sums.sum(dim=0)
    return (a * b).sum(dim=2 if per_image else (0, 2))


def label_complement(target: Tensor, valid: Optional[Tensor]) -> Tensor:
    """``v - t``: the validity mask minus the target (``1 - t`` without a mask), a fresh buffer."""
    return torch.rsub(target, 1.0) if valid is None else torch.sub(valid.to(target.dtype), target)


def complement_if_hard(target: Tensor, valid: Optional[Tensor]) -> Optional[Tensor]:
    """``v - t`` (``1 - t`` without a mask) if every target value is 0 or 1, else None.

    The test is ``sum t (v - t) == 0``: a sum of non-negative terms, each 0 exactly for a hard label
    and positive for a soft one, so no rounding can make a soft target pass. One dot product and one
    host sync (the CPU fast path only).
    """
    spare = label_complement(target, valid)
    with torch.autocast(target.device.type, enabled=False):
        soft = bool(torch.dot(target.reshape(-1), spare.reshape(-1)) != 0)
    return None if soft else spare


class _HardOverlap(torch.autograd.Function):
    """What both hard-label paths share: the saved tensors and the differentiable backward for
    ``create_graph=True``. Subclasses write ``forward`` (returning the sums and one saved buffer)
    and ``backward``."""

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, Tensor]) -> None:
        input, target, valid, per_image, _ = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # no full-size zeros for the unused second output
        ctx.save_for_backward(input, target, valid, output[1])
        ctx.per_image = per_image

    @staticmethod
    def differentiable_backward(ctx: Any, grad: Tensor, activation: str) -> Tuple[Optional[Tensor], ...]:
        """The general definition's gradient, itself differentiable (double backward)."""
        input, target, valid, _ = ctx.saved_tensors
        dims = (2,) if ctx.per_image else (0, 2)
        pullback = torch.func.vjp(lambda x: overlap_sums_reference(x, target, valid, activation, dims), input)[1]
        return pullback(grad)[0], None, None, None, None

    @staticmethod
    def class_gradients(ctx: Any, grad: Tensor, like: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``dL/dTP``, ``dL/dFP``, ``dL/dFN`` shaped to broadcast over ``(N, C, S)``."""
        shape = (like.shape[0], like.shape[1], 1) if ctx.per_image else (1, like.shape[1], 1)
        g_tp, g_fp, g_fn = (g.reshape(shape) for g in grad.unbind(0))
        return g_tp, g_fp, g_fn


class HardSigmoidOverlap(_HardOverlap):
    """TP, FP, FN ``(3, C)`` (``(3, N, C)`` per image) from logits ``(N, C, S)`` and a hard target."""

    @staticmethod
    def forward(input: Tensor, target: Tensor, valid: Optional[Tensor], per_image: bool,  # type: ignore[override]
                spare: Tensor) -> Tuple[Tensor, Tensor]:
        dtype = compute_dtype(input.dtype)
        logits = input if input.dtype == dtype else input.to(dtype)
        probs = torch.sigmoid(logits)
        tp = batched_dot(probs, target, per_image)
        fp = batched_dot(probs, spare, per_image)
        complement = torch.neg(logits, out=spare).sigmoid_()
        fn = batched_dot(complement, target, per_image)
        pq = probs.mul_(complement)
        return torch.stack([tp, fp, fn]), pq

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *unused: Any) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        if grad is None:  # only an auxiliary output was used (grads are not materialised)
            return (None,) * 5
        if torch.is_grad_enabled():  # create_graph=True: differentiate the general definition
            return _HardOverlap.differentiable_backward(ctx, grad, "sigmoid")
        input, target, valid, pq = ctx.saved_tensors
        g_tp, g_fp, g_fn = _HardOverlap.class_gradients(ctx, grad, pq)
        grad_probs = torch.addcmul(g_fp if valid is None else valid * g_fp, target, g_tp - g_fn - g_fp)
        return grad_probs.mul_(pq).to(input.dtype), None, None, None, None


def hard_sigmoid_sums(input: Tensor, target: Tensor, valid: Optional[Tensor], per_image: bool, spare: Tensor) -> Tensor:
    """``(3, C)`` or ``(3, N, C)`` sums; ``spare`` is :func:`complement_if_hard`'s ``v - t`` (it is overwritten)."""
    return HardSigmoidOverlap.apply(input, target, valid, per_image, spare)[0]


class HardSoftmaxOverlap(_HardOverlap):
    """TP, FP, FN ``(3, C)`` (``(3, N, C)`` per image) from logits ``(N, C, S)`` and a one-hot target."""

    @staticmethod
    def forward(input: Tensor, target: Tensor, valid: Optional[Tensor], per_image: bool,  # type: ignore[override]
                spare: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        dims = 2 if per_image else (0, 2)
        logits = clamp_if_needed(input)  # the shared clamp, skipped where it changes nothing; straight-through: see backward
        probs = torch.softmax(logits, dim=1)
        tp = batched_dot(probs, target, per_image)
        # p (v - t): the wrong classes' probabilities. Without a mask, p - p t in one pass: exact for a
        # one-hot t (p - p = 0 and p - 0 = p); with one, into the spare v - t.
        others = torch.addcmul(probs, probs, target, value=-1.0) if spare is None else torch.mul(probs, spare, out=spare)
        fp = others.sum(dim=dims)
        rest = others.sum(dim=1, keepdim=True)  # r: the mass off each pixel's label (0 where ignored)
        fn = batched_dot(target, rest, per_image)
        return torch.stack([tp, fp, fn]), probs

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *unused: Any) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        if grad is None:
            return (None,) * 5
        if torch.is_grad_enabled():  # create_graph=True: differentiate the general definition
            return _HardOverlap.differentiable_backward(ctx, grad, "softmax")
        input, target, valid, probs = ctx.saved_tensors
        g_tp, g_fp, g_fn = _HardOverlap.class_gradients(ctx, grad, probs)
        # dL/dp_k = (v - t_k)(g_FP,k + g_FN,label) + t_k g_TP,k = v g_FP,k + g_FN,label + t_k (g_TP,k - g_FP,k - g_FN,k),
        # as t_k g_FN,label = t_k g_FN,k and g_FN,label (g_FN of the pixel's label) is 0 where v is. The
        # softmax's backward, p_k (g_k - sum_j p_j g_j), cancels a term equal in every class of a pixel, so
        # g_FN,label is left out: one full-size product, sum and sum fewer, the same gradient.
        grad_probs = torch.addcmul(g_fp if valid is None else valid * g_fp, target, g_tp - g_fp - g_fn)
        grad_logits = torch.ops.aten._softmax_backward_data(grad_probs, probs, 1, probs.dtype)
        return grad_logits.to(input.dtype), None, None, None, None


def hard_softmax_sums(input: Tensor, target: Tensor, valid: Optional[Tensor], per_image: bool) -> Tensor:
    """``(3, C)`` or ``(3, N, C)`` sums for a one-hot ``(N, C, S)`` target (0 at ignored pixels)."""
    spare = None if valid is None else label_complement(target, valid)
    return HardSoftmaxOverlap.apply(input, target, valid, per_image, spare)[0]
