"""The region-loss pipeline: validate -> overlap statistics -> per-class score -> reduce.

Dice, Jaccard, Tversky, focal-Tversky and log-cosh Dice are one computation with different
options (:class:`~stableloss._options.RegionOptions`): the functions build the options from their
keywords, the classes hold them, and both call :func:`region_loss`.

.. math::

    TI_c = \\frac{TP_c + s}{TP_c + \\alpha FP_c + \\beta FN_c + s}, \\qquad
    \\ell_c = (1 - TI_c)^{\\gamma} \\;\\; (\\text{or } (-\\log TI_c)^{\\gamma}), \\qquad
    \\mathcal{L} = \\operatorname{mean}_c\\, T(\\ell_c)

with ``T`` the identity (log-cosh Dice: ``log cosh``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from stableloss import _checks
from stableloss._activation import compute_dtype
from stableloss._module import OptionsModule
from stableloss._options import RegionOptions
from stableloss._overlap import Overlap, flatten_target, overlap_statistics
from stableloss._reduction import reduce_class_losses

Transform = Callable[[Tensor], Tensor]


def activation_of(mode: str, from_logits: bool) -> str:
    """``"softmax"`` for multiclass logits, ``"sigmoid"`` for other logits, ``"identity"`` for probabilities."""
    if not from_logits:
        return "identity"
    return "softmax" if mode == "multiclass" else "sigmoid"


def tversky_score(overlap: Overlap, *, alpha: float, beta: float, smooth: float, eps: float, log_loss: bool) -> Tensor:
    """``1 - TI`` (or ``-log TI``) from soft counts, without forming ``1 - TI`` by subtraction.

    .. math::

        TI = \\frac{TP + s}{\\max(TP + \\alpha FP + \\beta FN + s, \\epsilon)}, \\qquad
        1 - TI = \\frac{\\alpha FP + \\beta FN}{TP + \\alpha FP + \\beta FN + s}

    NaN counts (a NaN prediction) give NaN.
    """
    tp, fp, fn = overlap
    errors = alpha * fp + beta * fn
    denominator = tp + errors + smooth
    clamped = denominator.clamp_min(eps)
    excess = torch.where(denominator < eps, clamped - tp - smooth, errors)  # clamped - (TP + s)
    if not log_loss:
        return excess / clamped
    # -log(max(TI, eps)) = log1p(excess / (TP + s)): accurate for TI near 1 and near 0. Below eps
    # the clamp makes it the constant -log(eps) (gradient 0), with a safe divisor on that branch.
    numerator = tp + smooth
    below = numerator < eps * clamped
    return torch.where(below, -math.log(eps), torch.log1p(excess / torch.where(below, 1.0, numerator)))


def focal_power(loss: Tensor, gamma: float) -> Tensor:
    """``loss ** gamma`` with a finite gradient at ``loss == 0`` for ``gamma < 1``.

    The derivative ``gamma * loss ** (gamma - 1)`` is infinite at 0, where a perfect prediction
    sits; the guard makes the value 0 there with gradient 0 (the product with the vanishing
    ``d loss / d logit`` has limit 0 too). NaN stays NaN.
    """
    if gamma == 1.0:
        return loss
    zero = loss == 0
    return torch.where(zero, 0.0, torch.where(zero, 1.0, loss).pow(gamma))


def region_class_losses(input: Tensor, target: Tensor, options: RegionOptions) -> Tensor:
    """The unreduced loss per class: ``(C,)``, or ``(N, C)`` with ``per_image``.

    Validates ``input`` and ``target`` (not the options: they were validated when built).
    """
    input, target = _checks.check_pair(input, target, mode=options.mode, from_logits=options.from_logits,
                                       ignore_index=options.ignore_index, validate_args=options.validate_args)
    flat_target, valid = flatten_target(target, mode=options.mode, num_classes=input.shape[1],
                                        ignore_index=options.ignore_index, dtype=compute_dtype(input.dtype))
    overlap = overlap_statistics(input, flat_target, activation=activation_of(options.mode, options.from_logits),
                                 valid=valid, per_image=options.per_image, global_batch=options.global_batch,
                                 fused=options.fused)
    loss = tversky_score(overlap, alpha=options.alpha, beta=options.beta, smooth=options.smooth, eps=options.eps,
                         log_loss=options.log_loss)
    loss = focal_power(loss, options.gamma)
    if options.ignore_empty:  # emptiness is a property of the target: NaN counts stay NaN
        loss = torch.where(overlap.target_sum == 0, 0.0, loss)
    return loss


def region_loss(
    input: Tensor,
    target: Tensor,
    options: RegionOptions,
    *,
    classes: Optional[Tensor] = None,
    class_weights: Optional[Tensor] = None,
    transform: Optional[Transform] = None,
) -> Tensor:
    """The whole pipeline: per-class losses, an optional per-class ``transform``, then the reduction.

    Args:
        input, target: As for :func:`~stableloss.dice_loss`.
        options: Validated options.
        classes, class_weights: The options as tensors on the input's device (a module's buffers);
            built from ``options`` when not given.
        transform: Applied to the per-class losses before the reduction (log-cosh Dice).
    """
    losses = region_class_losses(input, target, options)
    num_classes = losses.shape[-1]
    if options.class_weights is not None:
        _checks.check_class_count("class_weights", len(options.class_weights), num_classes)
    _checks.check_class_indices(options.classes, num_classes)
    if transform is not None:
        losses = transform(losses)
    return reduce_class_losses(
        losses, options.reduction,
        classes=classes if classes is not None else option_tensor(options.classes, torch.long, losses.device),
        class_weights=(class_weights if class_weights is not None
                       else option_tensor(options.class_weights, losses.dtype, losses.device)),
    )


def option_tensor(values: Optional[Sequence[float]], dtype: torch.dtype, device: torch.device) -> Optional[Tensor]:
    """A per-class option as a tensor, or ``None``."""
    return None if values is None else torch.tensor(values, dtype=dtype, device=device)


class RegionLossModule(OptionsModule):
    """Shell of the region-loss classes: options as attributes, a one-line forward."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return region_loss(input, target, self.options, classes=self.option_tensor("classes"),
                           class_weights=self.option_tensor("class_weights"), transform=self.transform)

    def transform(self, losses: Tensor) -> Tensor:
        """The per-class transform applied before the reduction: none here (log-cosh Dice overrides it)."""
        return losses
