"""Argument checks and their messages, in one place.

Every public loss validates its arguments through these helpers so that a bad call fails the same
way everywhere: a ``ValueError`` (bad value) or ``TypeError`` (bad type) whose message names the
argument, what was expected and what was received.

Settings (``smooth``, ``alpha``, ``class_weights``, ...) are checked **once**, when a loss is built
(:mod:`stableloss._options`), never per forward. They accept what segmentation-models-pytorch
users pass: Python numbers, NumPy scalars and arrays, 0-d and 1-d tensors, lists and tuples; a
tensor is checked exactly like a list. Checks that look at tensor *values* (target ranges) cost a
host synchronisation; they run only when ``validate_args=True`` and are skipped while
``torch.compile`` traces the loss and for meta tensors.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

MODES = ("binary", "multiclass", "multilabel")


def is_compiling() -> bool:
    """True while ``torch.compile`` (dynamo) traces the calling code."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    return False  # pragma: no cover - torch < 2.3 without torch.compiler.is_compiling


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"Tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"


def _numbers(values: Tuple[float, ...]) -> str:
    """``[0.2, -1.0]``: numbers as a short list (float32 values read from a tensor print as typed)."""
    return "[" + ", ".join(f"{v:.7g}" if not math.isfinite(v) or v != int(v) or abs(v) >= 1e16 else f"{v:.1f}"
                           for v in values) + "]"


def _scalar(value: object) -> object:
    """A 0-d tensor or 0-d array as the Python number it holds; anything else unchanged."""
    if isinstance(value, (Tensor, np.ndarray)) and value.ndim == 0:
        return value.item()
    return value


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_mode(mode: object) -> str:
    """Return ``mode`` if it is one of :data:`MODES`, else raise naming it."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, one of {MODES}; received {_describe(mode)}")
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
    """Return ``value`` as a Python float after checking its type, finiteness and range.

    Accepts Python and NumPy real numbers and 0-d real tensors; not bools.
    """
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; received {_describe(value)}")
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
    """Return ``value`` as a Python bool if it is a bool (``np.bool_`` and 0-d bool tensors too)."""
    value = _scalar(value)
    if not _is_bool(value):
        raise TypeError(f"{name} must be a bool; received {_describe(value)}")
    return bool(value)


def check_int(name: str, value: object, *, low: Optional[int] = None) -> int:
    """Return ``value`` as a Python int (NumPy integers and 0-d integer tensors too), not a bool."""
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; received {_describe(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; received {int(value)}")
    return int(value)


def check_ignore_index(ignore_index: object) -> Optional[int]:
    """``ignore_index`` is ``None`` or an integer label value."""
    value = _scalar(ignore_index)
    if value is None:
        return None
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"ignore_index must be None or an int; received {_describe(value)}")
    return int(value)


def check_choice(name: str, value: object, choices: Tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming it."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}; received {value!r}")
    return value


def as_number_tuple(name: str, values: object) -> Tuple[float, ...]:
    """Read a 1-D sequence, NumPy array or tensor of real numbers as a tuple of floats.

    A tensor or array is read exactly like a list: its values are checked by the caller.
    """
    if isinstance(values, (Tensor, np.ndarray)):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one entry per class); received {_describe(values)}")
        if (values.dtype == torch.bool or values.dtype == np.bool_
                or (isinstance(values, Tensor) and values.is_complex()) or np.iscomplexobj(values)):
            raise TypeError(f"{name} must hold real numbers; received {_describe(values)}")
        items = values.detach().cpu().tolist() if isinstance(values, Tensor) else values.tolist()
    elif isinstance(values, (list, tuple)):
        items = [_scalar(v) for v in values]
    else:
        raise TypeError(f"{name} must be a sequence, array or 1-D tensor of numbers; received {_describe(values)}")
    if any(_is_bool(v) or not isinstance(v, numbers.Real) for v in items):
        raise TypeError(f"{name} must hold real numbers; received {list(items)!r}")
    return tuple(float(v) for v in items)


def check_classes(classes: object, mode: str) -> Optional[Tuple[int, ...]]:
    """``classes`` (smp's class subset): distinct class indices >= 0, or ``None``."""
    if classes is None:
        return None
    if mode == "binary":
        raise ValueError(f"classes must be None with mode='binary' (there is one class); received {_describe(classes)}")
    values = as_number_tuple("classes", classes)
    if not values or any(v != int(v) or v < 0 for v in values):
        raise ValueError(f"classes must be a non-empty sequence of class indices >= 0; received {_numbers(values)}")
    indices = tuple(int(v) for v in values)
    if len(set(indices)) != len(indices):
        raise ValueError(f"classes must not name a class twice; received {list(indices)!r}")
    return indices


def check_weights(name: str, weights: object, *, mode: str) -> Optional[Tuple[float, ...]]:
    """Per-class weights: finite, >= 0, not all zero."""
    if weights is None:
        return None
    if mode == "binary":
        raise ValueError(f"{name} must be None with mode='binary' (there is one class); received {_describe(weights)}")
    values = as_number_tuple(name, weights)
    if not values or any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{name} must be finite, >= 0 and not all zero; received {_numbers(values)}")
    return values


def check_alpha(alpha: object) -> Union[None, float, Tuple[float, ...]]:
    """Focal ``alpha``: ``None``, a scalar in [0, 1], or one finite weight >= 0 per class."""
    alpha = _scalar(alpha)
    if alpha is None:
        return None
    if isinstance(alpha, numbers.Real) and not _is_bool(alpha):
        return check_number("alpha", alpha, low=0.0, high=1.0)
    values = as_number_tuple("alpha", alpha)
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"alpha must be a scalar in [0, 1] or per-class weights >= 0; received {_numbers(values)}")
    return values


def check_class_count(name: str, count: Optional[int], num_classes: int) -> None:
    """A per-class option must have one entry per input channel."""
    if count is not None and count != num_classes:
        raise ValueError(
            f"{name} must have one entry per class ({num_classes}, the input's channel count); received {count} entries"
        )


def check_class_indices(classes: Optional[Tuple[int, ...]], num_classes: int) -> None:
    """``classes`` must index the input's channels."""
    if classes is not None and max(classes) >= num_classes:
        raise ValueError(f"classes must be indices below {num_classes} (the input's channels); received {list(classes)}")


def check_input(input: object, *, mode: str, from_logits: bool = True) -> Tensor:
    """The prediction: a floating tensor ``(N, C, *S)`` with 0 to 3 spatial dims, or ``(N,)`` for binary."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor; received {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor (logits or probabilities); received dtype {input.dtype}")
    if input.dim() > 5 or input.dim() < (1 if mode == "binary" else 2):
        raise ValueError(
            "input must have shape (N, C, *spatial) with 0 to 3 spatial dims (2 to 5 dims in all), or (N,) with "
            f"mode='binary'; received shape {tuple(input.shape)} ({input.dim()} dims) with mode={mode!r}"
        )
    if mode == "binary" and input.dim() > 1 and input.shape[1] != 1:
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


def check_target(target: object, input: Tensor, *, mode: str, ignore_index: Optional[int], validate_args: bool) -> Tensor:
    """The target, checked against ``input`` (already ``(N, C, *S)``) for the given mode."""
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor; received {type(target).__name__}")
    if target.device != input.device:
        raise ValueError(f"target must be on the input's device ({input.device}); received device {target.device}")
    if target.is_complex():
        raise TypeError(f"target must be real; received dtype {target.dtype}")
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
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(
                "target must hold integer class indices (torch.long or another integer dtype) with "
                f"mode='multiclass'; received dtype {target.dtype}"
            )
        if target_shape != spatial:
            raise ValueError(
                f"target must have shape {spatial} (N, *spatial) of class indices with mode='multiclass' "
                f"(input shape {shape}); received shape {target_shape}"
            )
    if validate_args and not is_compiling() and target.device.type != "meta":
        check_target_values(target, num_classes=shape[1], mode=mode, ignore_index=ignore_index)
    return target


def check_target_values(target: Tensor, *, num_classes: int, mode: str, ignore_index: Optional[int]) -> None:
    """Target values in range: one ``aminmax`` pass (no copy) and one host sync.

    Only when a value lies outside the range is a second pass made, leaving out ``ignore_index``.
    NaN propagates into the bounds and is reported.
    """
    if target.dtype == torch.bool or target.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(target))
    if mode == "multiclass":
        good_low, good_high = 0.0, float(num_classes - 1)
    else:
        if math.isnan(low) or math.isnan(high):
            raise ValueError(f"target must not contain NaN with mode={mode!r}; received a target with NaN values")
        good_low, good_high = 0.0, 1.0
    if good_low <= low and high <= good_high:
        return
    if ignore_index is not None and ignore_index in (low, high):
        kept = target[target != ignore_index]  # the rare path (a copy): an extreme value is ignore_index
        if kept.numel() == 0:
            return
        low, high = (float(v) for v in torch.aminmax(kept))
        if good_low <= low and high <= good_high:
            return
    if mode == "multiclass":
        extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise ValueError(
            f"target must hold class indices in [0, {num_classes - 1}]{extra} for an input with "
            f"{num_classes} channels; received values in [{int(low)}, {int(high)}]"
        )
    extra = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
    raise ValueError(f"target must hold values in [0, 1]{extra} with mode={mode!r}; received values in [{low}, {high}]")


def check_pair(input: object, target: object, *, mode: str, from_logits: bool, ignore_index: Optional[int],
               validate_args: bool) -> Tuple[Tensor, Tensor]:
    """Check a prediction and its target; return them with the input as ``(N, C, *S)``.

    A binary input of shape ``(N,)`` (classification, detection) becomes ``(N, 1)``; its target
    may be ``(N,)`` or ``(N, 1)``.
    """
    input = check_input(input, mode=mode, from_logits=from_logits)
    if input.dim() == 1:
        input = input.unsqueeze(1)
    target = check_target(target, input, mode=mode, ignore_index=ignore_index, validate_args=validate_args)
    return input, target
