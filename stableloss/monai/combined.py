"""MONAI's ``DiceCELoss``, ``DiceFocalLoss`` and ``GeneralizedDiceFocalLoss``: a region term plus a pixel term.

Each composes :mod:`stableloss.monai.dice` and :mod:`stableloss.monai.focal` exactly as MONAI composes
its own classes (which options reach which term included), so the numbers are MONAI's in float32. The
cross-entropy of ``DiceCELoss`` runs on float32 logits clamped to +-65504: finite where MONAI's float16
softmax of an overflowed logit is NaN.

nnU-Net's loss is ``DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)``
(smooth 1e-5, weights 1 and 1): see :func:`nnunet_dice_ce`.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stableloss import _checks
from stableloss._activation import saturate
from stableloss._overlap_hard import clamp_if_needed
from stableloss.monai._options import Weight, check_lambda, check_weight
from stableloss.monai._prepare import one_hot_target, single_channel_warning
from stableloss.monai.dice import DiceLoss, GeneralizedDiceLoss
from stableloss.monai.focal import Alpha, FocalLoss


def _check_pair(input: Tensor, target: Tensor) -> None:
    """MONAI's checks of the combined losses: same number of dims, 1 or C target channels."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"input and target must be torch.Tensors; received {type(input).__name__} and "
                        f"{type(target).__name__}")
    if input.dim() != target.dim():
        raise ValueError(f"target must have as many dims as input (B, 1, *S) indices or (B, C, *S) one-hot; "
                         f"received input {tuple(input.shape)} and target {tuple(target.shape)}")
    if target.shape[1] not in (1, input.shape[1]):
        raise ValueError(f"target must have 1 channel (indices) or as many as input ({input.shape[1]}); "
                         f"received input {tuple(input.shape)} and target {tuple(target.shape)}")


def cross_entropy_term(input: Tensor, target: Tensor, *, weight: Optional[Tensor], reduction: str,
                       label_smoothing: float) -> Tensor:
    """MONAI's ``DiceCELoss.ce``/``bce`` on clamped float32 logits.

    ``C > 1``: cross-entropy with ``(B, 1, *S)`` indices (squeezed) or a ``(B, C, *S)`` target of
    class probabilities; ``C == 1``: binary cross-entropy with logits, ``weight`` as ``pos_weight``.
    """
    # On the CPU the clamp's full-size copy is skipped where it changes nothing (one read instead)
    logits = clamp_if_needed(input) if input.device.type == "cpu" else saturate(input)
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction=reduction,
                                                  pos_weight=None if weight is None else weight.to(logits))
    weight = None if weight is None else weight.to(logits)
    if target.shape[1] == 1:
        return F.cross_entropy(logits, target.squeeze(1).long(), weight=weight, reduction=reduction,
                               label_smoothing=label_smoothing)
    return F.cross_entropy(logits, target.to(logits.dtype), weight=weight, reduction=reduction,
                           label_smoothing=label_smoothing)


class DiceCELoss(nn.Module):
    """MONAI's ``DiceCELoss``: ``lambda_dice * Dice + lambda_ce * CE``, finite under float16.

    The Dice term is :class:`~stableloss.monai.DiceLoss` with the Dice arguments; the cross-entropy
    takes the raw logits (``C == 1``: binary cross-entropy with ``weight`` as ``pos_weight``).

    Note:
        MONAI's ``weight`` reaches the two terms differently, and so it does here (a switch changes
        no number): the Dice term drops ``weight[0]`` when ``include_background=False``, while the
        cross-entropy always weights every class, background included (MONAI issue 7729).

    Args:
        weight: One weight per class (cross-entropy) or a number.
        reduction: ``"mean"`` or ``"sum"`` (MONAI has no ``"none"`` here).
        lambda_dice, lambda_ce: Term weights (>= 0).
        label_smoothing: Cross-entropy label smoothing in [0, 1].
        Others: The Dice term's (see :class:`~stableloss.monai.DiceLoss`).

    Example:
        >>> loss = DiceCELoss(softmax=True, to_onehot_y=True)
        >>> logits = torch.full((1, 2, 4, 4), 0.0, dtype=torch.float16)
        >>> logits[:, 0] = float("inf")  # MONAI: nan
        >>> bool(torch.isfinite(loss(logits, torch.zeros(1, 1, 4, 4))))
        True
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
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        reduction = _checks.check_choice("reduction", getattr(reduction, "value", reduction), ("mean", "sum"))
        ce_weight = check_weight("weight", weight)
        dice_weight = ce_weight if ce_weight is None or include_background or ce_weight.dim() == 0 else ce_weight[1:]
        self.dice = DiceLoss(include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid,
                             softmax=softmax, other_act=other_act, squared_pred=squared_pred, jaccard=jaccard,
                             reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
                             weight=dice_weight)
        self.ce_weight: Optional[Tensor]
        self.register_buffer("ce_weight", ce_weight)
        self.reduction = reduction
        self.label_smoothing = _checks.check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
        self.lambda_dice = check_lambda("lambda_dice", lambda_dice)
        self.lambda_ce = check_lambda("lambda_ce", lambda_ce)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        _check_pair(input, target)
        dice = self.dice(input, target)
        ce = cross_entropy_term(input, target, weight=self.ce_weight, reduction=self.reduction,
                                label_smoothing=self.label_smoothing)
        return self.lambda_dice * dice + self.lambda_ce * ce


class DiceFocalLoss(nn.Module):
    """MONAI's ``DiceFocalLoss``: ``lambda_dice * Dice + lambda_focal * Focal``, finite under float16.

    As in MONAI, the target is one-hot encoded once (``to_onehot_y``), the Dice term takes the
    activation arguments and ``weight``, and the focal term is always the *sigmoid* focal loss
    (MONAI does not pass ``use_softmax``) with ``gamma``, ``alpha`` and ``weight``.

    Args:
        gamma, alpha: The focal term's (see :class:`~stableloss.monai.FocalLoss`).
        lambda_dice, lambda_focal: Term weights (>= 0).
        Others: As for :class:`~stableloss.monai.DiceLoss`.
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
        gamma: float = 2.0,
        weight: Weight = None,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        alpha: Alpha = None,
    ) -> None:
        super().__init__()
        self.dice = DiceLoss(include_background=include_background, to_onehot_y=False, sigmoid=sigmoid,
                             softmax=softmax, other_act=other_act, squared_pred=squared_pred, jaccard=jaccard,
                             reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch, weight=weight)
        self.focal = FocalLoss(include_background=include_background, to_onehot_y=False, gamma=gamma, weight=weight,
                               alpha=alpha, reduction=reduction)
        self.to_onehot_y = _checks.check_bool("to_onehot_y", to_onehot_y)
        self.lambda_dice = check_lambda("lambda_dice", lambda_dice)
        self.lambda_focal = check_lambda("lambda_focal", lambda_focal)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        _check_pair(input, target)
        if self.to_onehot_y:
            if input.shape[1] == 1:
                single_channel_warning("to_onehot_y=True")
            else:
                target = one_hot_target(target, input.shape[1], None, torch.float32)
        return self.lambda_dice * self.dice(input, target) + self.lambda_focal * self.focal(input, target)


class GeneralizedDiceFocalLoss(nn.Module):
    """MONAI's ``GeneralizedDiceFocalLoss``: ``lambda_gdl * GDL + lambda_focal * Focal``, finite under float16.

    The generalized Dice term takes the activation arguments, the (sigmoid) focal term ``gamma`` and
    ``weight``; both one-hot encode the target themselves (``to_onehot_y``), as in MONAI.

    Args:
        w_type: The generalized Dice class weights (see :class:`~stableloss.monai.GeneralizedDiceLoss`).
        gamma, weight: The focal term's.
        lambda_gdl, lambda_focal: Term weights (>= 0).
        Others: As for :class:`~stableloss.monai.DiceLoss`.
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
        gamma: float = 2.0,
        weight: Weight = None,
        lambda_gdl: float = 1.0,
        lambda_focal: float = 1.0,
    ) -> None:
        super().__init__()
        self.generalized_dice = GeneralizedDiceLoss(include_background=include_background, to_onehot_y=to_onehot_y,
                                                    sigmoid=sigmoid, softmax=softmax, other_act=other_act,
                                                    w_type=w_type, reduction=reduction, smooth_nr=smooth_nr,
                                                    smooth_dr=smooth_dr, batch=batch)
        self.focal = FocalLoss(include_background=include_background, to_onehot_y=to_onehot_y, gamma=gamma,
                               weight=weight, reduction=reduction)
        self.lambda_gdl = check_lambda("lambda_gdl", lambda_gdl)
        self.lambda_focal = check_lambda("lambda_focal", lambda_focal)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        _check_pair(input, target)
        return self.lambda_gdl * self.generalized_dice(input, target) + self.lambda_focal * self.focal(input, target)


def nnunet_dice_ce(**overrides: object) -> DiceCELoss:
    """nnU-Net's Dice + cross-entropy (Isensee et al. 2021) as a :class:`DiceCELoss`.

    nnU-Net's ``DC_and_CE_loss``: softmax, batch Dice (sums over the whole batch) without the
    background class, ``smooth = 1e-5`` in numerator and denominator, cross-entropy over every class
    with ``(B, 1, *S)`` label maps, both terms weighted 1. nnU-Net adds ``-Dice`` where MONAI adds
    ``1 - Dice``: the values differ by the constant 1, the gradients are the same.

    Args:
        overrides: Any other :class:`DiceCELoss` argument (e.g. ``weight``).

    Example:
        >>> loss = nnunet_dice_ce()
        >>> loss.dice.batch, loss.dice.include_background, loss.dice.softmax
        (True, False, True)
    """
    settings: dict = dict(include_background=False, to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5,
                          smooth_dr=1e-5, lambda_dice=1.0, lambda_ce=1.0)
    settings.update(overrides)
    return DiceCELoss(**settings)
