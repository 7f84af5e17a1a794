"""Exact Euclidean distance transforms and signed distance maps, in torch (CPU and CUDA) or SciPy.

:func:`distance_transform_edt` is SciPy's ``scipy.ndimage.distance_transform_edt`` for batched
tensors; :func:`signed_distance_map` is the map boundary losses use (negative inside the object,
positive outside). :func:`sample_signed_distance_map` and :class:`SignedDistanceTransform` compute it
for one sample in a ``Dataset``, so a training loop computes each target's map once, not every step.

Backends: ``"torch"`` runs the exact separable transform in :mod:`stableloss._edt` on the tensor's
device (a CUDA tensor never leaves the GPU); ``"scipy"`` calls ``scipy.ndimage`` per image (CPU
tensors only; ``pip install "stableloss[distance]"``); ``"auto"`` uses SciPy for CPU tensors when it
is installed and torch otherwise. Both give the same values up to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from stableloss import _checks
from stableloss._edt import distance_to_seeds

Spacing = float | Sequence[float] | Tensor | None

NO_SURFACE = ("bound", "zero")


def distance_transform_edt(input: Tensor, *, spacing: Spacing = None, backend: str = "auto") -> Tensor:
    """Exact Euclidean distance from every nonzero pixel to the nearest zero pixel of its image.

    .. math::

        d(x) = \\min_{y : I(y) = 0} \\lVert (x - y) \\odot \\text{spacing} \\rVert_2 \\quad (0 \\text{ where } I(x) = 0)

    SciPy's ``distance_transform_edt(input, sampling=spacing)`` for each image and channel: the
    distance between pixel centres in the units of ``spacing``.

    Args:
        input: ``(N, C, *S)`` with 1 to 3 spatial dims, any real dtype; nonzero is object.
        spacing: Pixel size: None (1 in every dim), one positive number, or one per spatial dim
            (e.g. CT voxel spacing in mm). Squared distances are float32, so each value must lie in
            ``[2**-63, 2**63]``, within a factor ``2**63`` of the others, and the image's extent
            diagonal must stay below ``2**63`` (a ``ValueError`` says which bound a value breaks).
        backend: ``"auto"``, ``"torch"`` or ``"scipy"`` (see the module docstring).

    Shape:
        - input: ``(N, C, *S)``.
        - output: the same shape, float32, on the input's device.

    Returns:
        The distances; ``inf`` everywhere in an image (and channel) without a zero pixel (SciPy
        returns arbitrary values there).

    Example:
        >>> mask = torch.tensor([[[0, 1, 1, 1, 0, 1]]])
        >>> distance_transform_edt(mask, spacing=2.0)
        tensor([[[0., 2., 4., 2., 0., 2.]]])

    References:
        P. F. Felzenszwalb and D. P. Huttenlocher, "Distance transforms of sampled functions",
        Theory of Computing 8, 2012.

    Note:
        Exact: the separable lower-envelope algorithm, float32 (an error within a few float32
        ulps of the exact distance; tests check 1e-4 against SciPy's float64).
    """
    input = _checks.check_spatial_tensor("input", input)
    spacing_t = _checks.check_spacing(spacing, input.dim() - 2, shape=input.shape[2:])
    backend = _resolve_backend(backend, input)
    return distance_to_seeds(input == 0, spacing_t, backend=backend)


def signed_distance_map(
    target: Tensor,
    *,
    spacing: Spacing = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    inside_shift: float = 0.0,
    no_surface: str = "bound",
    backend: str = "auto",
    validate_args: bool = True,
) -> Tensor:
    """Exact signed Euclidean distance to the object surface, per image and channel.

    .. math::

        \\phi(x) = \\begin{cases}
            \\min_{y \\in \\text{object}} \\lVert x - y \\rVert & x \\notin \\text{object} \\\\
            -\\left(\\min_{y \\notin \\text{object}} \\lVert x - y \\rVert - \\text{inside\\_shift}\\right)
                & x \\in \\text{object}
        \\end{cases}

    Distances between pixel centres in the units of ``spacing``, as
    ``scipy.ndimage.distance_transform_edt(..., sampling=spacing)`` defines them: outside the
    object, ``phi`` is the distance to the nearest object pixel (at least the smallest spacing);
    inside, minus the distance to the nearest background pixel. The image border is not a surface.
    ``inside_shift=1`` gives the map of Kervadec et al.'s reference code (``- (d - 1)`` inside, so
    the object's own boundary pixels are 0; the 1 is in the units of ``spacing``, as there).

    No surface (an empty or a full channel) — ``no_surface="bound"`` (default): an empty channel's
    map is ``+B`` everywhere and a full channel's ``-(B - inside_shift)``, where
    ``B = sqrt(sum_i (S_i spacing_i)^2)`` is the diagonal of the image's extent, larger than any
    distance between two pixel centres. So a false positive on an empty image costs the most a
    pixel can cost in ``mean(p * phi)`` (it is not free, as with a zero map), and every map of this
    image shape lies in ``[-B, B]``: dividing by ``B`` normalises to ``[-1, 1]``.
    ``no_surface="zero"`` gives MONAI's and Kervadec's zero map there instead.

    Args:
        target: Binary ``(N, C, *S)`` (bool, integer or float 0/1), 1 to 3 spatial dims; with
            ``num_classes``: integer class indices ``(N, *S)`` (any integer dtype, unsigned
            included, as NIfTI label files hold), one map per class (one-hot).
        spacing: None (1 per dim), one positive number, or one per spatial dim.
        num_classes: Treat ``target`` as class indices and return ``num_classes`` channels.
        ignore_index: With ``num_classes``: a label whose pixels belong to no class (background
            in every channel; a loss should leave them out).
        inside_shift: Subtracted from the inside distances (>= 0; 1 for Kervadec's map).
        no_surface: ``"bound"`` or ``"zero"``: the map of an empty or full channel (see above).
        backend: ``"auto"``, ``"torch"`` or ``"scipy"`` (see the module docstring).
        validate_args: Check that the target is binary (or holds valid class indices): a host
            sync; skipped under ``torch.compile``. Without it, any nonzero value is object.

    Shape:
        - target: ``(N, C, *S)``, or ``(N, *S)`` with ``num_classes``.
        - output: ``(N, C, *S)`` (``(N, num_classes, *S)``), float32, on the target's device.

    Returns:
        The signed distance map.

    Example:
        >>> target = torch.tensor([[[0, 0, 1, 1, 1, 0]]])
        >>> signed_distance_map(target)
        tensor([[[ 2.,  1., -1., -2., -1.,  1.]]])
        >>> signed_distance_map(target, inside_shift=1.0)  # Kervadec et al.'s code
        tensor([[[ 2.,  1.,  0., -1.,  0.,  1.]]])
        >>> signed_distance_map(torch.zeros(1, 1, 3, 4), spacing=(2.0, 1.0))[0, 0, 0]  # empty: B = 7.2111
        tensor([7.2111, 7.2111, 7.2111, 7.2111])

    References:
        H. Kervadec, J. Bouchtiba, C. Desrosiers, E. Granger, J. Dolz and I. Ben Ayed, "Boundary
        loss for highly unbalanced segmentation", MIDL 2019 / Medical Image Analysis 67, 2021.

    Note:
        Both distances come from one exact transform of the batch stacked with its complement
        (two EDTs per image, as with SciPy). Values are exact up to float32 rounding; the sign
        and the no-surface policy need no host synchronisation.
    """
    validate_args = _checks.check_bool("validate_args", validate_args)
    mask = _as_mask(target, num_classes, ignore_index, validate_args)
    spacing_t = _checks.check_spacing(spacing, mask.dim() - 2, shape=mask.shape[2:])
    shift = _checks.check_number("inside_shift", inside_shift, low=0.0)
    _checks.check_choice("no_surface", no_surface, NO_SURFACE)
    backend = _resolve_backend(backend, mask)
    spatial = tuple(range(2, mask.dim()))
    dist = distance_to_seeds(torch.cat([mask, ~mask]), spacing_t, backend=backend)
    outside, inside = dist.chunk(2)
    phi = torch.where(mask, shift - inside, outside)
    if mask.numel() == 0:
        return phi
    empty = ~mask.any(dim=spatial, keepdim=True)
    full = mask.all(dim=spatial, keepdim=True)
    if no_surface == "zero":
        return torch.where(empty | full, 0.0, phi)
    bound = extent_diagonal(mask.shape[2:], spacing_t)
    return torch.where(full, shift - bound, torch.where(empty, bound, phi))


def sample_signed_distance_map(
    sample: np.ndarray | Tensor,
    *,
    spacing: Spacing = None,
    spatial_dims: int | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    inside_shift: float = 0.0,
    no_surface: str = "bound",
    backend: str = "auto",
    validate_args: bool = True,
) -> np.ndarray | Tensor:
    """:func:`signed_distance_map` of one sample, for a ``Dataset`` (NumPy array or CPU tensor).

    Computing the target's map in the data loader (its workers run in parallel with the training
    step) costs it once per sample instead of once per step, with each volume's own spacing.

    Args:
        sample: Binary ``(C, *S)`` or ``(*S)``; with ``num_classes``, class indices ``(*S)`` or
            ``(1, *S)``. A NumPy array (any byte order, unsigned integers and read-only memory maps
            included, as nibabel's ``dataobj`` returns them; never written to) or a tensor (CPU or CUDA).
        spacing: As in :func:`signed_distance_map`; a sequence also fixes the number of spatial dims.
        spatial_dims: Number of spatial dims (1 to 3); needed when ``spacing`` is None or a number.
        num_classes, ignore_index, inside_shift, no_surface, backend, validate_args: As in
            :func:`signed_distance_map`.

    Shape:
        - sample: ``(C, *S)`` or ``(*S)``.
        - output: ``(C, *S)`` (``(num_classes, *S)``), or ``(*S)`` for a binary ``(*S)`` sample.

    Returns:
        A float32 array for an array, a float32 tensor on the sample's device for a tensor.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((4, 6), dtype=bool); mask[1:3, 2:5] = True
        >>> phi = sample_signed_distance_map(mask, spacing=(1.0, 0.5))
        >>> phi.dtype, phi.shape, float(phi[1, 3])
        (dtype('float32'), (4, 6), -1.0)
    """
    dims = _spatial_dims(spacing, spatial_dims)
    validate_args = _checks.check_bool("validate_args", validate_args)
    is_numpy = isinstance(sample, np.ndarray)
    if not is_numpy and not isinstance(sample, Tensor):
        raise TypeError(f"sample must be a numpy.ndarray or a torch.Tensor; received {type(sample).__name__}")
    tensor: Tensor = (_checks.tensor_from_array("sample", sample, validate_args=validate_args)
                      if isinstance(sample, np.ndarray) else sample)
    if tensor.dim() not in (dims, dims + 1):
        raise ValueError(
            f"sample must have shape (C, *spatial) or (*spatial) with {dims} spatial dims; "
            f"received shape {tuple(tensor.shape)}"
        )
    squeeze = tensor.dim() == dims
    if num_classes is not None:
        labels = tensor if squeeze else _single_channel(tensor)
        phi = signed_distance_map(labels[None], spacing=spacing, num_classes=num_classes, ignore_index=ignore_index,
                                  inside_shift=inside_shift, no_surface=no_surface, backend=backend,
                                  validate_args=validate_args)[0]
    else:
        batch = tensor[None, None] if squeeze else tensor[None]
        phi = signed_distance_map(batch, spacing=spacing, inside_shift=inside_shift, no_surface=no_surface,
                                  backend=backend, validate_args=validate_args)[0]
        phi = phi[0] if squeeze else phi
    return phi.numpy() if is_numpy else phi


class SignedDistanceTransform:
    """A ``Dataset`` transform: a target sample to its :func:`signed_distance_map` (once per sample).

    Args:
        spacing: Default pixel size (a call may pass its own, e.g. each volume's spacing).
        spatial_dims: Number of spatial dims; needed when no spacing sequence tells it.
        num_classes, ignore_index, inside_shift, no_surface, backend, validate_args: As in
            :func:`signed_distance_map`.

    Example:
        >>> import numpy as np
        >>> to_map = SignedDistanceTransform(spatial_dims=3, num_classes=3)
        >>> labels = np.random.default_rng(0).integers(0, 3, size=(8, 16, 16))
        >>> to_map(labels, spacing=(2.5, 0.8, 0.8)).shape  # in Dataset.__getitem__
        (3, 8, 16, 16)
    """

    def __init__(
        self,
        *,
        spacing: Spacing = None,
        spatial_dims: int | None = None,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        inside_shift: float = 0.0,
        no_surface: str = "bound",
        backend: str = "auto",
        validate_args: bool = True,
    ) -> None:
        self.spatial_dims = _spatial_dims(spacing, spatial_dims)
        self.spacing = None if spacing is None else _checks.check_spacing(spacing, self.spatial_dims)
        self.num_classes = None if num_classes is None else _checks.check_num_classes(num_classes)
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        self.inside_shift = _checks.check_number("inside_shift", inside_shift, low=0.0)
        self.no_surface = _checks.check_choice("no_surface", no_surface, NO_SURFACE)
        self.backend = _checks.check_choice("backend", backend, _checks.BACKENDS)
        self.validate_args = _checks.check_bool("validate_args", validate_args)

    def __call__(self, sample: np.ndarray | Tensor, spacing: Spacing = None) -> np.ndarray | Tensor:
        return sample_signed_distance_map(
            sample, spacing=self.spacing if spacing is None else spacing, spatial_dims=self.spatial_dims,
            num_classes=self.num_classes, ignore_index=self.ignore_index, inside_shift=self.inside_shift,
            no_surface=self.no_surface, backend=self.backend, validate_args=self.validate_args,
        )

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(spacing={self.spacing}, spatial_dims={self.spatial_dims}, "
                f"num_classes={self.num_classes}, inside_shift={self.inside_shift}, no_surface={self.no_surface!r})")


def extent_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """``sqrt(sum_i (S_i spacing_i)^2)``: the diagonal of an image's extent, above any distance in it."""
    return math.sqrt(sum((s * h) ** 2 for s, h in zip(shape, spacing, strict=False)))


def _as_mask(target: object, num_classes: int | None, ignore_index: int | None, validate_args: bool) -> Tensor:
    """The target as a bool ``(N, C, *S)`` mask (one-hot for class indices)."""
    ignore_index = _checks.check_ignore_index(ignore_index)
    if num_classes is None:
        if ignore_index is not None:
            raise ValueError(f"ignore_index must be None unless num_classes is given; received {ignore_index!r}")
        target = _checks.check_spatial_tensor("target", target)
        return _checks.check_binary("target", target, validate_args=validate_args)
    num_classes, labels = _checks.check_labels(target, num_classes, ignore_index, validate_args=validate_args)
    classes = torch.arange(num_classes, device=labels.device).view((1, num_classes) + (1,) * (labels.dim() - 1))
    mask = labels.unsqueeze(1) == classes
    if ignore_index is not None:
        mask &= (labels != ignore_index).unsqueeze(1)
    return mask


def _resolve_backend(backend: object, tensor: Tensor) -> str:
    """``"torch"`` or ``"scipy"`` for ``tensor``: SciPy only for CPU tensors."""
    backend = _checks.check_choice("backend", backend, _checks.BACKENDS)
    if backend == "torch":
        return "torch"
    if _traced(tensor):  # torch.compile or a torch.func transform: no NumPy round trip
        if backend == "scipy":
            raise ValueError("backend='scipy' cannot run under torch.compile or a torch.func transform (no NumPy "
                             "data there); use backend='torch' or 'auto'")
        return "torch"
    if tensor.device.type != "cpu":
        if backend == "scipy":
            raise ValueError(
                f"backend='scipy' needs a CPU tensor (no copy to the host is made); received device {tensor.device}. "
                "Use backend='torch' or 'auto'."
            )
        return "torch"
    if _scipy_available():
        return "scipy"
    if backend == "scipy":
        raise ImportError(
            "backend='scipy' needs SciPy, which is not installed: pip install \"stableloss[distance]\" "
            "(or use backend='torch')"
        )
    return "torch"


def _traced(tensor: Tensor) -> bool:
    """Whether ``tensor`` has no NumPy-readable data: under ``torch.compile`` or a ``torch.func`` transform."""
    return _checks.is_traced(tensor)


def _scipy_available() -> bool:
    try:
        import scipy.ndimage  # type: ignore[import-untyped]  # noqa: F401  (imported to test availability)
    except ImportError:
        return False
    return True


def _spatial_dims(spacing: Spacing, spatial_dims: int | None) -> int:
    """The number of spatial dims, from ``spatial_dims`` or the length of a ``spacing`` sequence."""
    if spatial_dims is not None:
        if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or not 1 <= spatial_dims <= 3:
            raise ValueError(f"spatial_dims must be 1, 2 or 3; received {spatial_dims!r}")
        return spatial_dims
    if spacing is None or isinstance(spacing, (int, float)):
        raise ValueError(
            "spatial_dims must be given when spacing is None or a single number (a sample of shape (C, *S) "
            f"and one of shape (*S) look alike); received spacing={spacing!r}, spatial_dims=None"
        )
    dims = len(_checks.as_number_tuple("spacing", spacing))
    if not 1 <= dims <= 3:
        raise ValueError(f"spacing must have 1 to 3 values (one per spatial dim); received {dims} values")
    return dims


def _single_channel(labels: Tensor) -> Tensor:
    """``(1, *S)`` class indices to ``(*S)``."""
    if labels.shape[0] != 1:
        raise ValueError(
            "sample must be class indices of shape (*spatial) or (1, *spatial) when num_classes is given; "
            f"received shape {tuple(labels.shape)}"
        )
    return labels[0]
