"""Checks of distance maps and surface metrics: spatial tensors, spacing, binary masks, class maps."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Optional, Tuple

import torch
from torch import Tensor

from stableloss._checks.tensors import widen_unsigned
from stableloss._checks.values import _is_bool, _scalar, as_number_tuple, check_int, check_number, is_traced

BACKENDS = ("auto", "torch", "scipy")

SPACING_LIMIT = 2.0**63
"""The transform's squared distances are float32 (:mod:`stableloss._edt`); they stay in its normal
range when the smallest spacing is at least ``1 / SPACING_LIMIT`` (its square, 2**-126, is float32's
smallest normal number), the image's extent diagonal ``B`` at most ``SPACING_LIMIT`` (``B**2`` leaves
room for the sum of two squared distances below float32's maximum, about 2**128) and ``B`` at most
``SPACING_LIMIT`` times the smallest spacing (the envelope's intersection abscissae, up to
``(B / min(spacing))**2 / 2`` pixels, stay finite)."""


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


def check_spacing(spacing: object, spatial_dims: int, *, shape: Optional[Sequence[int]] = None) -> tuple:
    """``spacing``: None (1 per dim), one positive number, or one per spatial dim; a tuple of floats.

    The values must keep the float32 squared distances in range (:data:`SPACING_LIMIT`): each in
    ``[1 / SPACING_LIMIT, SPACING_LIMIT]``, the largest at most ``SPACING_LIMIT`` times the smallest,
    and, given the image's spatial ``shape``, its extent diagonal ``B`` at most ``SPACING_LIMIT`` and
    at most ``SPACING_LIMIT`` times the smallest value.
    """
    spacing = _scalar(spacing)
    if spacing is None:
        return (1.0,) * spatial_dims
    if isinstance(spacing, numbers.Real) and not _is_bool(spacing):
        values = [float(spacing)] * spatial_dims
    else:
        values = list(as_number_tuple("spacing", spacing))
        if len(values) != spatial_dims:
            raise ValueError(
                f"spacing must have one value per spatial dim ({spatial_dims}); received {len(values)} values {values!r}"
            )
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"spacing must hold finite values > 0; received {values!r}")
    _check_float32_range(values, shape)
    return tuple(values)


def _check_float32_range(values: Sequence[float], shape: Optional[Sequence[int]]) -> None:
    """The float32 bounds of :func:`check_spacing` (see :data:`SPACING_LIMIT`)."""
    low, high, limit = min(values), max(values), SPACING_LIMIT
    if low < 1 / limit or high > limit or high > limit * low:
        raise ValueError(
            f"spacing must keep the squared distances within float32's range: every value in [{1 / limit:.3g}, "
            f"{limit:.3g}] and the largest at most {limit:.3g} times the smallest; received {values!r}"
        )
    if shape is None:
        return
    diagonal = math.sqrt(sum((s * h) ** 2 for s, h in zip(shape, values, strict=True)))
    if diagonal > limit or diagonal > limit * low:
        pixels = math.sqrt(sum(s * s for s in shape))
        raise ValueError(
            f"spacing must keep the squared distances of an image of shape {tuple(shape)} within float32's range: "
            f"its extent diagonal sqrt(sum_i (shape_i * spacing_i)^2) at most {limit:.3g} and at most {limit:.3g} "
            f"times the smallest spacing (for one spacing in every dim: at most {limit / max(pixels, 1.0):.3g}); "
            f"received {values!r} (extent diagonal {diagonal:.3g})"
        )


def check_binary(name: str, value: Tensor, *, validate_args: bool) -> Tensor:
    """A 0/1 tensor (bool, integer or float), returned as bool; values checked with ``validate_args``."""
    if value.dtype == torch.bool:
        return value
    if validate_args and not is_traced(value) and value.numel() > 0:
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
    return check_int("num_classes", num_classes, low=1)


def check_labels(labels: object, num_classes: object, ignore_index: Optional[int], *, validate_args: bool) -> Tuple[int, Tensor]:
    """Class-index maps ``(N, *S)`` for :func:`~stableloss.signed_distance_map` with ``num_classes``.

    Returns ``num_classes`` and the labels, uint16/uint32/uint64 ones as int64 (:func:`widen_unsigned`).
    """
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
    extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
    labels = widen_unsigned("target", labels, expected=f"class indices in [0, {num_classes - 1}]{extra} for "
                            f"num_classes={num_classes}", validate_args=validate_args)
    if validate_args and not is_traced(labels) and labels.numel() > 0:
        valid = labels if ignore_index is None else labels[labels != ignore_index]
        if valid.numel() > 0:
            low, high = (int(v) for v in torch.aminmax(valid))
            if low < 0 or high >= num_classes:
                raise ValueError(
                    f"target must hold class indices in [0, {num_classes - 1}]{extra} for num_classes={num_classes}; "
                    f"received values in [{low}, {high}]"
                )
    return num_classes, labels


def check_same_shape(name: str, value: Tensor, other_name: str, other: Tensor) -> None:
    """``value`` must have the shape and device of ``other``."""
    if value.shape != other.shape:
        raise ValueError(
            f"{name} must have the shape of {other_name} {tuple(other.shape)}; received shape {tuple(value.shape)}"
        )
    if value.device != other.device:
        raise ValueError(f"{name} must be on the device of {other_name} ({other.device}); received device {value.device}")


def check_spacing_option(spacing: object) -> object:
    """A loss's ``spacing`` setting: None, one number > 0, or 1 to 3 numbers > 0 (a tuple)."""
    spacing = _scalar(spacing)
    if spacing is None:
        return None
    if isinstance(spacing, numbers.Real) and not _is_bool(spacing):
        return check_spacing(spacing, 1)[0]
    values = as_number_tuple("spacing", spacing)
    if not 1 <= len(values) <= 3:
        raise ValueError(f"spacing must have 1 to 3 values (one per spatial dim); received {len(values)} values")
    return check_spacing(values, len(values))


def check_tolerance(tolerance: object, channels: int) -> Tuple[float, ...]:
    """The surface Dice's ``tolerance``: one finite number >= 0, or one per channel; a tuple of ``channels`` floats."""
    value = _scalar(tolerance)
    if value is None:
        raise TypeError("tolerance must be one number >= 0 or one per channel (in the units of spacing); received None")
    if isinstance(value, numbers.Real) and not _is_bool(value):
        return (check_number("tolerance", value, low=0.0),) * channels
    values = as_number_tuple("tolerance", value)
    if len(values) != channels:
        raise ValueError(
            f"tolerance must be one number or one per channel ({channels}); received {len(values)} values {list(values)!r}"
        )
    return tuple(check_number("tolerance", v, low=0.0) for v in values)
