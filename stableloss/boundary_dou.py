"""Boundary difference over union (Sun et al.): a Dice-like ratio whose weight comes from the boundary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

from stableloss import _spatial
from stableloss._module import OptionsModule
from stableloss._options import BoundaryOptions, OptionSpec
from stableloss._typing import BoundaryDoUKwargs
from stableloss.surface import surface_mask

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import BoundaryDoUAttributes as _BoundaryDoUAttributes
else:  # the option attributes are properties that OptionsModule makes: the base is for type checkers
    _BoundaryDoUAttributes = object

BOUNDARY_DOU = OptionSpec("boundary_dou_loss()", BoundaryOptions,
                          excluded=("spacing", "no_surface", "normalize", "inside_shift", "alpha", "threshold",
                                    "backend"))


def boundary_dou_loss(input: Tensor, target: Tensor, *, mode: str, **options: Unpack[BoundaryDoUKwargs]) -> Tensor:
    """Boundary DoU loss: difference over a union shrunk by an adaptive, boundary-driven ``alpha``.

    .. math::

        \\alpha_c = \\min\\Bigl(1 - 2 \\frac{C_c + s}{S_c + s}, \\alpha_{max}\\Bigr), \\qquad
        \\ell_c = \\frac{\\sum (p - t)^2 + s}{\\sum (p - t)^2 + (1 - \\alpha_c) \\sum p t + s}

    per class over the batch, with ``S_c`` the target's area (pixel count) and ``C_c`` its number
    of boundary pixels (pixels with a face neighbour outside the target, the image border counting
    as outside: 4-neighbourhood in 2D, 6 in 3D). The numerator is the difference
    ``G u P - G n P`` of Sun et al. for soft masks (``sum p^2 + sum t^2 - 2 sum p t``); the
    denominator removes ``alpha`` of the intersection from the union, so a prediction that misses
    part of a thin, mostly-boundary object (small ``alpha``) is penalised more. No distance transform.

    Empty masks: a class whose target is empty in the batch gives loss 0 and no gradient
    (``ignore_empty=True``; the formula would give the constant 1, which has no gradient either).

    Args:
        input: Logits ``(N, C, *S)`` with 1 to 3 spatial dims (probabilities if ``from_logits=False``).
        target: Binary ``(N, 1, *S)`` or ``(N, *S)`` (soft labels allowed); multiclass ``(N, *S)``
            indices; multilabel ``(N, C, *S)``.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        **options: Keyword-only, documented in :class:`~stableloss.BoundaryOptions`:
            ``alpha_max=0.8``, ``smooth=1e-5``, ``ignore_empty=True``, ``classes``,
            ``from_logits``, ``ignore_index``, ``class_weights``, ``reduction``, ``validate_args``.

    Shape:
        - input: ``(N, C, *S)``; output: scalar, or ``(C,)`` with ``reduction="none"``.

    Returns:
        The loss in [0, 1], float32 (float64 for a float64 input).

    Example:
        >>> logits = torch.full((1, 1, 8, 8), -9.0); logits[..., 2:6, 2:6] = 9.0
        >>> target = torch.zeros(1, 1, 8, 8); target[..., 2:6, 2:5] = 1.0  # one column too wide
        >>> # 4 errors, area 12, 10 boundary pixels: alpha = 1 - 2 * 10 / 12; 4 / (4 + (1 - alpha) * 12)
        >>> round(boundary_dou_loss(logits, target, mode="binary").item(), 3)
        0.167

    References:
        Sun, Chen, Li, Li, Zhang, Sun, Wu. Boundary difference over union loss for medical image
        segmentation. MICCAI 2023.

    Note:
        Sums are float32; ``sum (p - t)^2`` is summed from non-negative terms (with ``q`` computed
        without rounding through ``p`` where ``t = 1``) rather than formed by subtraction, so a
        near-perfect prediction keeps its small loss.
    """
    return boundary_dou_from_options(input, target, BOUNDARY_DOU.build(dict(options, mode=mode)))


boundary_dou_loss.__signature__ = BOUNDARY_DOU.function_signature()  # type: ignore[attr-defined]


def boundary_dou_from_options(input: Tensor, target: Tensor, options: BoundaryOptions, *,
                              classes: Optional[Tensor] = None, class_weights: Optional[Tensor] = None) -> Tensor:
    """The pipeline of :func:`boundary_dou_loss` for validated options (a module passes its buffers)."""
    batch, _ = _spatial.prepare(input, target, options)
    dims = (0,) + tuple(range(2, batch.probs.dim()))
    probs, truth = batch.probs, batch.target
    error = _spatial.hard_error(batch).square()
    if batch.valid is not None:
        probs, error = probs * batch.valid, error * batch.valid
    difference = error.sum(dim=dims)
    intersection = (probs * truth).sum(dim=dims)
    with torch.no_grad():
        hard = truth >= 0.5
        area = hard.sum(dim=dims, dtype=probs.dtype)
        boundary = surface_mask(hard).sum(dim=dims, dtype=probs.dtype)
        alpha = (1.0 - 2.0 * (boundary + options.smooth) / (area + options.smooth)).clamp_max(options.alpha_max)
    numerator = difference + options.smooth
    losses = numerator / (numerator + (1.0 - alpha) * intersection)
    if options.ignore_empty:
        losses = torch.where(truth.sum(dim=dims) == 0, 0.0, losses)
    return _spatial.reduce(losses, options, classes=classes, class_weights=class_weights)


class BoundaryDoULoss(OptionsModule, _BoundaryDoUAttributes):
    """Boundary DoU loss (Sun et al.); a thin shell over :func:`boundary_dou_loss`.

    ``BoundaryDoULoss(mode, *, alpha_max=0.8, smooth=1e-5, ignore_empty=True, classes=None,
    from_logits=True, ignore_index=None, class_weights=None, reduction="mean", validate_args=True)``.

    Example:
        >>> criterion = BoundaryDoULoss("binary")
        >>> loss = criterion(torch.randn(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float())
        >>> 0.0 <= loss.item() <= 1.0
        True
    """

    spec = BOUNDARY_DOU

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, **options: Unpack[BoundaryDoUKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return boundary_dou_from_options(input, target, self.options, classes=self.option_tensor("classes"),
                                         class_weights=self.option_tensor("class_weights"))
