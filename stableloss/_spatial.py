"""Shared steps of the distance- and contour-based losses (boundary, Hausdorff-DT, boundary DoU).

validate -> probabilities and one-hot target -> target distance maps (given, or computed from the
target) -> per-class float32 sums -> :func:`~stableloss._reduction.reduce_class_losses`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from stableloss import _checks
from stableloss._activation import activate
from stableloss._checks.maps import check_map_settings
from stableloss._module import OptionsModule
from stableloss._options import BoundaryOptions
from stableloss._overlap import flatten_target
from stableloss._reduction import reduce_class_losses
from stableloss._region import activation_of
from stableloss.distance import SignedDistanceTransform, extent_diagonal, signed_distance_map


class SpatialBatch(NamedTuple):
    """A validated batch: float32 (float64 for float64 input) tensors of shape ``(N, C, *S)``.

    Attributes:
        probs: ``p``.
        complement: ``q = 1 - p``, computed without rounding through ``p``.
        target: The target, one-hot for multiclass, 0 at ignored pixels.
        valid: Bool mask broadcastable to the others (``(N, 1, *S)`` or ``(N, C, *S)``), or None.
        spacing: One float per spatial dim.
    """

    probs: Tensor
    complement: Tensor
    target: Tensor
    valid: Optional[Tensor]
    spacing: Tuple[float, ...]


def prepare(input: Tensor, target: Tensor, options: BoundaryOptions) -> Tuple[SpatialBatch, Tensor]:
    """Validate ``input`` and ``target`` and bring them to ``(N, C, *S)``; also return the raw target."""
    _checks.check_spatial_tensor("input", input)
    input, target = _checks.check_pair(input, target, mode=options.mode, from_logits=options.from_logits,
                                       ignore_index=options.ignore_index, validate_args=options.validate_args)
    spatial = tuple(input.shape[2:])
    spacing = _checks.check_spacing(options.spacing, len(spatial))
    probs, complement = activate(input, activation_of(options.mode, options.from_logits))
    flat_target, valid = flatten_target(target, mode=options.mode, num_classes=input.shape[1],
                                        ignore_index=options.ignore_index, dtype=probs.dtype)
    shape = tuple(input.shape)
    one_hot = flat_target.reshape(shape)
    valid = None if valid is None else valid.reshape((shape[0], valid.shape[1]) + spatial)
    return SpatialBatch(probs, complement, one_hot, valid, spacing), target


def target_maps(target: Tensor, batch: SpatialBatch, options: BoundaryOptions, *, inside_shift: float) -> Tensor:
    """Signed distance maps of the target, ``(N, C, *S)`` float32, on the target's device."""
    shape = tuple(batch.probs.shape)
    if options.mode == "multiclass":
        labels, num_classes, ignore_index = target, shape[1], options.ignore_index
    else:
        labels, num_classes, ignore_index = target.reshape(shape), None, None
        if options.ignore_index is not None:  # ignored pixels are background in the maps
            labels = torch.where(labels == options.ignore_index, torch.zeros((), dtype=labels.dtype, device=labels.device),
                                 labels)
    return signed_distance_map(labels, spacing=batch.spacing, num_classes=num_classes, ignore_index=ignore_index,
                               inside_shift=inside_shift, no_surface=options.no_surface, backend=options.backend,
                               validate_args=options.validate_args)


def checked_map(distance_map: object, batch: SpatialBatch, options: BoundaryOptions) -> Tensor:
    """A caller's precomputed map: a floating tensor of the input's shape, on its device, as float32.

    With ``validate_args`` (outside compile and ``torch.func``), the map must also be the target's
    signed map for the loss's ``spacing``, ``inside_shift`` and ``no_surface``
    (:func:`~stableloss._checks.maps.check_map_settings`): a loader map made with other settings
    raises instead of silently giving another loss.
    """
    if not isinstance(distance_map, Tensor):
        raise TypeError(f"distance_map must be a torch.Tensor or None; received {type(distance_map).__name__}")
    if not distance_map.is_floating_point():
        raise TypeError(f"distance_map must be a floating-point tensor; received dtype {distance_map.dtype}")
    _checks.check_same_shape("distance_map", distance_map, "the input", batch.probs)
    phi = distance_map.to(batch.probs.dtype)
    if options.validate_args and not traced(phi) and not traced(batch.target):
        check_map_settings(phi.detach(), batch.target.detach(), spacing=batch.spacing,
                           inside_shift=options.inside_shift, no_surface=options.no_surface)
    return phi


def traced(tensor: Tensor) -> bool:
    """Whether ``tensor`` has no readable data: under ``torch.compile``, a ``torch.func`` transform, or on meta."""
    return _checks.is_traced(tensor)


def normalizer(batch: SpatialBatch) -> float:
    """The image's extent diagonal (in the units of ``spacing``): every distance in it is smaller."""
    return extent_diagonal(batch.probs.shape[2:], batch.spacing)


def class_mean(values: Tensor, valid: Optional[Tensor]) -> Tensor:
    """The mean of ``values`` ``(N, C, *S)`` per class over the non-ignored pixels: ``(C,)``."""
    dims = (0,) + tuple(range(2, values.dim()))
    if valid is None:
        return values.mean(dim=dims)
    kept = valid.to(values.dtype)
    count = torch.broadcast_to(kept, values.shape).sum(dim=dims)
    return (values * kept).sum(dim=dims) / count.clamp_min(1.0)


def hard_error(batch: SpatialBatch) -> Tensor:
    """``p - t`` per pixel, with ``q`` (exact) in place of ``1 - p`` where ``t == 1``."""
    return torch.where(batch.target == 1, -batch.complement, batch.probs - batch.target)


def reduce(losses: Tensor, options: BoundaryOptions, *, classes: Optional[Tensor], class_weights: Optional[Tensor]) -> Tensor:
    """Check the per-class options against ``C`` and reduce ``(C,)`` losses (see :func:`reduce_class_losses`)."""
    num_classes = losses.shape[-1]
    if options.class_weights is not None:
        _checks.check_class_count("class_weights", len(options.class_weights), num_classes)
    _checks.check_class_indices(options.classes, num_classes)
    if classes is None and options.classes is not None:
        classes = torch.tensor(options.classes, dtype=torch.long, device=losses.device)
    if class_weights is None and options.class_weights is not None:
        class_weights = torch.tensor(options.class_weights, dtype=losses.dtype, device=losses.device)
    return reduce_class_losses(losses, options.reduction, classes=classes, class_weights=class_weights)


class DistanceMapLoss(OptionsModule):
    """Base of the losses that take the target's signed distance maps (``distance_map=``)."""

    def distance_transform(self, *, spatial_dims: Optional[int] = None,
                           num_classes: Optional[int] = None) -> SignedDistanceTransform:
        """A ``Dataset`` transform that makes the target maps this loss would compute (same ``spacing``,
        ``inside_shift``, ``no_surface``, ``ignore_index``), to pass as ``distance_map=``.

        Args:
            spatial_dims: Number of spatial dims; needed unless ``spacing`` is a sequence.
            num_classes: The class count (multiclass losses only: one map per class).

        Example:
            >>> import numpy as np
            >>> from stableloss import BoundaryLoss
            >>> criterion = BoundaryLoss("multiclass", spacing=(0.8, 0.8), ignore_index=255)
            >>> to_map = criterion.distance_transform(num_classes=3)
            >>> to_map(np.zeros((16, 16), dtype=np.int64)).shape
            (3, 16, 16)
        """
        options = self.options
        if options.mode == "multiclass":
            if num_classes is None:
                raise ValueError("num_classes must be given for a multiclass loss (the transform makes one map per "
                                 "class); received num_classes=None")
        elif num_classes is not None:
            raise ValueError(f"num_classes must be None for a {options.mode} loss (its targets are already one channel "
                             f"per class); received num_classes={num_classes!r}")
        elif options.ignore_index is not None:
            raise ValueError(f"a {options.mode} loss with ignore_index={options.ignore_index} treats ignored pixels as "
                             "background in its maps: set them to 0 in the sample and use "
                             "distance_transform() of a loss without ignore_index, or let the loss compute the maps")
        if spatial_dims is None and isinstance(options.spacing, tuple):
            spatial_dims = len(options.spacing)
        return SignedDistanceTransform(spacing=options.spacing, spatial_dims=spatial_dims, num_classes=num_classes,
                                       ignore_index=options.ignore_index if num_classes is not None else None,
                                       inside_shift=options.inside_shift, no_surface=options.no_surface,
                                       backend=options.backend, validate_args=options.validate_args)
