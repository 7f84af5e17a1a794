"""Checks of a loss's tensors: the prediction, the target, their shapes and the target's values."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from stableloss._checks.values import is_compiling

WIDE_UNSIGNED = tuple(dtype for dtype in (getattr(torch, f"uint{bits}", None) for bits in (16, 32, 64)) if dtype is not None)
"""torch's 16- to 64-bit unsigned dtypes: few ops take them (no min/max, ``<``, ``masked_fill`` or type
promotion), so a target of one of them (NIfTI label files often hold uint16) is read as int64."""


def widen_unsigned(name: str, value: Tensor, *, expected: str, validate_args: bool) -> Tensor:
    """A uint16/uint32/uint64 tensor as int64 (the same values); any other tensor unchanged.

    A uint64 value of 2**63 or more has no int64: with ``validate_args`` it is refused (``expected``
    says which values ``name`` must hold); without, it wraps to a negative value, as any out-of-range
    target is then the caller's responsibility.
    """
    if value.dtype not in WIDE_UNSIGNED:
        return value
    if value.dtype != torch.uint64:
        return value.to(torch.int64)
    signed = value.view(torch.int64)  # the same bits: values from 2**63 read negative
    if validate_args and not is_compiling() and value.numel() > 0 and value.device.type != "meta":
        wrapped = signed < 0
        if bool(wrapped.any()):
            high = int(signed[wrapped].max()) + 2**64
            low = int(signed[~wrapped].min()) if not bool(wrapped.all()) else int(signed.min()) + 2**64
            raise ValueError(f"{name} must hold {expected}; received values in [{low}, {high}] (dtype torch.uint64)")
    return signed


def tensor_from_array(name: str, array: np.ndarray, *, validate_args: bool) -> Tensor:
    """A NumPy array as a CPU tensor that torch can compute with.

    Big-endian data (which nibabel's ``dataobj`` can return, e.g. ``'>i2'``) is converted to the
    native byte order, uint16/uint32/uint64 to int64 (uint64 values from 2**63 are refused with
    ``validate_args``), and a read-only array (a memory map) is copied: torch shares the memory of a
    writable native array and warns on a read-only one.
    """
    dtype = array.dtype
    if dtype.kind not in "biuf" or dtype.itemsize > 8:  # not object, str, complex, datetime or float128
        raise TypeError(f"{name} must be an array of bools, integers or real numbers; received dtype {dtype}")
    if dtype.kind == "u" and dtype.itemsize > 1:
        if validate_args and dtype.itemsize == 8 and array.size > 0 and array.max() >= 2**63:
            raise ValueError(f"{name} must hold values below 2**63 (int64's range); received values in "
                             f"[{array.min()}, {array.max()}] (dtype {dtype})")
        dtype = np.dtype(np.int64)
    return torch.from_numpy(np.require(array, dtype=dtype.newbyteorder("="), requirements=("C", "W")))


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


def check_target_tensor(target: object, input: Tensor) -> Tensor:
    """``target`` is a real tensor on ``input``'s device (any shape and dtype)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor; received {type(target).__name__}")
    if target.device != input.device:
        raise ValueError(f"target must be on the input's device ({input.device}); received device {target.device}")
    if target.is_complex():
        raise TypeError(f"target must be real; received dtype {target.dtype}")
    return target


def check_target(target: object, input: Tensor, *, mode: str, ignore_index: Optional[int], validate_args: bool) -> Tensor:
    """The target, checked against ``input`` (already ``(N, C, *S)``) for the given mode.

    Returned as given, except that a uint16/uint32/uint64 target is returned as int64
    (:func:`widen_unsigned`): every later op of the losses then takes it.
    """
    target = check_target_tensor(target, input)
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
    if mode == "multiclass":
        extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        expected = f"class indices in [0, {shape[1] - 1}]{extra} for an input with {shape[1]} channels"
    else:
        extra = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
        expected = f"values in [0, 1]{extra} with mode={mode!r}"
    target = widen_unsigned("target", target, expected=expected, validate_args=validate_args)
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
    low, high = (float(v) for v in torch.aminmax(target.detach()))
    if mode == "multiclass":
        good_low, good_high = 0.0, float(num_classes - 1)
    else:
        if math.isnan(low) or math.isnan(high):
            raise ValueError(f"target must not contain NaN with mode={mode!r}; received a target with NaN values")
        good_low, good_high = 0.0, 1.0
    if good_low <= low and high <= good_high:
        return
    if ignore_index is not None and ignore_index in (low, high):
        # An extreme value is ignore_index (255 is the usual one): its pixels read as 0, a valid value.
        filled = target.masked_fill(target == ignore_index, 0)
        if all(good_low <= float(v) <= good_high for v in torch.aminmax(filled.detach())):
            return
        kept = target[target != ignore_index]  # only to name the offending range in the message
        low, high = (float(v) for v in torch.aminmax(kept.detach()))
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
