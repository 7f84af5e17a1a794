"""The per-row statistics behind :mod:`stableloss.surface`, by two routes that give the same numbers.

A row is one image and channel. For each row the surface metrics need the number of surface pixels
of both masks, the sums of their distances to the other surface, the q-th percentile of each
direction's distances (Hausdorff) and the number within a tolerance (surface Dice).

- :func:`batched_stats`: one exact transform of the whole batch on its device, no host round trip
  (CUDA tensors, and under ``torch.compile`` or ``torch.func`` transforms where no value can be read).
- :func:`cropped_stats`: eager CPU tensors, one row at a time, as MONAI does it: the row is cropped to
  the bounding box of the union of both masks (every surface pixel of either lies in it, and outside
  it both masks are background, so cropping changes no surface pixel and no distance), the surfaces
  are found in the crop, and the distances are read only at surface pixels, from SciPy's transform
  (float64) or the torch one (float32) of the crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from stableloss._edt import distance_to_seeds


class SurfaceStats(NamedTuple):
    """Per-row statistics, each ``(R,)`` float64 (R = images x channels)."""

    count_p: Tensor  # surface pixels of the prediction
    count_t: Tensor  # surface pixels of the target
    sum_p: Tensor  # sum over the prediction's surface of the distance to the target's surface
    sum_t: Tensor  # sum over the target's surface of the distance to the prediction's surface
    percentile: Tensor | None  # max of the two directed q-th percentiles (None without q)
    hits: Tensor | None  # surface pixels of both within tau of the other surface (None without tau)


def surface_mask(mask: Tensor) -> Tensor:
    """The surface pixels of a bool ``(N, C, *S)`` mask: those with a face neighbour outside it.

    ``mask & ~binary_erosion(mask)`` with SciPy's default cross structure and the image border
    counting as background (MONAI's edge definition).

    Example:
        >>> m = torch.zeros(1, 1, 5, 5, dtype=torch.bool); m[..., 1:4, 1:4] = True
        >>> surface_mask(m)[0, 0].int()
        tensor([[0, 0, 0, 0, 0],
                [0, 1, 1, 1, 0],
                [0, 1, 0, 1, 0],
                [0, 1, 1, 1, 0],
                [0, 0, 0, 0, 0]], dtype=torch.int32)
    """
    interior = mask.clone()
    for axis in range(2, mask.dim()):
        n = mask.shape[axis]
        if n < 3:  # every pixel touches the border along this axis
            return mask.clone()
        inner = interior.narrow(axis, 1, n - 2)
        inner &= mask.narrow(axis, 0, n - 2)
        inner &= mask.narrow(axis, 2, n - 2)
        interior.narrow(axis, 0, 1).fill_(False)
        interior.narrow(axis, n - 1, 1).fill_(False)
    return mask & ~interior


def batched_stats(pred: Tensor, target: Tensor, spacing: Sequence[float], q: float | None,
                  tau: Tensor | None) -> SurfaceStats:
    """The statistics from one torch transform of the whole batch (``(N, C, *S)`` bool; ``tau`` ``(R,)``)."""
    edges_p, edges_t = surface_mask(pred), surface_mask(target)
    rows, pixels = pred.shape[0] * pred.shape[1], math.prod(pred.shape[2:])
    dist = distance_to_seeds(torch.cat([edges_t, edges_p]), spacing, backend="torch")
    to_target, to_pred = dist.reshape(2, rows, pixels).unbind(0)
    edges_p, edges_t = edges_p.reshape(rows, pixels), edges_t.reshape(rows, pixels)
    count_p = edges_p.sum(dim=1, dtype=torch.float64)
    count_t = edges_t.sum(dim=1, dtype=torch.float64)
    percentile = None
    if q is not None:
        percentile = torch.maximum(_masked_quantile(to_target, edges_p, count_p, q),
                                   _masked_quantile(to_pred, edges_t, count_t, q))
    hits = None
    if tau is not None:
        near = (edges_p & (to_target <= tau[:, None])).sum(dim=1) + (edges_t & (to_pred <= tau[:, None])).sum(dim=1)
        hits = near.double()
    return SurfaceStats(count_p, count_t,
                        torch.where(edges_p, to_target, 0.0).sum(dim=1, dtype=torch.float64),
                        torch.where(edges_t, to_pred, 0.0).sum(dim=1, dtype=torch.float64), percentile, hits)


def cropped_stats(pred: Tensor, target: Tensor, spacing: Sequence[float], q: float | None,
                  tau: Tensor | None, backend: str) -> SurfaceStats:
    """The statistics row by row on the bounding box of each row's masks (CPU tensors; ``backend``
    ``"scipy"`` or ``"torch"`` for the crop's transform)."""
    spatial = pred.shape[2:]
    rows = pred.shape[0] * pred.shape[1]
    preds = pred.reshape((rows,) + spatial).numpy()
    targets = target.reshape((rows,) + spatial).numpy()
    out = np.zeros((6, rows), dtype=np.float64)  # count_p, count_t, sum_p, sum_t, percentile, hits
    taus = None if tau is None else tau.tolist()
    for r in range(rows):
        box = _bounding_box(preds[r] | targets[r])
        if box is None:
            continue
        edges_p, edges_t = _surface_np(preds[r][box]), _surface_np(targets[r][box])
        out[0, r], out[1, r] = np.count_nonzero(edges_p), np.count_nonzero(edges_t)
        if out[0, r] == 0 or out[1, r] == 0:  # one side empty: the caller's empty policy decides
            continue
        to_target, to_pred = _surface_distances(edges_p, edges_t, spacing, backend)
        out[2, r], out[3, r] = to_target.sum(dtype=np.float64), to_pred.sum(dtype=np.float64)
        if q is not None:
            out[4, r] = max(_quantile(to_target, q), _quantile(to_pred, q))
        if taus is not None:
            out[5, r] = np.count_nonzero(to_target <= taus[r]) + np.count_nonzero(to_pred <= taus[r])
    stats = torch.from_numpy(out)
    return SurfaceStats(stats[0], stats[1], stats[2], stats[3],
                        None if q is None else stats[4], None if tau is None else stats[5])


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True of ``mask`` (None if there is none)."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _surface_np(mask: np.ndarray) -> np.ndarray:
    """:func:`surface_mask` of one ``(*S)`` NumPy mask."""
    return surface_mask(torch.from_numpy(mask)[None, None])[0, 0].numpy()


def _surface_distances(edges_p: np.ndarray, edges_t: np.ndarray, spacing: Sequence[float],
                       backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each surface pixel of one mask to the nearest of the other, both ways (1-D float32,
    in the order of ``np.nonzero``; float32 as MONAI rounds them).

    ``"scipy"``: a k-d tree over each surface's coordinates (times ``spacing``) answers the other's
    nearest-neighbour queries, exact Euclidean, in O(E log E) for E surface pixels (what MONAI does).
    ``"torch"``: the exact transform of each surface over the crop, read at the other's pixels.
    """
    if backend == "scipy":
        from scipy.spatial import cKDTree  # type: ignore[import-untyped]

        scale = np.asarray(spacing, dtype=np.float64)
        points_p = np.argwhere(edges_p) * scale
        points_t = np.argwhere(edges_t) * scale
        to_target = cKDTree(points_t).query(points_p)[0]
        to_pred = cKDTree(points_p).query(points_t)[0]
        return to_target.astype(np.float32), to_pred.astype(np.float32)
    dist = distance_to_seeds(torch.from_numpy(np.stack([edges_t, edges_p])), spacing, backend="torch").numpy()
    return dist[0][edges_p], dist[1][edges_t]


def _quantile(values: np.ndarray, q: float) -> float:
    """``torch.quantile(values, q)`` of float32 values: the rank and the interpolation in float32, as torch
    computes them (``lerp`` from the nearer end)."""
    ordered = np.sort(values)
    rank = np.float32(values.size - 1) * np.float32(q)
    below = int(np.floor(rank))
    weight = rank - np.float32(below)
    low, high = ordered[below], ordered[int(np.ceil(rank))]
    return float(low + weight * (high - low) if weight < 0.5 else high - (high - low) * (np.float32(1) - weight))


def _masked_quantile(dist: Tensor, edges: Tensor, count: Tensor, q: float) -> Tensor:
    """Per row, the q-quantile of ``dist`` over ``edges`` (linear interpolation, as torch.quantile)."""
    if dist.shape[1] == 0:
        return torch.zeros(dist.shape[0], dtype=torch.float64, device=dist.device)
    if q == 1.0:
        return torch.where(edges, dist, -float("inf")).amax(dim=1).double()
    ordered = torch.where(edges, dist, float("inf")).sort(dim=1).values
    rank = (count - 1).clamp(min=0).float() * q  # float32, as torch.quantile computes it
    below = rank.floor().long()
    above = rank.ceil().long()
    low = ordered.gather(1, below[:, None])[:, 0]
    high = ordered.gather(1, above[:, None])[:, 0]
    return torch.lerp(low, high, rank - below.float()).double()
