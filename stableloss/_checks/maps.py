"""Check that a caller's signed distance map was made with the loss's own map settings.

A map from the data loader (:class:`~stableloss.SignedDistanceTransform`) replaces the map a loss
would compute from the target, so it must have been made with the same ``spacing``,
``inside_shift`` and ``no_surface``; otherwise the loss silently computes another number. Three
properties of an exact signed map pin those settings down, and each costs a few reductions:

- A channel without a surface (an empty or a full target) holds the ``no_surface`` value
  everywhere: ``B`` / ``inside_shift - B`` (``"bound"``, ``B`` the image's extent diagonal in the
  units of ``spacing``) or 0 (``"zero"``).
- Elsewhere the smallest outside value is exactly ``s = min_k spacing_k`` over the axes ``k`` along
  which the target has two neighbouring pixels on either side of its surface (the nearest object
  pixel of the closest outside pixel is its neighbour along such an axis), and the largest inside
  value is ``inside_shift - s``.
- Of two neighbours along axis ``k`` on either side of the surface, the outside one is at most
  ``spacing_k`` from the object and the inside one at most ``spacing_k`` from the background (a
  map made with the spacings in another axis order breaks this).

A map made with another spacing, shift or no-surface policy (or already normalised, or of another
target) breaks one of them. The check runs when ``validate_args`` is True, outside
``torch.compile`` and ``torch.func`` transforms, and syncs with the host once.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

MAP_RTOL = 2e-3
"""Relative tolerance of the check: maps stored in float16 (a cache) round to 2^-11."""


def check_map_settings(phi: Tensor, target: Tensor, *, spacing: Sequence[float], inside_shift: float, no_surface: str) -> None:
    """Raise ``ValueError`` when ``phi`` is not the signed map of ``target`` for these settings.

    Args:
        phi: The caller's map ``(N, C, *S)`` (float).
        target: The loss's one-hot target ``(N, C, *S)``, 0 at ignored pixels (ignored pixels are
            background in the maps). A soft target (values other than 0 and 1) skips the check.
        spacing: One positive float per spatial dim.
        inside_shift: The loss's ``inside_shift`` (0 for the Hausdorff-DT loss).
        no_surface: ``"bound"`` or ``"zero"``.
    """
    if phi.numel() == 0:
        return
    binary = ((target == 0) | (target == 1)).all()
    mask = target > 0.5
    spatial = tuple(range(2, phi.dim()))
    phi = phi.to(torch.float64)
    has_inside, has_outside = mask.any(dim=spatial), (~mask).any(dim=spatial)
    bound = math.sqrt(sum((s * h) ** 2 for s, h in zip(phi.shape[2:], spacing, strict=False)))
    if no_surface == "bound":
        empty_value, full_value = bound, inside_shift - bound
    else:
        empty_value = full_value = 0.0
    scale = max(bound, inside_shift, 1e-30)
    empty_error = (phi - empty_value).abs().amax(dim=spatial)
    full_error = (phi - full_value).abs().amax(dim=spatial)
    step, within = _surface_steps(phi, mask, spacing, inside_shift)
    outside_min = torch.where(~mask, phi, math.inf).amin(dim=spatial)
    inside_max = torch.where(mask, phi, -math.inf).amax(dim=spatial)
    surfaced = has_inside & has_outside
    step_ok = (outside_min - step).abs() <= MAP_RTOL * step
    shift_ok = (inside_max - (inside_shift - step)).abs() <= MAP_RTOL * torch.clamp(step, min=inside_shift)
    ok = torch.where(surfaced, step_ok & shift_ok & within,
                     torch.where(has_inside, full_error <= MAP_RTOL * scale, empty_error <= MAP_RTOL * scale))
    if bool((ok | ~binary).all()):
        return
    n, c = (int(i) for i in (~ok).nonzero()[0])
    settings = f"spacing={tuple(spacing)}, inside_shift={inside_shift}, no_surface={no_surface!r}"
    where = f"image {n}, channel {c}"
    if not bool(surfaced[n, c]):
        kind, expected = ("full", full_value) if bool(has_inside[n, c]) else ("empty", empty_value)
        found = f"holds values up to {float((phi[n, c] - expected).abs().max()):.6g} away from {expected:.6g}"
        detail = f"the {kind} target's map {found}, the value {settings} gives a channel without a surface"
    elif not bool(step_ok[n, c]):
        detail = (f"its smallest outside distance is {float(outside_min[n, c]):.6g} where {settings} gives "
                  f"{float(step[n, c]):.6g} (one pixel step); a map made with another spacing, or normalised, does this")
    elif not bool(shift_ok[n, c]):
        detail = (f"its largest inside value is {float(inside_max[n, c]):.6g} where {settings} gives "
                  f"{inside_shift - float(step[n, c]):.6g}; a map made with another inside_shift does this")
    else:
        detail = (f"a pixel next to the target's surface is farther from it than the spacing along that axis allows "
                  f"with {settings}; a map made with another spacing (or axis order) does this")
    raise ValueError(
        f"distance_map does not match this loss's map settings ({where}): {detail}. Make the maps with the loss's "
        "settings (loss.distance_transform() returns a SignedDistanceTransform that does), or pass "
        "validate_args=False to skip this check"
    )


def _surface_steps(phi: Tensor, mask: Tensor, spacing: Sequence[float], inside_shift: float) -> Tuple[Tensor, Tensor]:
    """``(N, C)`` each: the smallest spacing along an axis where two neighbours lie on either side of
    the surface, and whether every such pair is within its axis's spacing of the surface (the outside
    one at most ``spacing_k`` away, the inside one at most ``spacing_k - inside_shift``)."""
    step = torch.full(mask.shape[:2], math.inf, dtype=torch.float64, device=mask.device)
    within = torch.ones(mask.shape[:2], dtype=torch.bool, device=mask.device)
    spatial = tuple(range(2, mask.dim()))
    for axis, size in zip(spatial, spacing, strict=False):
        length = mask.shape[axis]
        if length < 2:
            continue
        first, second = mask.narrow(axis, 0, length - 1), mask.narrow(axis, 1, length - 1)
        phi_first, phi_second = phi.narrow(axis, 0, length - 1), phi.narrow(axis, 1, length - 1)
        crossing = first != second
        outside = torch.where(first, phi_second, phi_first)
        inside = inside_shift - torch.where(first, phi_first, phi_second)
        limit = float(size) * (1 + MAP_RTOL)
        within &= (~crossing | ((outside <= limit) & (inside <= limit))).all(dim=spatial)
        step = torch.where(crossing.any(dim=spatial), torch.clamp(step, max=float(size)), step)
    return step, within
