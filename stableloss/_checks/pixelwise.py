"""Checks of the pixelwise losses' tensors: soft binary cross-entropy, soft cross-entropy and MCC.

These losses take what ``torch.nn.functional`` takes rather than a segmentation ``(N, C, *S)`` pair
of a ``mode``: a prediction of any shape with a target of the same shape (soft BCE, MCC), or
scores with a class dimension and integer targets without it (soft cross-entropy).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from stableloss._checks.tensors import check_target_tensor, widen_unsigned
from stableloss._checks.values import is_compiling


def _check_prediction(input: object, what: str) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor; received {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor ({what}); received dtype {input.dtype}")
    if input.numel() == 0:
        raise ValueError(f"input must not be empty; received shape {tuple(input.shape)}")
    return input


def check_same_shape_pair(input: object, target: object, *, what: str, ignore_index: Optional[int],
                          validate_args: bool) -> Tuple[Tensor, Tensor]:
    """A prediction of any shape and a target of values in [0, 1] (or ``ignore_index``) of the same shape.

    A target without the channel dim of a one-channel prediction (``(N, *S)`` for ``(N, 1, *S)``) is
    given that dim. Returns ``(input, target)`` with the target shaped like the input
    (uint16/32/64 targets as int64).
    """
    input = _check_prediction(input, what)
    target = check_target_tensor(target, input)
    shape, target_shape = tuple(input.shape), tuple(target.shape)
    squeezed = shape[:1] + shape[2:] if input.dim() >= 2 and shape[1] == 1 else None
    if target_shape == squeezed and target_shape != shape:
        target = target.unsqueeze(1)
    elif target_shape != shape:
        alternative = "" if squeezed is None else f" or {squeezed}"
        raise ValueError(f"target must have the input's shape {shape}{alternative}; received shape {target_shape}")
    extra = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
    target = widen_unsigned("target", target, expected=f"values in [0, 1]{extra}", validate_args=validate_args)
    if validate_args and not is_compiling() and target.device.type != "meta" and target.dtype != torch.bool:
        _check_unit_values(target, ignore_index, extra)
    return input, target


def _check_unit_values(target: Tensor, ignore_index: Optional[int], extra: str) -> None:
    low, high = (float(v) for v in torch.aminmax(target.detach()))
    if math.isnan(low) or math.isnan(high):
        raise ValueError("target must not contain NaN; received a target with NaN values")
    if 0.0 <= low and high <= 1.0:
        return
    if ignore_index is not None and ignore_index in (low, high):
        kept = target[target != ignore_index]  # only to name the offending range, or to pass
        if kept.numel() == 0:
            return
        low, high = (float(v) for v in torch.aminmax(kept.detach()))
        if 0.0 <= low and high <= 1.0:
            return
    raise ValueError(f"target must hold values in [0, 1]{extra}; received values in [{low}, {high}]")


def check_class_dim_pair(input: object, target: object, *, dim: int, ignore_index: Optional[int],
                         validate_args: bool) -> Tuple[Tensor, Tensor, int]:
    """Scores with a class dimension ``dim`` and integer targets: the input's shape without ``dim``.

    A target with a size-1 dimension at ``dim`` (``(N, 1, *S)``) is accepted too. Returns
    ``(input, target, dim)`` with the target shaped like the input without ``dim`` (int64 for the
    wide unsigned dtypes) and ``dim`` made non-negative.
    """
    input = _check_prediction(input, "logits")
    if not -input.dim() <= dim < input.dim():
        raise ValueError(f"dim must index a dimension of the input (shape {tuple(input.shape)}, {input.dim()} dims); "
                         f"received dim={dim}")
    dim = dim % input.dim()
    target = check_target_tensor(target, input)
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices (torch.long or another integer dtype); "
                        f"received dtype {target.dtype}")
    shape, target_shape = tuple(input.shape), tuple(target.shape)
    reduced = shape[:dim] + shape[dim + 1:]
    kept = shape[:dim] + (1,) + shape[dim + 1:]
    if target_shape == kept and target_shape != reduced:
        target = target.squeeze(dim)
    elif target_shape != reduced:
        raise ValueError(f"target must have shape {reduced} (the input's shape {shape} without dim {dim}) or {kept}; "
                         f"received shape {target_shape}")
    classes = shape[dim]
    extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
    expected = f"class indices in [0, {classes - 1}]{extra} for an input with {classes} classes along dim {dim}"
    target = widen_unsigned("target", target, expected=expected, validate_args=validate_args)
    if validate_args and not is_compiling() and target.device.type != "meta" and target.numel() > 0:
        bad = (target < 0) | (target >= classes)
        if ignore_index is not None:
            bad = bad & (target != ignore_index)
        if bool(bad.any()):
            low, high = (int(v) for v in torch.aminmax(target[bad]))
            raise ValueError(f"target must hold {expected}; received values in [{low}, {high}] outside it")
    return input, target, dim
