"""The one place that parses and applies ``reduction``, and selects and weights classes."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: object) -> str:
    """Return ``reduction`` if it is one of :data:`REDUCTIONS`, else raise naming it."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; received {reduction!r}")
    return reduction


def reduce_loss(loss: Tensor, reduction: str, weights: Optional[Tensor] = None, count: Optional[Tensor] = None) -> Tensor:
    """Reduce a tensor of losses.

    Args:
        loss: Losses of any shape, float32 (float64 for float64 inputs).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weights: Optional non-negative weights broadcastable to ``loss``. With ``"mean"`` the result
            is ``sum(w * loss) / sum(w)`` (0 when every weight is 0); with ``"sum"`` it is
            ``sum(w * loss)``; with ``"none"`` it is ``w * loss``.
        count: The divisor of ``"mean"`` when it is not the number (or weight) of the elements,
            e.g. the number (or total weight) of non-ignored pixels; where it is 0, so is the sum,
            and the mean is 0.

    Returns:
        A scalar, or ``loss`` weighted elementwise for ``"none"``.
    """
    if weights is not None:
        weights = torch.broadcast_to(weights.to(loss.dtype), loss.shape)
        loss = loss * weights
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if count is None:
        count = loss.new_tensor(float(loss.numel())) if weights is None else weights.sum()
    return total / count.to(loss.dtype).clamp_min(torch.finfo(loss.dtype).tiny)


def reduce_class_losses(
    losses: Tensor, reduction: str, *, classes: Optional[Tensor] = None, class_weights: Optional[Tensor] = None
) -> Tensor:
    """Select ``classes`` (last dim), weight by ``class_weights`` and reduce ``(C,)`` or ``(N, C)`` losses.

    Args:
        losses: ``(C,)`` or ``(N, C)`` per-class losses.
        reduction: ``"mean"`` (weighted mean), ``"sum"`` or ``"none"``.
        classes: Long tensor of class indices on ``losses``' device, or ``None`` for all.
        class_weights: Float tensor ``(C,)`` on ``losses``' device, or ``None``.
    """
    if classes is not None:
        losses = losses.index_select(-1, classes)
        class_weights = None if class_weights is None else class_weights.index_select(0, classes)
    return reduce_loss(losses, reduction, class_weights)
