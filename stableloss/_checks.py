"""Argument checks and their messages, in one place.

Every public loss validates its arguments through these helpers so that a bad call fails the same
way everywhere: a ``ValueError`` (bad value) or ``TypeError`` (bad type) whose message names the
argument, what was expected and what was received. Checks that need to look at tensor *values*
(target ranges) cost a host synchronisation; they run only when ``validate_args=True`` and are
skipped while ``torch.compile`` traces the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional, Union

import torch
from torch import Tensor

MODES = ("binary", "multiclass", "multilabel")


def is_compiling() -> bool:
    """True while ``torch.compile`` (dynamo) traces the calling code."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    return False  # pragma: no cover - torch < 2.3 without torch.compiler.is_compiling


def check_mode(mode: object) -> str:
    """Return ``mode`` if it is one of :data:`MODES`, else raise naming it."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, one of {MODES}; received {type(mode).__name__} {mode!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; received {mode!r}")
    return mode


def check_number(
    name: str,
    value: object,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float after checking its type, finiteness and range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number; received {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; received {value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be in {interval}; received {value!r}")
    return value


def check_optional_number(name: str, value: object, **bounds: object) -> Optional[float]:
    """Like :func:`check_number` but lets ``None`` through."""
    return None if value is None else check_number(name, value, **bounds)  # type: ignore[arg-type]


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise naming it."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool; received {type(value).__name__} {value!r}")
    return value


def check_ignore_index(ignore_index: object) -> Optional[int]:
    """``ignore_index`` is ``None`` or an int label value."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(
            f"ignore_index must be None or an int; received {type(ignore_index).__name__} {ignore_index!r}"
        )
    return ignore_index


def check_classes(classes: object, mode: str) -> Optional[Tensor]:
    """``classes`` (smp's class subset) as a long tensor, or ``None``."""
    if classes is None:
        return None
    if mode == "binary":
        raise ValueError("classes must be None with mode='binary' (there is one class); received " f"{classes!r}")
    values = as_float_list("classes", classes)
    if not values or any(v != int(v) or v < 0 for v in values):
        raise ValueError(f"classes must be a non-empty sequence of class indices >= 0; received {classes!r}")
    return torch.tensor([int(v) for v in values], dtype=torch.long)


def as_float_list(name: str, values: object) -> list:
    """Read a 1-D sequence or tensor of numbers, raising a message that names ``name``."""
    if isinstance(values, Tensor):
        if values.dim() != 1:
            raise ValueError(f"{name} must be 1-D; received a tensor of shape {tuple(values.shape)}")
        return [float(v) for v in values.detach().cpu().tolist()]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of numbers; received {type(values).__name__} {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must hold numbers; received {values!r}")
        out.append(float(v))
    return out


def check_weights(name: str, weights: object, *, mode: str) -> Optional[Tensor]:
    """Per-class weights: finite, >= 0, not all zero; returned as a float32 tensor."""
    if weights is None:
        return None
    if mode == "binary":
        raise ValueError(f"{name} must be None with mode='binary' (there is one class); received {weights!r}")
    values = as_float_list(name, weights)
    if not values or any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{name} must be finite, >= 0 and not all zero; received {values!r}")
    return torch.tensor(values, dtype=torch.float32)


def check_alpha(alpha: object) -> Union[None, float, Tensor]:
    """Focal ``alpha``: ``None``, a scalar in [0, 1], or one weight >= 0 per class."""
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        return check_number("alpha", alpha, low=0.0, high=1.0)
    values = as_float_list("alpha", alpha)
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"alpha must be a scalar in [0, 1] or per-class weights >= 0; received {values!r}")
    return torch.tensor(values, dtype=torch.float32)


def check_class_count(name: str, values: Optional[Tensor], num_classes: int) -> None:
    """A per-class tensor must have one entry per input channel."""
    if values is not None and values.numel() != num_classes:
        raise ValueError(
            f"{name} must have one entry per class ({num_classes}, the input's channel count); "
            f"received {values.numel()} entries"
        )


def check_input(input: object, *, mode: str, from_logits: bool = True) -> Tensor:
    """The prediction: a floating tensor ``(N, C, *S)`` with 1 to 3 spatial dims."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor; received {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor (logits or probabilities); received dtype {input.dtype}")
    if input.dim() < 3 or input.dim() > 5:
        raise ValueError(
            "input must have shape (N, C, *spatial) with 1 to 3 spatial dims (3 to 5 dims in all); "
            f"received shape {tuple(input.shape)} ({input.dim()} dims)"
        )
    if mode == "binary" and input.shape[1] != 1:
        raise ValueError(
            f"input must have 1 channel with mode='binary' (shape (N, 1, *spatial)); received shape "
            f"{tuple(input.shape)}. For {input.shape[1]} classes use mode='multiclass' or 'multilabel'."
        )
    if mode == "multiclass" and input.shape[1] < 2 and from_logits:
        raise ValueError(
            "input must have at least 2 channels with mode='multiclass' (a softmax over 1 channel is constant); "
            f"received shape {tuple(input.shape)}. For one foreground class use mode='binary'."
        )
    if input.numel() == 0:
        raise ValueError(f"input must not be empty; received shape {tuple(input.shape)}")
    return input


def check_target(
    target: object,
    input: Tensor,
    *,
    mode: str,
    ignore_index: Optional[int],
    validate_args: bool,
) -> Tensor:
    """The target, checked against ``input`` for the given mode (see the losses' ``Shape:`` blocks)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor; received {type(target).__name__}")
    if target.device != input.device:
        raise ValueError(f"target must be on the input's device ({input.device}); received device {target.device}")
    shape, target_shape = tuple(input.shape), tuple(target.shape)
    spatial = (shape[0],) + shape[2:]
    if mode == "binary":
        if target_shape not in (shape, spatial):
            raise ValueError(
                f"target must have shape {shape} or {spatial} with mode='binary' (input shape {shape}); "
                f"received shape {target_shape}"
            )
    elif mode == "multilabel":
        if target_shape != shape:
            raise ValueError(
                f"target must have the input's shape {shape} with mode='multilabel'; received shape {target_shape}"
            )
    else:
        if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
            raise TypeError(
                "target must hold integer class indices (torch.long or another integer dtype) with "
                f"mode='multiclass'; received dtype {target.dtype}"
            )
        if target_shape != spatial:
            raise ValueError(
                f"target must have shape {spatial} (N, *spatial) of class indices with mode='multiclass' "
                f"(input shape {shape}); received shape {target_shape}"
            )
    if target.is_complex():
        raise TypeError(f"target must be real; received dtype {target.dtype}")
    if validate_args and not is_compiling():
        _check_target_values(target, num_classes=shape[1], mode=mode, ignore_index=ignore_index)
    return target


def _check_target_values(target: Tensor, *, num_classes: int, mode: str, ignore_index: Optional[int]) -> None:
    """One pass over the target (``aminmax``) and one host sync; NaN propagates into the bounds."""
    if target.dtype == torch.bool:
        return
    valid = target if ignore_index is None else target[target != ignore_index]
    if valid.numel() == 0:
        return
    low_t, high_t = torch.aminmax(valid)
    if mode == "multiclass":
        low, high = int(low_t), int(high_t)
        if low < 0 or high >= num_classes:
            extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
            raise ValueError(
                f"target must hold class indices in [0, {num_classes - 1}]{extra} for an input with "
                f"{num_classes} channels; received values in [{low}, {high}]"
            )
        return
    low, high = float(low_t), float(high_t)
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"target must not contain NaN with mode={mode!r}; received a target with NaN values")
    if low < 0 or high > 1:
        extra = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
        raise ValueError(
            f"target must hold values in [0, 1]{extra} with mode={mode!r}; received values in [{low}, {high}]"
        )


# --- distance maps and surface metrics -------------------------------------------------------

BACKENDS = ("auto", "torch", "scipy")


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; received {value!r}")
    return value


def check_spatial_tensor(name: str, value: object, *, min_dims: int = 1, max_dims: int = 3) -> Tensor:
    """A tensor ``(N, C, *S)`` with ``min_dims`` to ``max_dims`` spatial dims."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; received {type(value).__name__}")
    if value.is_complex():
        raise TypeError(f"{name} must be real; received dtype {value.dtype}")
    if not min_dims + 2 <= value.dim() <= max_dims + 2:
        raise ValueError(
            f"{name} must have shape (N, C, *spatial) with {min_dims} to {max_dims} spatial dims "
            f"({min_dims + 2} to {max_dims + 2} dims in all); received shape {tuple(value.shape)} ({value.dim()} dims)"
        )
    return value


def check_spacing(spacing: object, spatial_dims: int) -> tuple:
    """``spacing``: None (1 per dim), one positive number, or one per spatial dim; a tuple of floats."""
    if spacing is None:
        return (1.0,) * spatial_dims
    if isinstance(spacing, (int, float)) and not isinstance(spacing, bool):
        values = [float(spacing)] * spatial_dims
    else:
        if hasattr(spacing, "tolist") and not isinstance(spacing, Tensor):  # numpy arrays
            spacing = spacing.tolist()
        values = as_float_list("spacing", spacing)
        if len(values) != spatial_dims:
            raise ValueError(
                f"spacing must have one value per spatial dim ({spatial_dims}); received {len(values)} values {values!r}"
            )
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"spacing must hold finite values > 0; received {values!r}")
    return tuple(values)


def check_binary(name: str, value: Tensor, *, validate_args: bool) -> Tensor:
    """A 0/1 tensor (bool, integer or float), returned as bool; values checked with ``validate_args``."""
    if value.dtype == torch.bool:
        return value
    if validate_args and not is_compiling() and value.numel() > 0:
        bad = (value != 0) & (value != 1)  # NaN is != 0 and != 1
        if bool(bad.any()):
            example = value[bad][0].item()
            raise ValueError(
                f"{name} must be binary (values 0 and 1, or bool); received a value {example!r} "
                f"(dtype {value.dtype}). Threshold soft values first, e.g. {name} > 0.5."
            )
    return value != 0


def check_num_classes(num_classes: object) -> int:
    """``num_classes``: an int >= 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1; received {num_classes!r}")
    return num_classes


def check_labels(labels: object, num_classes: object, ignore_index: Optional[int], *, validate_args: bool) -> int:
    """Class-index maps ``(N, *S)`` for :func:`~stableloss.signed_distance_map` with ``num_classes``."""
    num_classes = check_num_classes(num_classes)
    if not isinstance(labels, Tensor):
        raise TypeError(f"target must be a torch.Tensor; received {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"target must hold integer class indices when num_classes is given; received dtype {labels.dtype}"
        )
    if not 2 <= labels.dim() <= 4:
        raise ValueError(
            "target must have shape (N, *spatial) with 1 to 3 spatial dims when num_classes is given; "
            f"received shape {tuple(labels.shape)}"
        )
    if validate_args and not is_compiling() and labels.numel() > 0:
        valid = labels if ignore_index is None else labels[labels != ignore_index]
        if valid.numel() > 0:
            low, high = (int(v) for v in torch.aminmax(valid))
            if low < 0 or high >= num_classes:
                extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
                raise ValueError(
                    f"target must hold class indices in [0, {num_classes - 1}]{extra} for num_classes={num_classes}; "
                    f"received values in [{low}, {high}]"
                )
    return num_classes


def check_same_shape(name: str, value: Tensor, other_name: str, other: Tensor) -> None:
    """``value`` must have the shape and device of ``other``."""
    if value.shape != other.shape:
        raise ValueError(
            f"{name} must have the shape of {other_name} {tuple(other.shape)}; received shape {tuple(value.shape)}"
        )
    if value.device != other.device:
        raise ValueError(f"{name} must be on the device of {other_name} ({other.device}); received device {value.device}")
