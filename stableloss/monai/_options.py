"""Checks of the MONAI-style constructor arguments, with messages that name the argument."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from stableloss import _checks
from stableloss._reduction import check_reduction
from stableloss.monai._prepare import check_activation_options

Weight = Union[Sequence[float], float, int, Tensor, None]


def check_weight(name: str, weight: Weight) -> Optional[Tensor]:
    """``weight`` as a float32 0-d or 1-d tensor of non-negative finite values, or ``None``."""
    if weight is None:
        return None
    try:
        tensor = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a number, a sequence of numbers or a tensor; received "
                        f"{type(weight).__name__}") from None
    if tensor.dim() > 1:
        raise ValueError(f"{name} must be a number or one value per class (0-d or 1-d); received shape "
                         f"{tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ValueError(f"{name} must hold finite values >= 0; received {tensor.tolist()}")
    return tensor


def class_weights(weight: Optional[Tensor], num_classes: int, *, name: str = "weight") -> Optional[Tensor]:
    """A per-class weight ``(C,)`` for ``C`` scored classes (MONAI: a number is repeated; one class: unused)."""
    if weight is None or num_classes == 1:
        return None
    if weight.dim() == 0:
        return weight.expand(num_classes)
    if weight.shape[0] != num_classes:
        raise ValueError(f"{name} must hold one value per scored class ({num_classes}; with "
                         f"include_background=False the background class 0 is not scored); received "
                         f"{weight.shape[0]} values")
    return weight


def check_common(*, include_background: object, to_onehot_y: object, batch: object, reduction: object,
                 reductions: Sequence[str] = ("mean", "sum", "none")) -> str:
    """The flags every MONAI loss takes; returns the checked ``reduction``."""
    for name, value in (("include_background", include_background), ("to_onehot_y", to_onehot_y), ("batch", batch)):
        _checks.check_bool(name, value)
    reduction = getattr(reduction, "value", reduction)  # MONAI's LossReduction enum
    if tuple(reductions) == ("mean", "sum", "none"):
        return check_reduction(reduction)
    return _checks.check_choice("reduction", reduction, reductions)


def check_smooth(smooth_nr: object, smooth_dr: object) -> tuple[float, float]:
    """``smooth_nr`` and ``smooth_dr`` as finite numbers >= 0."""
    return (_checks.check_number("smooth_nr", smooth_nr, low=0.0), _checks.check_number("smooth_dr", smooth_dr, low=0.0))


def check_lambda(name: str, value: object) -> float:
    """A term weight (``lambda_dice``, ``lambda_ce``, ...): a finite number >= 0, as MONAI requires."""
    return _checks.check_number(name, value, low=0.0)


class MonaiRegionLoss(nn.Module):
    """Shared constructor checks: activation flags, common flags, smoothing."""

    def _set_common(self, *, include_background: bool, to_onehot_y: bool, sigmoid: bool, softmax: bool,
                    other_act: Optional[Callable], reduction: object, smooth_nr: float, smooth_dr: float,
                    batch: bool, soft_label: bool) -> None:
        check_activation_options(_checks.check_bool("sigmoid", sigmoid), _checks.check_bool("softmax", softmax),
                                 other_act)
        self.reduction = check_common(include_background=include_background, to_onehot_y=to_onehot_y, batch=batch,
                                      reduction=reduction)
        self.include_background, self.to_onehot_y, self.batch = include_background, to_onehot_y, batch
        self.sigmoid, self.softmax, self.other_act = sigmoid, softmax, other_act
        self.smooth_nr, self.smooth_dr = check_smooth(smooth_nr, smooth_dr)
        self.soft_label = _checks.check_bool("soft_label", soft_label)

    def _activation(self) -> dict:
        return dict(include_background=self.include_background, to_onehot_y=self.to_onehot_y, sigmoid=self.sigmoid,
                    softmax=self.softmax, other_act=self.other_act, reduction=self.reduction,
                    smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, batch=self.batch, soft_label=self.soft_label)
