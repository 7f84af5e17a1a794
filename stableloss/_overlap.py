"""The one place that turns (input, target) into overlap statistics: TP, FP and FN per class.

The statistics are computed from three float32 sums per class (and per image, with
``per_image=True``):

.. math::

    P = \\sum_i p_i, \\qquad T = \\sum_i t_i, \\qquad E = \\sum_i |p_i - t_i|

    TP = (P + T - E) / 2, \\qquad FP = (E + P - T) / 2, \\qquad FN = (E - P + T) / 2

For hard labels these equal the textbook :math:`\\sum p t`, :math:`\\sum p (1 - t)` and
:math:`\\sum (1 - p) t`. For soft labels they are the semimetric form of Wang and Blaschko (2023),
used by segmentation-models-pytorch too, whose loss is 0 exactly when ``p == t``. Both FP and FN are
differences bounded by ``E``, so a near-perfect prediction keeps its small loss to float32 precision
instead of losing it in ``1 - score``. The sums are float32 whatever the input dtype, so they never
overflow at 65504 as float16 sums do. They are plain sums, so a distributed run can add them
across ranks before the score is formed.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from stableloss._activation import probabilities


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


def soft_probabilities(input: Tensor, *, mode: str, from_logits: bool, valid: Optional[Tensor]) -> Tensor:
    """Float32 probabilities ``(N, C, S)`` with ignored pixels set to 0."""
    probs = probabilities(input.reshape(input.shape[0], input.shape[1], -1), mode=mode, from_logits=from_logits)
    if valid is not None:
        probs = torch.where(valid, probs, 0.0)
    return probs


def overlap_statistics(probs: Tensor, target: Tensor, *, per_image: bool, global_batch: bool = False) -> Overlap:
    """Soft TP, FP and FN per class from ``(N, C, S)`` float32 probabilities and targets.

    Args:
        probs: ``(N, C, S)`` float32 probabilities, 0 at ignored pixels.
        target: ``(N, C, S)`` float32 targets in [0, 1], 0 at ignored pixels.
        per_image: Sum over each image separately (``(N, C)`` statistics) instead of over the batch
            (``(C,)``, the batch Dice of segmentation-models-pytorch).
        global_batch: Add the sums over all ``torch.distributed`` ranks (see :func:`all_reduce_sums`).

    Returns:
        :class:`Overlap` of float32 tensors.
    """
    dims = (2,) if per_image else (0, 2)
    # probs and target are float32 (float64 for float64 input): the sums accumulate in that dtype.
    pred_sum = probs.sum(dim=dims)
    target_sum = target.sum(dim=dims)
    error_sum = (probs - target).abs().sum(dim=dims)
    if global_batch:
        pred_sum, target_sum, error_sum = all_reduce_sums(torch.stack([pred_sum, target_sum, error_sum])).unbind(0)
    return overlap_from_sums(pred_sum, target_sum, error_sum)


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
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(sums)


def overlap_from_sums(pred_sum: Tensor, target_sum: Tensor, error_sum: Tensor) -> Overlap:
    """:class:`Overlap` from the three sums P, T and E (see the module docstring)."""
    imbalance = pred_sum - target_sum
    # No clamping at 0: rounding can leave -1e-7, and a clamp there would cut the very gradient
    # that moves a completely wrong prediction.
    tp = (pred_sum + target_sum - error_sum) / 2
    fp = (error_sum + imbalance) / 2
    fn = (error_sum - imbalance) / 2
    return Overlap(tp, fp, fn)
