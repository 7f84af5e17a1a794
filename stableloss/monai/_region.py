"""The overlap sums of MONAI's Dice, Jaccard, generalized Dice and Tversky losses, in float32.

MONAI forms ``TP = sum(p t)`` and gets ``FP = sum(p) - TP`` and ``FN = sum(t) - TP`` by subtraction,
in the input's dtype (float16 sums overflow past 65504; a near-perfect prediction's small loss is
lost to rounding). Here every sum is float32 and of non-negative terms, from ``p`` and ``q = 1 - p``
(:mod:`._prepare`). Per pixel, with ``d = p (1 - t) - q t`` (which is ``p - t``, exact for hard
labels):

=================================  =====================  ==============================
MONAI option                       ``TP``                 ``E = P + G - 2 TP``
=================================  =====================  ==============================
default (``ord=1``)                ``p t``                ``p (1 - t) + q t``
``soft_label=True``                ``min(p, t)``          ``|d|``
``squared_pred=True``              ``p t``                ``d^2``
=================================  =====================  ==============================

with ``P = sum p^ord`` and ``G = sum t^ord``, so MONAI's Dice denominator is ``2 TP + E`` and its
loss ``1 - (2 TP + s_nr) / (2 TP + E + s_dr)`` is formed as ``(E + s_dr - s_nr) / (2 TP + E + s_dr)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from stableloss.monai._prepare import Prepared


class Counts(NamedTuple):
    """Float32 sums over the reduced axes: ``TP`` and the error mass ``E`` (see the module docstring)."""

    tp: Tensor
    errors: Tensor


def _sum(x: Tensor, axes: list[int]) -> Tensor:
    return x.sum(dim=axes, dtype=torch.promote_types(x.dtype, torch.float32))


def _parts(prepared: Prepared) -> tuple[Tensor, Tensor, Tensor]:
    """``p``, ``q`` and ``t`` of inputs prepared with their complements (as every region loss prepares them)."""
    probs, complement, target, _ = prepared
    if complement is None:
        raise ValueError("the region counts need the complements: prepare(..., with_complement=True)")
    return probs, complement, target


def signed_error(prepared: Prepared) -> Tensor:
    """``d = p (1 - t) - q t``, equal to ``p - t`` and exact where ``t`` is 0 or 1."""
    probs, complement, target = _parts(prepared)
    return probs * (1.0 - target) - complement * target


def counts(prepared: Prepared, axes: list[int], *, squared: bool = False, soft_label: bool = False) -> Counts:
    """``TP`` and ``E`` summed over ``axes`` for MONAI's ``squared_pred`` and ``soft_label`` options."""
    probs, complement, target = _parts(prepared)
    if squared:
        return Counts(_sum(probs * target, axes), _sum(signed_error(prepared).square(), axes))
    if soft_label:
        return Counts(_sum(torch.minimum(probs, target), axes), _sum(signed_error(prepared).abs(), axes))
    return Counts(_sum(probs * target, axes), _sum(probs * (1.0 - target) + complement * target, axes))


def false_counts(prepared: Prepared, axes: list[int], *, soft_label: bool) -> tuple[Tensor, Tensor]:
    """``FP`` and ``FN`` separately (Tversky): ``sum p (1 - t)`` and ``sum q t``, or their soft-label forms.

    With ``soft_label`` they are ``sum max(d, 0)`` and ``sum max(-d, 0)`` (MONAI's ``P - TP`` and
    ``G - TP`` with ``TP = sum min(p, t)``).
    """
    probs, complement, target = _parts(prepared)
    if soft_label:
        error = signed_error(prepared)
        return _sum(error.clamp_min(0.0), axes), _sum((-error).clamp_min(0.0), axes)
    return _sum(probs * (1.0 - target), axes), _sum(complement * target, axes)


def dice_from_counts(c: Counts, *, smooth_nr: float, smooth_dr: float, jaccard: bool) -> Tensor:
    """MONAI's Dice (or Jaccard) loss per row, without forming ``1 - score`` by subtraction.

    Dice: ``1 - (2 TP + s_nr) / (2 TP + E + s_dr)``; Jaccard: ``1 - (2 TP + s_nr) / (2 TP + 2 E + s_dr)``.
    """
    errors = 2.0 * c.errors if jaccard else c.errors
    return (errors + (smooth_dr - smooth_nr)) / (2.0 * c.tp + errors + smooth_dr)
