"""Checks of settings: numbers, flags, choices and per-class sequences (NumPy and tensors accepted)."""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

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


def is_traced(tensor: Tensor) -> bool:
    """Whether ``tensor``'s values cannot be read (no checks, no NumPy round trip): under ``torch.compile``,
    inside a ``torch.func`` transform (``vmap``, ``grad``: a functorch-wrapped tensor), or on the meta device."""
    return (is_compiling() or tensor.device.type == "meta"
            or bool(torch._C._functorch.is_functorch_wrapped_tensor(tensor)))


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

    Accepts Python and NumPy real numbers and 0-d real tensors; not bools. While ``torch.compile``
    traces, the value is returned unchecked: it may be symbolic (settings are checked when built).
    """
    if is_compiling():
        return value  # type: ignore[return-value]
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


def check_optional_bool(name: str, value: object) -> Optional[bool]:
    """Like :func:`check_bool` but lets ``None`` through."""
    return None if value is None else check_bool(name, value)


def check_int(name: str, value: object, *, low: Optional[int] = None) -> int:
    """Return ``value`` as a Python int (NumPy integers and 0-d integer tensors too), not a bool."""
    value = _scalar(value)
    expected = "an int" if low is None else f"an int >= {low}"
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {expected}; received {_describe(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be {expected}; received {int(value)}")
    return int(value)


def check_choices(name: str, values: object, allowed: Sequence) -> tuple:
    """Return ``values`` as a tuple if it is a non-empty sequence drawn from ``allowed``, else raise."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a non-empty sequence of {tuple(allowed)}; received {values!r}")
    values = tuple(values)
    # compared by type too: True is not the spatial dim 1, and 1.0 is not the mode count 1
    if not values or any(not any(type(v) is type(a) and v == a for a in allowed) for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of {tuple(allowed)}; received {list(values)}")
    return values


def check_ignore_index(ignore_index: object) -> Optional[int]:
    """``ignore_index`` is ``None`` or an integer label value."""
    value = _scalar(ignore_index)
    if value is None:
        return None
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"ignore_index must be None or an int; received {_describe(value)}")
    return int(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming it."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; received {value!r}")
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
