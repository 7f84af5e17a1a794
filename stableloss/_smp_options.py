"""The option sets of the losses that complete segmentation-models-pytorch's module.

Lovasz, soft binary cross-entropy, soft cross-entropy and MCC: each loss's settings live in a frozen
dataclass, checked and normalised once when it is built, exactly as :mod:`stableloss._options` does
for the Dice and focal families (the functions build one from their keywords; the classes hold one
and expose its fields as validated attributes, :mod:`stableloss._module`). Three of the four take
no ``mode``: their :class:`ModelessSpec` builds them without one.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from stableloss import _checks
from stableloss._options import OptionSpec
from stableloss._reduction import check_reduction

WeightValues = Tuple[Any, ...]
"""A weight tensor's values as nested tuples of Python floats (a frozen, exact copy, of the tensor's shape)."""


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class ModelessSpec(OptionSpec):
    """An :class:`~stableloss._options.OptionSpec` for a loss without ``mode`` (soft BCE, soft CE, MCC)."""

    def build(self, options: Mapping[str, object]) -> Any:
        """The validated options from a caller's keywords; a ``TypeError`` names any unknown one."""
        for name in options:
            if name not in self.accepted:
                raise TypeError(f"{self.owner} got an unexpected keyword argument {name!r}; "
                                f"it takes {', '.join(self.accepted)}")
        return self.options_type(**options, **self.fixed)


def check_weight_tensor(name: str, value: object) -> Optional[WeightValues]:
    """A broadcast weight (``weight``, ``pos_weight``): ``None``, or finite values >= 0 of any shape.

    Accepts a tensor, a NumPy array, a (nested) list or tuple, or a number (read as shape ``(1,)``).
    Returned as nested tuples of Python floats, the exact values, so a module's ``.to(bfloat16)``
    cannot round them; the loss turns them into a float32 tensor of the same shape.
    """
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers; received a tensor of dtype {value.dtype}")
        values = value.detach().to("cpu", torch.float64)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers; received an array of dtype {value.dtype}")
        values = torch.from_numpy(np.asarray(value, dtype=np.float64))
    elif isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        values = torch.tensor([float(value)], dtype=torch.float64)
    elif isinstance(value, (list, tuple)):
        try:
            values = torch.tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{name} must be a tensor, an array, a (nested) list of numbers or a number; "
                            f"received {value!r} ({exc})") from None
        if _has_bool(value):
            raise TypeError(f"{name} must hold real numbers, not bools; received {value!r}")
    else:
        raise TypeError(f"{name} must be None, a tensor, an array, a (nested) list of numbers or a number; "
                        f"received {type(value).__name__} {value!r}")
    if values.dim() == 0:
        values = values.reshape(1)
    if values.numel() == 0:
        raise ValueError(f"{name} must not be empty; received shape {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        low, high = float(values.min()), float(values.max())
        raise ValueError(f"{name} must be finite and >= 0; received values in [{low}, {high}]")
    return _as_tuple(values.tolist())


def _has_bool(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has_bool(v) for v in value)
    return isinstance(value, (bool, np.bool_))


def _as_tuple(values: Any) -> Any:
    return tuple(_as_tuple(v) for v in values) if isinstance(values, list) else float(values)


def check_smooth_factor(value: object) -> Optional[float]:
    """``smooth_factor``: ``None`` (no smoothing) or a number in [0, 1]."""
    return _checks.check_optional_number("smooth_factor", value, low=0.0, high=1.0)


@dataclass(frozen=True)
class LovaszOptions:
    """Options of the Lovasz loss.

    Attributes:
        mode: ``"binary"`` or ``"multilabel"`` (Lovasz hinge over every element, all channels
            together, as segmentation-models-pytorch does) or ``"multiclass"`` (Lovasz-softmax, one
            extension per class present, averaged).
        per_image: One loss per image, then the mean over images (default: one over the batch).
        ignore_index: Target value whose pixels are left out.
        from_logits: ``input`` holds logits (True) or probabilities (False; binary and multilabel
            then use the errors ``|t - p|`` instead of the hinge).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.
    """

    mode: str
    per_image: bool = False
    ignore_index: Optional[int] = None
    from_logits: bool = True
    validate_args: bool = True

    def __post_init__(self) -> None:
        if _checks.is_compiling():
            return
        _checks.check_mode(self.mode)
        for flag in ("per_image", "from_logits", "validate_args"):
            _set(self, flag, _checks.check_bool(flag, getattr(self, flag)))
        _set(self, "ignore_index", _checks.check_ignore_index(self.ignore_index))


@dataclass(frozen=True)
class SoftBCEOptions:
    """Options of the soft binary cross-entropy (segmentation-models-pytorch's ``SoftBCEWithLogitsLoss``).

    Attributes:
        weight: Weight of every element, broadcast to the input's shape (``None``: 1).
        ignore_index: Target value whose elements contribute 0 (they still count in the mean).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        smooth_factor: Label smoothing ``s`` in [0, 1]: targets become ``t (1 - s) + (1 - t) s``.
        pos_weight: Weight of the positive term, broadcast to the input's shape (``None``: 1).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.
    """

    weight: Optional[WeightValues] = None
    ignore_index: Optional[int] = -100
    reduction: str = "mean"
    smooth_factor: Optional[float] = None
    pos_weight: Optional[WeightValues] = None
    validate_args: bool = True

    def __post_init__(self) -> None:
        if _checks.is_compiling():
            return
        _set(self, "weight", check_weight_tensor("weight", self.weight))
        _set(self, "ignore_index", _checks.check_ignore_index(self.ignore_index))
        _set(self, "reduction", check_reduction(self.reduction))
        _set(self, "smooth_factor", check_smooth_factor(self.smooth_factor))
        _set(self, "pos_weight", check_weight_tensor("pos_weight", self.pos_weight))
        _set(self, "validate_args", _checks.check_bool("validate_args", self.validate_args))


@dataclass(frozen=True)
class SoftCrossEntropyOptions:
    """Options of the soft (label-smoothed) cross-entropy.

    Attributes:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        smooth_factor: Label smoothing ``epsilon`` in [0, 1]; ``None`` is 0.
        ignore_index: Target value whose pixels contribute 0 (they still count in the mean).
        dim: The class dimension of the input.
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.
    """

    reduction: str = "mean"
    smooth_factor: Optional[float] = None
    ignore_index: Optional[int] = -100
    dim: int = 1
    validate_args: bool = True

    def __post_init__(self) -> None:
        if _checks.is_compiling():
            return
        _set(self, "reduction", check_reduction(self.reduction))
        _set(self, "smooth_factor", check_smooth_factor(self.smooth_factor))
        _set(self, "ignore_index", _checks.check_ignore_index(self.ignore_index))
        _set(self, "dim", _checks.check_int("dim", self.dim))
        _set(self, "validate_args", _checks.check_bool("validate_args", self.validate_args))

    @property
    def epsilon(self) -> float:
        """The smoothing as a number (``None`` is 0)."""
        return 0.0 if self.smooth_factor is None else self.smooth_factor


@dataclass(frozen=True)
class MCCOptions:
    """Options of the Matthews correlation coefficient loss.

    Attributes:
        eps: Added to each of the four counts, > 0 (keeps the coefficient defined when a class is
            empty or everything is predicted as one class).
        validate_args: Check the target's values (a host sync); skipped under ``torch.compile``.
    """

    eps: float = 1e-5
    validate_args: bool = True

    def __post_init__(self) -> None:
        if _checks.is_compiling():
            return
        _set(self, "eps", _checks.check_number("eps", self.eps, low=0.0, low_inclusive=False))
        _set(self, "validate_args", _checks.check_bool("validate_args", self.validate_args))


def weight_tensor(values: Optional[WeightValues], device: torch.device) -> Optional[Tensor]:
    """A weight option as a float32 tensor on ``device``, or ``None``."""
    return None if values is None else torch.tensor(values, dtype=torch.float32, device=device)

