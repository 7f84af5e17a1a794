"""The one place that turns (input, target) into overlap statistics: TP, FP and FN per class.

Three float32 sums per class (and per image, with ``per_image=True``), each of non-negative terms:

.. math::

    TP = \\sum_i \\min(p_i, t_i), \\qquad FP = \\sum_i \\max(p_i - t_i, 0), \\qquad
    FN = \\sum_i \\max(t_i - p_i, 0)

For hard labels these are the textbook :math:`\\sum p t`, :math:`\\sum p (1 - t)` and
:math:`\\sum (1 - p) t`. For soft labels they are the semimetric counts of Wang and Blaschko (2023),
``TP = (sum p + sum t - sum |p - t|) / 2`` as in segmentation-models-pytorch, whose loss is 0 exactly
when ``p == t``. Summing non-negative terms directly (rather than deriving one count from the others
by subtraction) keeps each count to float32 relative precision when it is tiny: a near-perfect
prediction keeps its small loss, and a hopeless one keeps its small Dice score for ``log_loss``. The
sums are float32 whatever the input dtype, so they never overflow at 65504 as float16 sums do; they
are plain sums, so a distributed run can add them across ranks before the score is formed.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from stableloss import _fused
from stableloss._activation import compute_dtype, saturate


class Overlap(NamedTuple):
    """Soft confusion counts per class (float32), shape ``(C,)`` or ``(N, C)`` with per-image sums."""

    tp: Tensor
    fp: Tensor
    fn: Tensor

    @property
    def target_sum(self) -> Tensor:
        """Soft count of target pixels, ``TP + FN``."""
        return self.tp + self.fn


def flatten_target(
    target: Tensor, *, mode: str, num_classes: int, ignore_index: Optional[int], dtype: torch.dtype = torch.float32
) -> Tuple[Tensor, Optional[Tensor]]:
    """Bring a target to a float32 ``(N, C, S)`` tensor and a boolean validity mask.

    Args:
        target: ``(N, 1, *S)`` or ``(N, *S)`` (binary), ``(N, *S)`` class indices (multiclass), or
            ``(N, C, *S)`` (multilabel).
        mode: One of ``"binary"``, ``"multiclass"``, ``"multilabel"``.
        num_classes: ``C``, the input's channel count.
        ignore_index: Target value whose pixels are left out, or ``None``.
        dtype: Floating dtype of the returned target (the dtype the loss computes in).

    Returns:
        ``(target, valid)``: ``target`` is float32 ``(N, C, S)`` (one-hot for multiclass) with
        ignored pixels set to 0; ``valid`` is a bool mask broadcastable to it (``(N, 1, S)`` or
        ``(N, C, S)``), or ``None`` when nothing is ignored.
    """
    batch = target.shape[0]
    if mode == "multiclass":
        labels = target.reshape(batch, 1, -1)
        valid = None if ignore_index is None else labels != ignore_index
        class_ids = torch.arange(num_classes, device=target.device).view(1, num_classes, 1)
        one_hot = labels == class_ids
        if valid is not None:
            one_hot = one_hot & valid
        return one_hot.to(dtype), valid
    flat = target.reshape(batch, num_classes, -1)
    valid = None if ignore_index is None else flat != ignore_index
    flat = flat.to(dtype)
    if valid is not None:
        flat = torch.where(valid, flat, 0.0)
    return flat, valid


class _OverlapSums(torch.autograd.Function):
    """The sums TP, FP and FN, with a hand-written backward.

    Per pixel, with ``q = 1 - p`` computed without rounding it through ``p`` (``sigmoid(-x)``, or the
    softmax mass of the other classes): ``tp = min(p, t)``, ``fp = max(p - t, 0)`` and
    ``fn = max(q - (1 - t), 0)``. For hard labels each is exactly one of ``p``, ``q`` or 0, so a
    count of tiny terms (the few pixels a near-perfect prediction gets wrong) keeps float32 relative
    precision; ``1 - p`` formed by subtraction would round it to multiples of 6e-8.

    Autograd through these steps would keep several full-size intermediates and allocate as many
    again in the backward pass. Here ``p``, ``q`` and ``sign(p - t)`` (int8) are kept, and the
    backward is ``dL/dp = A + B * sign(p - t)`` (constants per class) followed by the
    activation's backward (``g p q`` for the sigmoid, ``_softmax_backward_data`` for the softmax,
    identity for the straight-through clamp of probabilities). Ignored pixels have ``p = 0`` and
    get gradient 0.
    """

    @staticmethod
    def forward(ctx, input, target, valid, activation, dims):  # type: ignore[override]
        probs, complement = activate(input, activation)
        if valid is not None:
            probs.mul_(valid)
        work = torch.minimum(probs, target)
        tp = work.sum(dim=dims)
        fp_terms = torch.sub(probs, target).clamp_min_(0.0)
        fp = fp_terms.sum(dim=dims)
        fn_terms = _false_negative_terms(complement, target, out=work)
        fn = fn_terms.sum(dim=dims)
        # sign(p - t) = sign(fp - fn) per pixel, right even where p rounds to t; kept as int8.
        sign = fp_terms.sub_(fn_terms).sign_().to(torch.int8)
        ctx.save_for_backward(probs, complement, sign, valid)
        ctx.activation, ctx.dims, ctx.input_dtype = activation, dims, input.dtype
        return torch.stack([tp, fp, fn])

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        probs, complement, sign, valid = ctx.saved_tensors
        shape = (1, -1, 1) if ctx.dims == (0, 2) else (probs.shape[0], probs.shape[1], 1)
        g_tp, g_fp, g_fn = (g.reshape(shape) for g in grad.unbind(0))
        # With s = sign(p - t): dTP/dp = (1 - s)/2, dFP/dp = (1 + s)/2, dFN/dp = (s - 1)/2, and
        # dTP/dt = (1 + s)/2, dFP/dt = -(1 + s)/2, dFN/dt = (1 - s)/2 (s = 0 splits evenly).
        sign = sign.to(probs.dtype)
        grad_target = None
        if ctx.needs_input_grad[1]:
            grad_target = sign * ((g_tp - g_fp - g_fn) / 2) + (g_tp - g_fp + g_fn) / 2
            if valid is not None:
                grad_target = grad_target * valid
        grad_input = None
        if ctx.needs_input_grad[0]:
            grad_probs = sign.mul_((g_fp + g_fn - g_tp) / 2).add_((g_tp + g_fp - g_fn) / 2)
            if valid is not None:
                grad_probs.mul_(valid)
            grad_input = activation_backward(grad_probs, probs, complement, ctx.activation).to(ctx.input_dtype)
        return grad_input, grad_target, None, None, None


def _false_negative_terms(complement: Tensor, target: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``max(q - (1 - t), 0)``: ``1 - t`` is exact for hard labels, so ``t = 1`` gives ``q`` itself."""
    one_minus_target = torch.neg(target, out=out).add_(1.0)
    return torch.sub(complement, one_minus_target, out=one_minus_target).clamp_min_(0.0)


def activate(input: Tensor, activation: str) -> Tuple[Tensor, Tensor]:
    """Fresh float32 (float64 for float64 input) probabilities ``p`` and complements ``q = 1 - p``.

    ``"sigmoid"``: ``p = sigmoid(x)``, ``q = sigmoid(-x)``; no clamp needed (``sigmoid(+-inf)`` is
    1 or 0 with gradient 0). ``"softmax"``: logits clamped to +-``LOGIT_LIMIT`` (``inf - inf`` would
    be NaN), ``q`` summed from the other classes' exponentials through exclusive cumulative sums
    (no subtraction). ``"identity"``: given probabilities clamped to [0, 1], ``q = 1 - p``.
    """
    dtype = compute_dtype(input.dtype)
    if activation == "identity":
        probs = input.to(dtype).clamp(0.0, 1.0)
        return probs, torch.neg(probs).add_(1.0)
    if activation == "softmax":
        return _softmax_with_complement(saturate(input))
    logits = input if input.dtype == dtype else input.to(dtype)
    return torch.sigmoid(logits), torch.neg(logits).sigmoid_()


def _softmax_with_complement(logits: Tensor) -> Tuple[Tensor, Tensor]:
    """Softmax over dim 1 and, per class, the probability mass of all the other classes."""
    exps = logits.sub(logits.amax(dim=1, keepdim=True)).exp_()
    total = exps.sum(dim=1, keepdim=True)
    before = exps.cumsum(dim=1)
    after = exps.flip(1).cumsum(dim=1).flip(1)
    others = torch.zeros_like(exps)
    others[:, 1:] = before[:, :-1]
    others[:, :-1] += after[:, 1:]
    return exps.div_(total), others.div_(total)


def activation_backward(grad_probs: Tensor, probs: Tensor, complement: Tensor, activation: str) -> Tensor:
    """Gradient with respect to the logits from the gradient with respect to :func:`activate`'s ``p``."""
    if activation == "identity":
        return grad_probs
    if activation == "softmax":
        return torch.ops.aten._softmax_backward_data(grad_probs, probs, 1, probs.dtype)
    return grad_probs.mul_(probs).mul_(complement)


def overlap_statistics(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    from_logits: bool,
    valid: Optional[Tensor],
    per_image: bool,
    global_batch: bool = False,
) -> Overlap:
    """Soft TP, FP and FN per class from logits (or probabilities) and a flattened target.

    Args:
        input: ``(N, C, *S)`` logits (probabilities if ``from_logits`` is False), any float dtype.
        target: ``(N, C, S)`` float targets in [0, 1], 0 at ignored pixels (:func:`flatten_target`).
        mode: ``"multiclass"`` uses a softmax over ``C``, the other modes a sigmoid per channel.
        from_logits: Whether ``input`` holds logits.
        valid: Boolean mask broadcastable to ``(N, C, S)``, or ``None``.
        per_image: Sum over each image separately (``(N, C)`` statistics) instead of over the batch
            (``(C,)``, the batch Dice of segmentation-models-pytorch).
        global_batch: Add the sums over all ``torch.distributed`` ranks (see :func:`all_reduce_sums`).

    Returns:
        :class:`Overlap` of float32 tensors (float64 for float64 input).
    """
    activation = "identity" if not from_logits else ("softmax" if mode == "multiclass" else "sigmoid")
    flat = input.reshape(input.shape[0], input.shape[1], -1)
    if activation == "sigmoid":  # fused Triton kernels for CUDA tensors, else _OverlapSums (stableloss._fused)
        sums = _fused.overlap_sums(flat, target, valid, per_image)
    else:
        sums = _OverlapSums.apply(flat, target, valid, activation, (2,) if per_image else (0, 2))
    if global_batch:
        sums = all_reduce_sums(sums)
    return Overlap(*sums.unbind(0))


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the backward sums the gradient over ranks too (each rank's loss used the sum)."""

    @staticmethod
    def forward(ctx, sums):  # type: ignore[override]
        import torch.distributed as dist

        total = sums.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        import torch.distributed as dist

        total = grad.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def all_reduce_sums(sums: Tensor) -> Tensor:
    """Sum ``sums`` over all ranks of the default process group, with gradient.

    Without an initialised process group (or with one rank) this returns ``sums`` unchanged, so
    the same code runs with and without ``torchrun``. The backward pass all-reduces the gradient
    too: each rank's input gradient is then ``world_size`` times its slice of the single-process
    gradient, the same convention as a loss averaged over the local batch, so that after
    ``DistributedDataParallel`` averages parameter gradients over ranks they equal those of one
    process on the concatenated batch.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return sums
    return _AllReduceSum.apply(sums)
