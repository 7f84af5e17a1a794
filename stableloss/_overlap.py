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

from typing import Any, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from stableloss import _fused
from stableloss._activation import activate, activation_backward
from stableloss._checks import is_compiling


class Overlap(NamedTuple):
    """Soft confusion counts per class (float32), shape ``(C,)`` or ``(N, C)`` with per-image sums."""

    tp: Tensor
    fp: Tensor
    fn: Tensor

    @property
    def target_sum(self) -> Tensor:
        """Soft count of target pixels, ``TP + FN`` (NaN when the prediction is NaN)."""
        return self.tp + self.fn


def flatten_target(
    target: Tensor, *, mode: str, num_classes: int, ignore_index: Optional[int], dtype: torch.dtype = torch.float32
) -> Tuple[Tensor, Optional[Tensor]]:
    """Bring a target to a float ``(N, C, S)`` tensor and a boolean validity mask.

    Args:
        target: ``(N, 1, *S)`` or ``(N, *S)`` (binary), ``(N, *S)`` class indices (multiclass), or
            ``(N, C, *S)`` (multilabel).
        mode: One of ``"binary"``, ``"multiclass"``, ``"multilabel"``.
        num_classes: ``C``, the input's channel count.
        ignore_index: Target value whose pixels are left out, or ``None``.
        dtype: Floating dtype of the returned target (the dtype the loss computes in).

    Returns:
        ``(target, valid)``: ``target`` is ``(N, C, S)`` (one-hot for multiclass) with ignored pixels
        set to 0; ``valid`` is a bool mask broadcastable to it (``(N, 1, S)`` or ``(N, C, S)``), or
        ``None`` when nothing is ignored.
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


def overlap_sums_reference(input: Tensor, target: Tensor, valid: Optional[Tensor], activation: str, dims: Tuple[int, ...]) -> Tensor:
    """TP, FP and FN stacked as ``(3, ...)``, in plain differentiable operations.

    The definition that :class:`_OverlapSums` computes with less memory; autograd differentiates
    this one to any order, so it serves double backward (``create_graph=True``), ``torch.func`` and
    forward mode. Per pixel, with ``s = sign(max(p - t, 0) - max(q - (1 - t), 0))`` (the sign of
    ``p - t``, right where ``p`` rounds to ``t``; its derivative is 0) and the weights
    ``h = (1 + s) / 2``, ``l = (1 - s) / 2``::

        tp = l p + h t        fp = h (p - t)        fn = l (q - (1 - t))

    which are ``min(p, t)``, ``max(p - t, 0)`` and ``max(q - (1 - t), 0)`` for ``s = +-1``, and
    whose derivatives are those of the first-order backward at every pixel, ties included (``s = 0``
    splits them evenly; ``torch.minimum`` and ``clamp_min`` would split them their own way).
    Ignored pixels have weight 0.
    """
    probs, complement = activate(input, activation)
    fp_terms = (probs - target).clamp_min(0.0)
    fn_terms = (complement - (1.0 - target)).clamp_min(0.0)
    sign = torch.sign(fp_terms - fn_terms)
    high, low = (1.0 + sign) / 2, (1.0 - sign) / 2
    if valid is not None:
        high, low = high * valid, low * valid
    tp = (low * probs + high * target).sum(dim=dims)
    fp = (high * (probs - target)).sum(dim=dims)
    fn = (low * (complement - (1.0 - target))).sum(dim=dims)
    return torch.stack([tp, fp, fn])


class _OverlapSums(torch.autograd.Function):
    """:func:`overlap_sums_reference` with a hand-written first derivative.

    Per pixel, with ``q = 1 - p`` computed without rounding it through ``p`` (``sigmoid(-x)``, or the
    softmax mass of the other classes): ``tp = min(p, t)``, ``fp = max(p - t, 0)`` and
    ``fn = max(q - (1 - t), 0)``. For hard labels each is exactly one of ``p``, ``q`` or 0, so a
    count of tiny terms (the few pixels a near-perfect prediction gets wrong) keeps float32 relative
    precision; ``1 - p`` formed by subtraction would round it to multiples of 6e-8.

    Autograd through these steps would keep several full-size intermediates and allocate as many
    again in the backward pass. Here ``p``, ``q`` and ``sign(p - t)`` (int8) are kept, and the
    backward is ``dL/dp = A + B * sign(p - t)`` (constants per class) followed by the activation's
    backward (``g p q`` for the sigmoid, ``_softmax_backward_data`` for the softmax, identity for the
    clamp of probabilities). Ignored pixels have ``p = 0`` and get gradient 0. When the backward
    itself is differentiated (``create_graph=True``) it differentiates the reference instead.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input: Tensor, target: Tensor, valid: Optional[Tensor], activation: str,  # type: ignore[override]
                dims: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        probs, complement = activate(input, activation)
        if valid is not None:
            probs.mul_(valid)
        work = torch.minimum(probs, target)
        tp = work.sum(dim=dims)
        fp_terms = torch.sub(probs, target).clamp_min_(0.0)
        fp = fp_terms.sum(dim=dims)
        del work
        fn_terms = torch.sub(complement, 1.0 - target).clamp_min_(0.0)  # q - (1 - t): exact q for t = 1
        fn = fn_terms.sum(dim=dims)
        # sign(p - t) = sign(fp - fn) per pixel, right even where p rounds to t; kept as int8.
        sign = fp_terms.sub_(fn_terms).sign_().to(torch.int8)
        return torch.stack([tp, fp, fn]), probs, complement, sign

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, ...]) -> None:
        input, target, valid, activation, dims = inputs
        _, probs, complement, sign = output
        ctx.mark_non_differentiable(probs, complement, sign)
        ctx.set_materialize_grads(False)  # no full-size zeros for the unused auxiliary outputs
        ctx.save_for_backward(input, target, valid, probs, complement, sign)
        ctx.save_for_forward(input, target, valid)
        ctx.activation, ctx.dims = activation, dims

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *unused: Any) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        if grad is None:  # only an auxiliary output was used (grads are not materialised)
            return (None,) * 5
        input, target, valid, probs, complement, sign = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            return _reference_backward(ctx, grad, input, target, valid)
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
            grad_input = activation_backward(grad_probs, probs, complement, ctx.activation).to(input.dtype)
        return grad_input, grad_target, None, None, None


class _OverlapSumsForwardMode(_OverlapSums):
    """:class:`_OverlapSums` with forward-mode AD; dynamo cannot trace a custom ``jvp``, so eager only."""

    @staticmethod
    def jvp(ctx: Any, input_tangent: Optional[Tensor], target_tangent: Optional[Tensor], *unused: Any) -> Tuple[Any, ...]:
        """Forward mode (``torch.func.jvp``, ``jacfwd``, ``hessian``): the reference's directional derivative."""
        input, target, valid = ctx.saved_tensors
        tangents = tuple(torch.zeros_like(p) if t is None else t for p, t in ((input, input_tangent), (target, target_tangent)))
        sums_tangent = torch.func.jvp(lambda x, t: overlap_sums_reference(x, t, valid, ctx.activation, ctx.dims),
                                         (input, target), tangents)[1]
        return sums_tangent, None, None, None


def _reference_backward(ctx: Any, grad: Tensor, input: Tensor, target: Tensor, valid: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
    """Gradients of :func:`overlap_sums_reference`, themselves differentiable."""
    pullback = torch.func.vjp(lambda x, t: overlap_sums_reference(x, t, valid, ctx.activation, ctx.dims), input, target)[1]
    grad_input, grad_target = pullback(grad)
    return (grad_input if ctx.needs_input_grad[0] else None, grad_target if ctx.needs_input_grad[1] else None,
            None, None, None)


def overlap_statistics(
    input: Tensor,
    target: Tensor,
    *,
    activation: str,
    valid: Optional[Tensor],
    per_image: bool,
    global_batch: bool = False,
    fused: Optional[bool] = None,
) -> Overlap:
    """Soft TP, FP and FN per class from logits (or probabilities) and a flattened target.

    Args:
        input: ``(N, C, *S)`` logits (probabilities for ``activation="identity"``), any float dtype.
        target: ``(N, C, S)`` float targets in [0, 1], 0 at ignored pixels (:func:`flatten_target`).
        activation: ``"sigmoid"``, ``"softmax"`` (over ``C``) or ``"identity"``.
        valid: Boolean mask broadcastable to ``(N, C, S)``, or ``None``.
        per_image: Sum over each image separately (``(N, C)`` statistics) instead of over the batch
            (``(C,)``, the batch Dice of segmentation-models-pytorch).
        global_batch: Add the sums over all ``torch.distributed`` ranks (see :func:`all_reduce_sums`).
        fused: The fused-kernel setting of the sigmoid path (:func:`stableloss._fused.use_fused`).

    Returns:
        :class:`Overlap` of float32 tensors (float64 for float64 input).
    """
    flat = input.reshape(input.shape[0], input.shape[1], -1)
    sums = _sums(flat, target, valid, activation, per_image, fused)
    if global_batch:
        sums = all_reduce_sums(sums)
    return Overlap(*sums.unbind(0))


def _sums(flat: Tensor, target: Tensor, valid: Optional[Tensor], activation: str, per_image: bool,
          fused: Optional[bool] = None) -> Tensor:
    """The path for these tensors: fused Triton kernels (CUDA), else :func:`eager_sums`."""
    if activation == "sigmoid" and _fused.use_fused(flat, fused):
        return _fused.overlap_sums(flat, target, valid, per_image, fused=True)
    return eager_sums(flat, target, valid, activation, per_image)


def eager_sums(flat: Tensor, target: Tensor, valid: Optional[Tensor], activation: str, per_image: bool) -> Tensor:
    """``(3, C)`` or ``(3, N, C)`` sums in torch operations: on the CPU, the hard-label paths of
    :mod:`stableloss._overlap_hard` (sigmoid with a 0/1 target; softmax, whose one-hot target is
    always hard); :class:`_OverlapSums` otherwise."""
    if activation == "softmax" and _hard_path_applies(flat, target):
        from stableloss._overlap_hard import hard_softmax_sums

        return hard_softmax_sums(flat, target, valid, per_image)
    if activation == "sigmoid" and _hard_path_applies(flat, target):
        from stableloss._overlap_hard import complement_if_hard, hard_sigmoid_sums

        spare = complement_if_hard(target, valid)
        if spare is not None:
            return hard_sigmoid_sums(flat, target, valid, per_image, spare)
    function = _OverlapSums if is_compiling() else _OverlapSumsForwardMode
    return function.apply(flat, target, valid, activation, (2,) if per_image else (0, 2))[0]


def _hard_path_applies(flat: Tensor, target: Tensor) -> bool:
    """CPU, eager, no gradient for the target, no forward-mode AD or functorch transform."""
    if flat.device.type != "cpu" or target.requires_grad or is_compiling():
        return False
    if torch._C._functorch.is_functorch_wrapped_tensor(flat) or torch._C._functorch.is_functorch_wrapped_tensor(target):
        return False
    return torch.autograd.forward_ad._current_level < 0  # forward-mode AD: the general path has a jvp


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the backward sums the gradient over ranks too (each rank's loss used the sum)."""

    @staticmethod
    def forward(ctx: Any, sums: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        total = sums.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
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
