"""The one place that parses and applies ``reduction``."""

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


def reduce_loss(loss: Tensor, reduction: str, weights: Optional[Tensor] = None) -> Tensor:
    """Reduce a tensor of losses.

    Args:
        loss: Losses of any shape, float32 (float64 for float64 inputs).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        weights: Optional non-negative weights broadcastable to ``loss``. With ``"mean"`` the result
            is ``sum(w * loss) / sum(w)`` (0 when every weight is 0); with ``"sum"`` it is
            ``sum(w * loss)``; with ``"none"`` it is ``w * loss``.

    Returns:
        A float32 scalar, or ``loss`` weighted elementwise for ``"none"``.
    """
    if weights is not None:
        weights = torch.broadcast_to(weights.to(loss.dtype), loss.shape)
        loss = loss * weights
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    count = loss.new_tensor(float(loss.numel())) if weights is None else weights.sum()
    return total / count.clamp_min(torch.finfo(loss.dtype).tiny)
