"""MONAI's ``DiceLoss``, ``GeneralizedDiceLoss`` and ``TverskyLoss``, with float32 sums.

Same constructors (names, order, defaults), inputs and ``reduction="none"`` shapes as MONAI 1.6;
the sums are :mod:`stableloss.monai._region`'s, so float16 inputs and logits of +-inf give finite
numbers where MONAI's float16 sums overflow.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from stableloss import _checks
from stableloss.monai._hard import hard_sums
from stableloss.monai._options import MonaiRegionLoss, Weight, check_weight, class_weights
from stableloss.monai._prepare import prepare, reduce_axes, reduce_monai
from stableloss.monai._region import counts, dice_from_counts, false_counts

W_TYPES = ("simple", "square", "uniform")


def dice_loss(input: Tensor, target: Tensor, *, include_background: bool = True, to_onehot_y: bool = False,
              sigmoid: bool = False, softmax: bool = False, other_act: Optional[Callable] = None,
              squared_pred: bool = False, jaccard: bool = False, reduction: str = "mean", smooth_nr: float = 1e-5,
              smooth_dr: float = 1e-5, batch: bool = False, weight: Optional[Tensor] = None,
              soft_label: bool = False, ignore_index: Optional[int] = None) -> Tensor:
    """MONAI's Dice loss (see :class:`DiceLoss`), as a function; arguments are not re-checked."""
    hard = hard_sums(input, target, include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                     softmax=softmax, other_act=other_act, ignore_index=ignore_index, batch=batch,
                     squared_pred=squared_pred)
    if hard is not None:  # the CPU fast path (stableloss.monai._hard)
        overlap = hard.counts
    else:
        prepared = prepare(input, target, include_background=include_background, to_onehot_y=to_onehot_y,
                           sigmoid=sigmoid, softmax=softmax, other_act=other_act, ignore_index=ignore_index)
        overlap = counts(prepared, reduce_axes(input.dim(), batch), squared=squared_pred, soft_label=soft_label)
    loss = dice_from_counts(overlap, smooth_nr=smooth_nr, smooth_dr=smooth_dr, jaccard=jaccard)
    weights = class_weights(weight, loss.shape[-1])
    if weights is not None:
        loss = loss * weights.to(loss)
    return reduce_monai(loss, reduction, input.dim())


def generalized_dice_loss(input: Tensor, target: Tensor, *, include_background: bool = True,
                          to_onehot_y: bool = False, sigmoid: bool = False, softmax: bool = False,
                          other_act: Optional[Callable] = None, w_type: str = "square", reduction: str = "mean",
                          smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False,
                          soft_label: bool = False) -> Tensor:
    """MONAI's generalized Dice loss (see :class:`GeneralizedDiceLoss`), as a function."""
    hard = hard_sums(input, target, include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                     softmax=softmax, other_act=other_act, ignore_index=None, batch=batch)
    if hard is not None:  # the CPU fast path (stableloss.monai._hard)
        overlap = hard.counts
        ground = hard.target.sum(dim=(0, 2) if batch else 2)
    else:
        prepared = prepare(input, target, include_background=include_background, to_onehot_y=to_onehot_y,
                           sigmoid=sigmoid, softmax=softmax, other_act=other_act)
        axes = reduce_axes(input.dim(), batch)
        overlap = counts(prepared, axes, soft_label=soft_label)
        ground = prepared.target.sum(dim=axes, dtype=overlap.tp.dtype)
    weights = class_volume_weights(ground, w_type, batch=batch)
    class_dim = 0 if batch else 1
    errors = (overlap.errors * weights).sum(class_dim, keepdim=True)
    denominator = ((2.0 * overlap.tp + overlap.errors) * weights).sum(class_dim, keepdim=True) + smooth_dr
    return reduce_monai((errors + (smooth_dr - smooth_nr)) / denominator, reduction, input.dim())


def class_volume_weights(ground: Tensor, w_type: str, *, batch: bool) -> Tensor:
    """Crum et al.'s class weights ``1 / G^2`` (``"square"``), ``1 / G`` (``"simple"``) or 1 (``"uniform"``).

    As MONAI does, an empty class (infinite weight) gets the largest finite weight of its image
    (of the batch with ``batch=True``) instead; the weights carry no gradient.
    """
    ground = ground.detach()
    if w_type == "uniform":
        return torch.ones_like(ground)
    weights = ground.reciprocal() if w_type == "simple" else (ground * ground).reciprocal()
    infinite = torch.isinf(weights)
    weights = torch.where(infinite, 0.0, weights)
    largest = weights.amax() if batch else weights.amax(dim=1, keepdim=True)
    return torch.where(infinite, largest, weights)


def tversky_loss(input: Tensor, target: Tensor, *, include_background: bool = True, to_onehot_y: bool = False,
                 sigmoid: bool = False, softmax: bool = False, other_act: Optional[Callable] = None,
                 alpha: float = 0.5, beta: float = 0.5, reduction: str = "mean", smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5, batch: bool = False, soft_label: bool = False,
                 ignore_index: Optional[int] = None) -> Tensor:
    """MONAI's Tversky loss (see :class:`TverskyLoss`), as a function."""
    hard = hard_sums(input, target, include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                     softmax=softmax, other_act=other_act, ignore_index=ignore_index, batch=batch)
    if hard is not None:  # the CPU fast path (stableloss.monai._hard)
        tp, fp, fn = hard.tp, hard.fp, hard.fn
    else:
        prepared = prepare(input, target, include_background=include_background, to_onehot_y=to_onehot_y,
                           sigmoid=sigmoid, softmax=softmax, other_act=other_act, ignore_index=ignore_index)
        axes = reduce_axes(input.dim(), batch)
        tp = counts(prepared, axes, soft_label=soft_label).tp
        fp, fn = false_counts(prepared, axes, soft_label=soft_label)
    errors = alpha * fp + beta * fn
    loss = (errors + (smooth_dr - smooth_nr)) / (tp + errors + smooth_dr)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss  # "none": (B, C), or (C,) with batch=True


class DiceLoss(MonaiRegionLoss):
    """MONAI's ``DiceLoss``, finite under float16: the same constructor, inputs and numbers in float32.

    .. math::

        \\ell_{b,c} = 1 - \\frac{2 \\sum_i p_i t_i + s_{nr}}{\\sum_i p_i^{o} + \\sum_i t_i^{o} + s_{dr}}

    per image ``b`` (or over the batch with ``batch=True``) and class ``c``, with ``o = 2`` for
    ``squared_pred``; ``jaccard=True`` gives ``1 - (2 TP + s_nr) / (2 (P + G - TP) + s_dr)``;
    ``soft_label=True`` uses ``TP = sum min(p, t)``. The sums are float32 of non-negative terms
    (``stableloss.monai._region``), the loss float32 whatever the input dtype.

    Args:
        include_background: Score channel 0 (False drops it from input and target).
        to_onehot_y: The target is ``(B, 1, *S)`` class indices, one-hot encoded here.
        sigmoid, softmax, other_act: The activation of ``input`` (at most one; none: ``input`` holds
            probabilities).
        squared_pred: Square ``p`` and ``t`` in the denominator.
        jaccard: Jaccard (IoU) loss instead of Dice.
        reduction: ``"mean"`` or ``"sum"`` over images and classes, or ``"none"``.
        smooth_nr, smooth_dr: Added to the numerator and the denominator.
        batch: Sum over the batch before the score (one score per class).
        weight: One number, or one per scored class (without background if
            ``include_background=False``), multiplying each class's loss; unused for one channel.
        soft_label: Soft-label counts (Wang and Blaschko 2023).
        ignore_index: Target value (in a ``(B, 1, *S)`` target) or channel (one-hot) left out.

    Shape:
        - input: ``(B, C, *S)`` logits (or probabilities without an activation), any float dtype.
        - target: ``(B, 1, *S)`` indices with ``to_onehot_y``, else ``(B, C, *S)``.
        - output: a float32 scalar, or ``(B, C', 1, ...)`` (``(1, C', 1, ...)`` with ``batch``) for ``"none"``.

    Example:
        >>> loss = DiceLoss(softmax=True, to_onehot_y=True)
        >>> logits = torch.tensor([[[[2.0, -1.0]], [[-1.0, 2.0]]]]).half()
        >>> target = torch.tensor([[[[0, 1]]]])
        >>> round(loss(logits, target).item(), 4)
        0.0474
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Optional[Callable] = None,
        squared_pred: bool = False,
        jaccard: bool = False,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: Weight = None,
        soft_label: bool = False,
        ignore_index: Optional[int] = None,
    ) -> None:
        super().__init__()
        self._set_common(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, reduction=reduction, smooth_nr=smooth_nr,
                         smooth_dr=smooth_dr, batch=batch, soft_label=soft_label)
        self.squared_pred = _checks.check_bool("squared_pred", squared_pred)
        self.jaccard = _checks.check_bool("jaccard", jaccard)
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        self.class_weight: Optional[Tensor]
        self.register_buffer("class_weight", check_weight("weight", weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return dice_loss(input, target, squared_pred=self.squared_pred, jaccard=self.jaccard,
                         weight=self.class_weight, ignore_index=self.ignore_index, **self._activation())


class GeneralizedDiceLoss(MonaiRegionLoss):
    """MONAI's ``GeneralizedDiceLoss`` (Sudre et al. 2017), finite under float16.

    .. math::

        \\ell_b = 1 - \\frac{2 \\sum_c w_c \\sum_i p_{ci} t_{ci} + s_{nr}}
                           {\\sum_c w_c \\sum_i (p_{ci} + t_{ci}) + s_{dr}}, \\qquad
        w_c = 1 / (\\textstyle\\sum_i t_{ci})^2 \\; (\\text{"square"})

    ``w_type="simple"``: ``1 / sum t``; ``"uniform"``: 1. An empty class takes the largest weight
    of its image (of the batch with ``batch=True``), as in MONAI.

    Args:
        w_type: ``"square"``, ``"simple"`` or ``"uniform"``.
        Others: As for :class:`DiceLoss` (which also has ``squared_pred``, ``jaccard``, ``weight`` and
            ``ignore_index``; this loss has not).

    Shape:
        - output: a float32 scalar, or ``(B, 1, 1, ...)`` (``(1, 1, ...)`` with ``batch``) for ``"none"``.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Optional[Callable] = None,
        w_type: str = "square",
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool = False,
    ) -> None:
        super().__init__()
        self._set_common(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, reduction=reduction, smooth_nr=smooth_nr,
                         smooth_dr=smooth_dr, batch=batch, soft_label=soft_label)
        self.w_type = _checks.check_choice("w_type", getattr(w_type, "value", w_type), W_TYPES)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return generalized_dice_loss(input, target, w_type=self.w_type, **self._activation())


class TverskyLoss(MonaiRegionLoss):
    """MONAI's ``TverskyLoss`` (Salehi et al. 2017), finite under float16.

    .. math::

        \\ell_{b,c} = 1 - \\frac{TP + s_{nr}}{TP + \\alpha FP + \\beta FN + s_{dr}}

    with ``alpha`` weighting false positives and ``beta`` false negatives (``alpha = beta = 0.5``
    is Dice), ``FP = sum p (1 - t)`` and ``FN = sum (1 - p) t`` in float32.

    Args:
        alpha, beta: Weights of false positives and false negatives (finite, >= 0).
        Others: As for :class:`DiceLoss`.

    Shape:
        - output: a float32 scalar, or ``(B, C')`` (``(C',)`` with ``batch``) for ``"none"``, as MONAI.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Optional[Callable] = None,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool = False,
        ignore_index: Optional[int] = None,
    ) -> None:
        super().__init__()
        self._set_common(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                         softmax=softmax, other_act=other_act, reduction=reduction, smooth_nr=smooth_nr,
                         smooth_dr=smooth_dr, batch=batch, soft_label=soft_label)
        self.alpha = _checks.check_number("alpha", alpha, low=0.0)
        self.beta = _checks.check_number("beta", beta, low=0.0)
        self.ignore_index = _checks.check_ignore_index(ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tversky_loss(input, target, alpha=self.alpha, beta=self.beta, ignore_index=self.ignore_index,
                            **self._activation())
