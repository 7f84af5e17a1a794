"""Surface metrics: percentile Hausdorff distance, average surface distance, normalised surface Dice.

All three compare the *surfaces* (edge pixels) of a binary prediction and target, per image and
channel, in the units of ``spacing``, on any device, batched ``(N, C, *S) -> (N, C)``; they follow
MONAI 1.6.1's definitions (``compute_hausdorff_distance``, ``compute_average_surface_distance``,
``compute_surface_dice`` with ``use_subvoxels=False``):

- The surface of a mask is its pixels that ``scipy.ndimage.binary_erosion`` with the default
  cross-shaped structure (face neighbours: 4 in 2D, 6 in 3D) removes, the image border counting as
  background: a mask pixel with a face neighbour outside the mask or outside the image.
- A surface distance is the Euclidean distance from a surface pixel of one mask to the nearest
  surface pixel of the other (between pixel centres, in the units of ``spacing``; MONAI's KD-tree
  over the edge coordinates). Here it is read from an exact distance transform of the other
  mask's surface, only at surface pixels.
- How (``backend=``, as :func:`~stableloss.distance_transform_edt` takes it): eager CPU tensors
  go one image and channel at a time, cropped to the bounding box of both masks (outside it both
  are background, so no surface pixel or distance changes), with SciPy's transform (``"scipy"``,
  and ``"auto"`` when SciPy is installed) or the torch one (``"torch"``) of the crop. CUDA
  tensors, and tensors under ``torch.compile`` or a ``torch.func`` transform, take one torch
  transform of the whole batch on their device: no host round trip.
- Percentiles interpolate linearly between order statistics (``torch.quantile``'s default, which
  MONAI uses).

Empty masks (no surface), ``empty="bound"`` (default, safe to average): both empty means
distances 0 and surface Dice 1 (a correct "nothing here"); one empty means distances ``B`` and
surface Dice 0, where ``B = sqrt(sum_i (S_i spacing_i)^2)`` is the diagonal of the image's extent,
larger than any distance a prediction can reach in this image. ``empty="nan"`` follows MONAI's
convention: NaN when both are empty; ``inf`` (distances) or 0 (surface Dice) when one is. (MONAI
1.6.1 itself returns NaN, not ``inf``, for a 95th-percentile Hausdorff distance with one empty
mask: its interpolation computes ``inf - inf``.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stableloss import _checks
from stableloss._surface_stats import SurfaceStats, batched_stats, cropped_stats
from stableloss._surface_stats import surface_mask as surface_mask  # public: stableloss.surface.surface_mask
from stableloss.distance import Spacing, _resolve_backend, extent_diagonal

EMPTY = ("bound", "nan")

Tolerance = float | Sequence[float]


def hausdorff_distance(
    pred: Tensor,
    target: Tensor,
    *,
    percentile: float = 95.0,
    spacing: Spacing = None,
    empty: str = "bound",
    backend: str = "auto",
    validate_args: bool = True,
) -> Tensor:
    """Percentile (default 95th) symmetric Hausdorff distance between surfaces, per image and channel.

    .. math::

        HD_q = \\max\\left( P_q\\{d(x, \\partial T) : x \\in \\partial P\\},\\;
                           P_q\\{d(y, \\partial P) : y \\in \\partial T\\} \\right)

    with :math:`\\partial` the surface pixels, :math:`d` the distance to the nearest surface pixel of
    the other mask and :math:`P_q` the q-th percentile with linear interpolation;
    ``percentile=100`` is the classic (maximum) Hausdorff distance.

    Args:
        pred: Binary prediction ``(N, C, *S)`` (bool, integer or float 0/1), 1 to 3 spatial dims.
        target: Binary target, the shape of ``pred``.
        percentile: In [0, 100].
        spacing: None (1 per dim), one positive number, or one per spatial dim.
        empty: ``"bound"`` or ``"nan"``: the value with an empty mask (module docstring).
        backend: ``"auto"``, ``"torch"`` or ``"scipy"``: the distance transform on CPU (module docstring).
        validate_args: Check that both are binary (a host sync).

    Shape:
        - pred, target: ``(N, C, *S)``.
        - output: ``(N, C)``, float32.

    Returns:
        The distances in the units of ``spacing``.

    Example:
        >>> target = torch.zeros(1, 1, 8, 8); target[..., 2:6, 2:6] = 1
        >>> pred = torch.zeros(1, 1, 8, 8); pred[..., 2:6, 3:7] = 1
        >>> hausdorff_distance(pred, target, percentile=100, spacing=(1.0, 0.5))
        tensor([[0.5000]])

    References:
        D. P. Huttenlocher, G. A. Klanderman and W. J. Rucklidge, "Comparing images using the
        Hausdorff distance", IEEE TPAMI 15(9), 1993.

    Note:
        Agrees with MONAI's ``compute_hausdorff_distance(..., include_background=True,
        percentile=q)`` on non-empty masks (tests/test_surface_monai.py).
    """
    if percentile is None:  # surface_metrics reads None as "leave the distance out": refuse it here, by name
        _checks.check_number("percentile", percentile, low=0.0, high=100.0)
    return surface_metrics(pred, target, percentile=percentile, spacing=spacing, empty=empty, backend=backend,
                           validate_args=validate_args)["hausdorff"]


def average_surface_distance(
    pred: Tensor,
    target: Tensor,
    *,
    symmetric: bool = True,
    spacing: Spacing = None,
    empty: str = "bound",
    backend: str = "auto",
    validate_args: bool = True,
) -> Tensor:
    """Average (symmetric) surface distance, ASSD, per image and channel.

    .. math::

        ASSD = \\frac{\\sum_{x \\in \\partial P} d(x, \\partial T) + \\sum_{y \\in \\partial T} d(y, \\partial P)}
                     {|\\partial P| + |\\partial T|}

    (``symmetric=False``: the mean of :math:`d(x, \\partial T)` over the prediction's surface only).

    Args:
        pred: Binary prediction ``(N, C, *S)``, 1 to 3 spatial dims.
        target: Binary target, the shape of ``pred``.
        symmetric: Both directions (ASSD, default) or prediction to target only.
        spacing: None (1 per dim), one positive number, or one per spatial dim.
        empty: ``"bound"`` or ``"nan"`` (module docstring).
        backend: ``"auto"``, ``"torch"`` or ``"scipy"``: the distance transform on CPU (module docstring).
        validate_args: Check that both are binary (a host sync).

    Shape:
        - pred, target: ``(N, C, *S)``.
        - output: ``(N, C)``, float32.

    Returns:
        The mean surface distance in the units of ``spacing``.

    Example:
        >>> target = torch.zeros(1, 1, 8, 8); target[..., 2:6, 2:6] = 1
        >>> average_surface_distance(target, target)
        tensor([[0.]])

    Note:
        Agrees with MONAI's ``compute_average_surface_distance(..., include_background=True,
        symmetric=True)``; sums are taken in float64.
    """
    symmetric = _checks.check_bool("symmetric", symmetric)
    key = "assd" if symmetric else "asd"
    return surface_metrics(pred, target, spacing=spacing, empty=empty, backend=backend, validate_args=validate_args,
                           percentile=None, directed=not symmetric)[key]


def normalized_surface_dice(
    pred: Tensor,
    target: Tensor,
    tolerance: Tolerance,
    *,
    spacing: Spacing = None,
    empty: str = "bound",
    backend: str = "auto",
    validate_args: bool = True,
) -> Tensor:
    """Normalised surface Dice at a tolerance, per image and channel.

    .. math::

        NSD_\\tau = \\frac{|\\{x \\in \\partial P : d(x, \\partial T) \\le \\tau\\}|
        + |\\{y \\in \\partial T : d(y, \\partial P) \\le \\tau\\}|}
                          {|\\partial P| + |\\partial T|}

    (the surface measured by its number of pixels, MONAI's ``use_subvoxels=False``).

    Args:
        pred: Binary prediction ``(N, C, *S)``, 1 to 3 spatial dims.
        target: Binary target, the shape of ``pred``.
        tolerance: ``tau`` in the units of ``spacing``, >= 0: one number, or one per channel.
        spacing: None (1 per dim), one positive number, or one per spatial dim.
        empty: ``"bound"`` or ``"nan"`` (module docstring).
        backend: ``"auto"``, ``"torch"`` or ``"scipy"``: the distance transform on CPU (module docstring).
        validate_args: Check that both are binary (a host sync).

    Shape:
        - pred, target: ``(N, C, *S)``.
        - output: ``(N, C)``, float32, in [0, 1].

    Returns:
        The fraction of surface within ``tolerance`` of the other surface.

    Example:
        >>> target = torch.zeros(1, 1, 8, 8); target[..., 2:6, 2:6] = 1
        >>> pred = torch.zeros(1, 1, 8, 8); pred[..., 2:6, 3:7] = 1
        >>> normalized_surface_dice(pred, target, 1.0)
        tensor([[1.]])

    References:
        S. Nikolov et al., "Clinically applicable segmentation of head and neck anatomy for
        radiotherapy: deep learning algorithm development and validation study", JMIR 23(7), 2021.
    """
    if tolerance is None:  # surface_metrics reads None as "leave the surface Dice out": refuse it here, by name
        _checks.check_tolerance(tolerance, 1)
    return surface_metrics(pred, target, tolerance=tolerance, spacing=spacing, empty=empty, backend=backend,
                           validate_args=validate_args, percentile=None)["nsd"]


def surface_metrics(
    pred: Tensor,
    target: Tensor,
    *,
    percentile: float | None = 95.0,
    tolerance: Tolerance | None = None,
    spacing: Spacing = None,
    empty: str = "bound",
    directed: bool = False,
    backend: str = "auto",
    validate_args: bool = True,
) -> dict[str, Tensor]:
    """Several surface metrics from one distance transform pass (for validation loops).

    Args:
        pred, target: Binary ``(N, C, *S)``, 1 to 3 spatial dims, the same shape and device.
        percentile: For ``"hausdorff"``, in [0, 100]; None leaves it out.
        tolerance: For ``"nsd"``: one number >= 0 or one per channel; None leaves it out.
        spacing: None (1 per dim), one positive number, or one per spatial dim.
        empty: ``"bound"`` or ``"nan"`` (module docstring).
        directed: Also return ``"asd"``, the prediction-to-target mean distance.
        validate_args: Check that both are binary (a host sync).

    Returns:
        ``{"hausdorff": ..., "assd": ..., "nsd": ..., "asd": ...}`` (those asked for), each
        ``(N, C)`` float32; see :func:`hausdorff_distance`, :func:`average_surface_distance`,
        :func:`normalized_surface_dice`.

    Example:
        >>> target = torch.zeros(2, 1, 16, 16); target[..., 4:12, 4:12] = 1
        >>> out = surface_metrics(target, target, tolerance=1.0)
        >>> sorted(out), out["assd"].shape
        (['assd', 'hausdorff', 'nsd'], torch.Size([2, 1]))
    """
    pred_b, target_b = _check_pair(pred, target, validate_args)
    spacing_t = _checks.check_spacing(spacing, pred_b.dim() - 2, shape=pred_b.shape[2:])
    _checks.check_choice("empty", empty, EMPTY)
    directed = _checks.check_bool("directed", directed)
    q = None if percentile is None else _checks.check_number("percentile", percentile, low=0.0, high=100.0) / 100.0
    n, c = pred_b.shape[:2]
    tau = None if tolerance is None else _tolerance(tolerance, c, pred_b.device).repeat(n)
    backend = _resolve_backend(backend, pred_b)  # "torch" off the CPU and where values cannot be read
    if pred_b.device.type == "cpu" and not _checks.is_traced(pred_b) and not _checks.is_traced(target_b):
        stats = cropped_stats(pred_b, target_b, spacing_t, q, tau, backend)
    else:
        stats = batched_stats(pred_b, target_b, spacing_t, q, tau)
    return _finish(stats, n, c, extent_diagonal(pred_b.shape[2:], spacing_t), empty, directed)


def _finish(stats: SurfaceStats, n: int, c: int, bound: float, empty: str, directed: bool) -> dict[str, Tensor]:
    """The metrics from the per-row statistics, with the empty-mask policy; each ``(N, C)`` float32."""
    both_empty = (stats.count_p == 0) & (stats.count_t == 0)
    one_empty = (stats.count_p == 0) ^ (stats.count_t == 0)
    far, none = (bound, 0.0) if empty == "bound" else (float("inf"), float("nan"))

    def finish(value: Tensor, *, if_none: float, if_one: float) -> Tensor:
        value = torch.where(one_empty, if_one, torch.where(both_empty, if_none, value))
        return value.float().reshape(n, c)

    out: dict[str, Tensor] = {}
    if stats.percentile is not None:
        out["hausdorff"] = finish(stats.percentile, if_none=none, if_one=far)
    surface = (stats.count_p + stats.count_t).clamp(min=1)
    out["assd"] = finish((stats.sum_p + stats.sum_t) / surface, if_none=none, if_one=far)
    if directed:
        out["asd"] = finish(stats.sum_p / stats.count_p.clamp(min=1), if_none=none, if_one=far)
    if stats.hits is not None:
        out["nsd"] = finish(stats.hits / surface, if_none=1.0 if empty == "bound" else float("nan"), if_one=0.0)
    return out


def _check_pair(pred: object, target: object, validate_args: bool) -> tuple[Tensor, Tensor]:
    """``pred`` and ``target`` as bool ``(N, C, *S)`` tensors of one shape and device."""
    pred_t = _checks.check_spatial_tensor("pred", pred)
    target_t = _checks.check_spatial_tensor("target", target)
    _checks.check_same_shape("target", target_t, "pred", pred_t)
    validate_args = _checks.check_bool("validate_args", validate_args)
    return (_checks.check_binary("pred", pred_t, validate_args=validate_args),
            _checks.check_binary("target", target_t, validate_args=validate_args))


def _tolerance(tolerance: Tolerance, channels: int, device: torch.device) -> Tensor:
    """``tolerance`` as a float32 ``(C,)`` tensor, each >= 0 and finite."""
    return torch.tensor(_checks.check_tolerance(tolerance, channels), dtype=torch.float32, device=device)
