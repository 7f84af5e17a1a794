"""MONAI's ``FocalLoss``, finite for every logit: the sigmoid and softmax focal terms in log space.

MONAI computes the sigmoid term as ``exp(gamma * logsigmoid(-x (2t - 1))) * (x - x t - logsigmoid(x))``
and the softmax term as ``-(1 - exp(log_softmax))^gamma * log_softmax * t``, in float32; a logit of
+-inf (float16 overflow) makes both NaN. Here the logits are first clamped to +-65504 (a saturated
prediction, gradient passed straight through), the cross-entropy is ``(1 - t) softplus(x) + t softplus(-x)``
and ``1 - p`` is ``-expm1(log p)``; the values are MONAI's to float32 rounding.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stableloss import _checks
from stableloss._activation import compute_dtype, saturate
from stableloss._focal_math import focal_factor, one_minus_pt
from stableloss._overlap import _hard_path_applies
from stableloss._sigmoid_focal import sigmoid_cross_entropy
from stableloss._sigmoid_focal_hard import HardSigmoidFocal, hard_label_sign
from stableloss.monai._options import Weight, check_common, check_weight
from stableloss.monai._prepare import check_input, class_labels, ignore_mask, one_hot_target, single_channel_warning

Alpha = Union[float, Sequence[float], Tensor, None]


def sigmoid_focal_terms(logits: Tensor, target: Tensor, gamma: float, alpha: Optional[Tensor]) -> Tensor:
    """Per-element ``alpha_t (1 - p_t)^gamma CE`` with MONAI's factor ``sigmoid(-x (2t - 1))^gamma``.

    ``alpha`` 0-d: ``alpha_t = t alpha + (1 - t)(1 - alpha)``; ``(C,)``: ``alpha_c`` where ``t == 1``, else 1.
    """
    loss = sigmoid_cross_entropy(logits, target)
    if gamma != 0.0:
        loss = (F.logsigmoid(-logits * (2.0 * target - 1.0)) * gamma).exp() * loss
    if alpha is None:
        return loss
    alpha = alpha.to(loss)
    if alpha.dim() == 0:
        return (target * alpha + (1.0 - target) * (1.0 - alpha)) * loss
    per_class = alpha.view([-1] + [1] * (target.dim() - 2))
    return torch.where(target == 1, per_class, 1.0) * loss


def hard_sigmoid_focal_terms(logits: Tensor, target: Tensor, gamma: float, alpha: Optional[Tensor]) -> Optional[Tensor]:
    """:func:`sigmoid_focal_terms` for a target of 0s and 1s through the core's focal function, or ``None``.

    For a hard label MONAI's factor ``sigmoid(-x (2t - 1))^gamma`` is ``(1 - p_t)^gamma``, the core's
    (:mod:`stableloss._sigmoid_focal_hard`: a hand-written backward, a few passes); for a soft label the two
    differ, and so does autograd's route. CPU and eager only (the hardness check reads the target).
    """
    sign = hard_label_sign(logits, target, None)
    if sign is None:
        return None
    weight = None
    if alpha is not None:
        alpha = alpha.to(target)
        if alpha.dim() == 0:
            weight = torch.mul(target, 2.0 * alpha - 1.0).add_(1.0 - alpha)  # t alpha + (1 - t)(1 - alpha)
        else:
            weight = torch.where(target == 1, alpha.view([-1] + [1] * (target.dim() - 2)), 1.0)
    return HardSigmoidFocal.apply(logits, target, weight, gamma, None, sign)[0]


def softmax_focal_terms(logits: Tensor, target: Tensor, gamma: float, alpha: Optional[Tensor]) -> Tensor:
    """Per-element ``alpha_c (1 - p_c)^gamma (-log p_c) t_c`` over the channels given (MONAI's softmax form).

    ``alpha`` 0-d: ``1 - alpha`` for channel 0 and ``alpha`` for the others; ``(C,)``: per channel.
    """
    ce = -torch.log_softmax(logits, dim=1)
    loss = focal_factor(one_minus_pt(ce), ce, gamma, None) * ce * target
    if alpha is None:
        return loss
    alpha = alpha.to(loss)
    if alpha.dim() == 0:
        alpha = torch.cat([(1.0 - alpha).view(1), alpha.expand(target.shape[1] - 1)])
    return alpha.view([-1] + [1] * (target.dim() - 2)) * loss


def label_softmax_focal(input: Tensor, target: Tensor, *, include_background: bool, gamma: float,
                        alpha: Optional[Tensor], weight: Optional[Tensor], reduction: str,
                        ignore_index: Optional[int]) -> Tensor:
    """MONAI's softmax focal loss for ``(B, 1, *S)`` class indices, from each pixel's own class only.

    With a one-hot target only the labelled channel of a pixel has a loss,
    ``alpha_c w_c (1 - p_c)^gamma (-log p_c)`` with ``c`` its label, so the terms are formed on
    ``(B, 1, *S)`` (gathered from the log-softmax) instead of ``(B, C, *S)``; ``reduction="none"``
    scatters them back into MONAI's ``(B, C', *S)``. The values and reductions are those of the
    one-hot route (:func:`focal_loss`), which serves every other input.
    """
    num_classes = input.shape[1]
    labels = class_labels(target, num_classes, ignore_index)
    logits = saturate(input)
    mask = ignore_mask(target, ignore_index, logits.dtype)
    first = 0 if include_background else 1
    scored = num_classes - first
    if not include_background and alpha is not None and alpha.dim() == 0:
        warnings.warn("`include_background=False`, scalar `alpha` ignored when using softmax.", stacklevel=3)
        alpha = None
    _check_class_count("alpha", alpha, scored)
    check_focal_weight(weight, scored)
    index = (labels - first).clamp_min(0)
    log_probs = torch.log_softmax(logits[:, first:], dim=1)
    ce = log_probs.gather(1, index).neg_()
    terms = focal_factor(one_minus_pt(ce), ce, gamma, None) * ce
    counted = labels >= first if mask is None else (labels >= first) & (mask > 0)
    class_factor = None
    if alpha is not None:
        alpha = alpha.to(terms)
        class_factor = torch.cat([(1.0 - alpha).view(1), alpha.expand(scored - 1)]) if alpha.dim() == 0 else alpha
    if weight is not None:
        weight = weight.to(terms).expand(scored)
        class_factor = weight if class_factor is None else class_factor * weight
    if class_factor is not None:
        terms = terms * class_factor[index]
    terms = terms * counted
    if reduction == "none":
        return torch.zeros_like(log_probs).scatter(1, index, terms)
    return reduce_focal(terms, reduction, mask, elements=log_probs.numel())


def check_focal_weight(weight: Optional[Tensor], scored: int) -> None:
    """MONAI's checks of ``weight`` against the channels scored."""
    if weight is None:
        return
    if weight.dim() > 0 and scored == 1:
        raise ValueError("weight: one value per class is not supported for a single-channel output; "
                         f"received {weight.shape[0]} values")
    _check_class_count("weight", weight, scored)


def _check_class_count(name: str, values: Optional[Tensor], num_classes: int) -> None:
    if values is not None and values.dim() == 1 and values.shape[0] != num_classes:
        raise ValueError(f"{name} must hold one value per scored channel ({num_classes}); received {values.shape[0]}")


def focal_loss(input: Tensor, target: Tensor, *, include_background: bool = True, to_onehot_y: bool = False,
               gamma: float = 2.0, alpha: Optional[Tensor] = None, weight: Optional[Tensor] = None,
               reduction: str = "mean", use_softmax: bool = False, ignore_index: Optional[int] = None) -> Tensor:
    """MONAI's focal loss (see :class:`FocalLoss`), as a function; arguments are not re-checked."""
    input = check_input(input, min_dims=2)
    num_classes = input.shape[1]
    if (use_softmax and to_onehot_y and num_classes > 1 and isinstance(target, Tensor) and target.dim() == input.dim()
            and target.shape[1] == 1 and target.shape[0] == input.shape[0] and target.shape[2:] == input.shape[2:]
            and _hard_path_applies(input, target)):
        return label_softmax_focal(input, target, include_background=include_background, gamma=gamma, alpha=alpha,
                                   weight=weight, reduction=reduction, ignore_index=ignore_index)
    dtype = compute_dtype(input.dtype)
    logits = input  # clamped where it is used (saturate): the core's focal kernel clamps its own input
    flat_target = target
    if to_onehot_y:
        if num_classes == 1:
            single_channel_warning("to_onehot_y=True")
        else:
            flat_target = one_hot_target(target, num_classes, ignore_index, dtype)
    flat_target = flat_target.to(dtype)
    if not include_background:
        if num_classes == 1:
            single_channel_warning("include_background=False")
        else:
            logits, flat_target = logits[:, 1:], flat_target[:, 1:]
    if flat_target.shape != logits.shape:
        raise ValueError(f"target must have the input's shape {tuple(logits.shape)} after to_onehot_y and "
                         f"include_background; received target shape {tuple(flat_target.shape)}")
    mask = ignore_mask(target, ignore_index, dtype)
    if mask is not None:  # clamped first: an infinite logit times 0 would be NaN
        logits, flat_target = saturate(logits) * mask, flat_target * mask
    scored = flat_target.shape[1]
    if use_softmax:
        if not include_background and alpha is not None and alpha.dim() == 0:
            warnings.warn("`include_background=False`, scalar `alpha` ignored when using softmax.", stacklevel=3)
            alpha = None
        _check_class_count("alpha", alpha, scored)
        loss = softmax_focal_terms(saturate(logits), flat_target, gamma, alpha)
    else:
        _check_class_count("alpha", alpha, scored)
        fast = hard_sigmoid_focal_terms(logits, flat_target, gamma, alpha)
        loss = sigmoid_focal_terms(saturate(logits), flat_target, gamma, alpha) if fast is None else fast
    if mask is not None:
        loss = loss * mask
    if weight is not None:
        check_focal_weight(weight, scored)
        loss = loss * weight.to(loss).view([-1] + [1] * (loss.dim() - 2) if weight.dim() else [])
    return reduce_focal(loss, reduction, mask)


def reduce_focal(loss: Tensor, reduction: str, mask: Optional[Tensor], *, elements: Optional[int] = None) -> Tensor:
    """MONAI's focal reduction: ``"mean"`` divides by the count of unmasked pixels (not times the
    channels), ``"sum"`` sums the per-image, per-channel spatial means, ``"none"`` keeps every element.

    ``elements``: what an unmasked mean divides by when ``loss`` holds the channels already summed
    (``(B, 1, *S)`` terms standing for ``(B, C, *S)``); default ``loss.numel()``.
    """
    if reduction == "none":
        return loss
    spatial = list(range(2, loss.dim()))
    if reduction == "sum":
        if not spatial:  # (B, C) classification output: MONAI's mean over no dims is a mean over all
            return reduce_focal(loss, "mean", mask, elements=elements)
        if mask is None:  # a (B, 1, *S) loss of summed channels too: its spatial means add up the same
            return loss.mean(dim=spatial).sum()
        count = mask.sum(dim=spatial, keepdim=True).clamp_min(torch.finfo(mask.dtype).eps)
        return (loss.sum(dim=spatial, keepdim=True) / count).sum()
    if mask is None:
        return loss.mean() if elements is None else loss.sum() / elements
    return loss.sum() / mask.sum().clamp_min(torch.finfo(mask.dtype).eps)


def check_alpha(alpha: Alpha) -> Optional[Tensor]:
    """``alpha`` as a 0-d or 1-d float32 tensor of values in [0, 1], or ``None``."""
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        return torch.tensor(_checks.check_number("alpha", alpha, low=0.0, high=1.0))
    tensor = check_weight("alpha", alpha)
    if tensor is not None and (tensor > 1).any():
        raise ValueError(f"alpha must hold values in [0, 1]; received {tensor.tolist()}")
    return tensor


class FocalLoss(nn.Module):
    """MONAI's ``FocalLoss`` (Lin et al. 2017), finite for logits of +-inf and under float16.

    .. math::

        \\ell_{b,c,i} = \\alpha_{t} \\, (1 - p_t)^{\\gamma} \\, \\mathrm{CE}(x_{b,c,i}, t_{b,c,i})

    with the sigmoid per channel (``use_softmax=False``) or the softmax over the channels given.

    Args:
        include_background: Score channel 0 (False drops it before the softmax, as MONAI does).
        to_onehot_y: The target is ``(B, 1, *S)`` class indices, one-hot encoded here.
        gamma: Focusing exponent (finite, >= 0).
        alpha: Sigmoid: weight of positives (``1 - alpha`` for negatives) or one per channel
            (positives only); softmax: ``1 - alpha`` for channel 0 and ``alpha`` for the others, or
            one per channel. ``None``: no weighting.
        weight: One number or one per scored channel, multiplying each channel's loss.
        reduction: ``"mean"`` (over every element, or per unmasked pixel with ``ignore_index``),
            ``"sum"`` (of the per-image, per-channel spatial means) or ``"none"``.
        use_softmax: Softmax focal loss instead of the sigmoid one.
        ignore_index: Target value (``(B, 1, *S)``) or channel (one-hot) left out.

    Shape:
        - input: ``(B, C, *S)`` logits, any float dtype, or ``(B, C)`` classification logits as MONAI
          accepts them; target as for :class:`~stableloss.monai.DiceLoss`.
        - output: a float32 scalar, or ``(B, C', *S)`` for ``"none"``.

    Example:
        >>> loss = FocalLoss(to_onehot_y=True, use_softmax=True)
        >>> logits = torch.tensor([[[[float("inf")]], [[0.0]]]], dtype=torch.float16)
        >>> loss(logits, torch.tensor([[[[1]]]])).item()  # MONAI: nan; here the mean of 65504 and 0
        32752.0
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        gamma: float = 2.0,
        alpha: Alpha = None,
        weight: Weight = None,
        reduction: str = "mean",
        use_softmax: bool = False,
        ignore_index: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.reduction = check_common(include_background=include_background, to_onehot_y=to_onehot_y, batch=False,
                                      reduction=reduction)
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.gamma = _checks.check_number("gamma", gamma, low=0.0)
        self.use_softmax = _checks.check_bool("use_softmax", use_softmax)
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        self.alpha: Optional[Tensor]
        self.class_weight: Optional[Tensor]
        self.register_buffer("alpha", check_alpha(alpha))
        self.register_buffer("class_weight", check_weight("weight", weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal_loss(input, target, include_background=self.include_background, to_onehot_y=self.to_onehot_y,
                          gamma=self.gamma, alpha=self.alpha, weight=self.class_weight, reduction=self.reduction,
                          use_softmax=self.use_softmax, ignore_index=self.ignore_index)
