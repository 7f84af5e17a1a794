"""Hausdorff-distance loss (Karimi and Salcudean): squared errors weighted by distances to both surfaces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

from stableloss import _spatial
from stableloss._options import BoundaryOptions, OptionSpec
from stableloss._typing import HausdorffClassKwargs, HausdorffKwargs
from stableloss.distance import signed_distance_map

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import HausdorffAttributes as _HausdorffAttributes
else:  # the option attributes are properties that OptionsModule makes: the base is for type checkers
    _HausdorffAttributes = object

HAUSDORFF = OptionSpec("hausdorff_dt_loss()", BoundaryOptions,
                       excluded=("inside_shift", "alpha_max", "smooth", "ignore_empty"))


def hausdorff_dt_loss(input: Tensor, target: Tensor, *, mode: str, distance_map: Optional[Tensor] = None,
                      **options: Unpack[HausdorffKwargs]) -> Tensor:
    """Hausdorff-DT loss: squared errors weighted by the distances to the predicted and true surfaces.

    .. math::

        \\ell_c = \\frac{1}{|\\Omega|} \\sum_{x \\in \\Omega} (p_c(x) - t_c(x))^2
        \\bigl(d_{p,c}(x)^{\\alpha} + d_{t,c}(x)^{\\alpha}\\bigr), \\qquad
        \\mathcal{L} = \\operatorname{mean}_c \\ell_c

    ``d_t`` is the unsigned distance of each pixel to the target's surface (``|phi|`` of
    :func:`~stableloss.signed_distance_map`), ``d_p`` the same for the predicted mask
    ``p > threshold``, recomputed at every call on the input's device (exact; detached: the mask
    carries no gradient). An error far from both surfaces weighs ``d^alpha`` more than one on them,
    which is how the loss approximates the Hausdorff distance (Karimi and Salcudean's one-sided
    distance-transform form, as in MONAI's ``HausdorffDTLoss``).

    Empty and full masks have no surface: with ``no_surface="bound"`` (default) their distance is
    the image's extent diagonal ``B`` everywhere, so a false positive on an empty image is
    penalised with ``B^alpha`` (MONAI's ``no_surface="zero"`` counts it with ``d_p`` alone). For
    raw distances in pixels (the default) the loss grows like ``B^alpha``; ``normalize=True`` divides
    the distances by ``B`` (each weight in [0, 2]).

    Args:
        input: Logits ``(N, C, *S)`` with 1 to 3 spatial dims (probabilities if ``from_logits=False``).
        target: Binary ``(N, 1, *S)`` or ``(N, *S)``; multiclass ``(N, *S)`` indices; multilabel
            ``(N, C, *S)``.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        distance_map: The target's signed maps ``(N, C, *S)`` (:func:`~stableloss.signed_distance_map`
            with ``inside_shift=0``, as a loader computes them; ``HausdorffDTLoss.distance_transform()``
            makes them with the loss's settings), or None to compute them. With ``validate_args`` a
            map made with another ``spacing`` or ``no_surface`` raises ``ValueError``.
        **options: Keyword-only, documented in :class:`~stableloss.BoundaryOptions`: ``alpha=2.0``,
            ``threshold=0.5``, ``classes``, ``from_logits``, ``ignore_index``, ``spacing``,
            ``no_surface="bound"``, ``normalize=False``, ``class_weights``, ``reduction``,
            ``backend``, ``validate_args``.

    Shape:
        - input: ``(N, C, *S)``; output: scalar, or ``(C,)`` with ``reduction="none"``.

    Returns:
        The loss, float32 (float64 for a float64 input).

    Example:
        >>> logits = torch.tensor([[[-9.0, 9.0, 9.0, -9.0, -9.0, 9.0]]])
        >>> target = torch.tensor([[[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]]])
        >>> round(hausdorff_dt_loss(logits, target, mode="binary").item(), 2)  # the far pixel: (1^2 + 3^2) / 6
        1.67

    References:
        Karimi, Salcudean. Reducing the Hausdorff distance in medical image segmentation with
        convolutional neural networks. IEEE TMI 39(2), 2020.

    Note:
        ``(p - t)^2`` uses ``q = 1 - p`` computed without rounding through ``p`` where ``t = 1``;
        distances, powers and sums are float32 (``d^2`` reaches 7e4 on a 256x256 image: float16
        overflows at 65504).
    """
    return hausdorff_from_options(input, target, HAUSDORFF.build(dict(options, mode=mode)), distance_map=distance_map)


hausdorff_dt_loss.__signature__ = HAUSDORFF.function_signature(extra=("distance_map",))  # type: ignore[attr-defined]


def hausdorff_from_options(input: Tensor, target: Tensor, options: BoundaryOptions, *,
                           distance_map: Optional[Tensor] = None, classes: Optional[Tensor] = None,
                           class_weights: Optional[Tensor] = None) -> Tensor:
    """The pipeline of :func:`hausdorff_dt_loss` for validated options (a module passes its buffers)."""
    batch, raw_target = _spatial.prepare(input, target, options)
    if distance_map is None:
        target_distance = _spatial.target_maps(raw_target, batch, options, inside_shift=0.0).abs()
    else:
        target_distance = _spatial.checked_map(distance_map, batch, options).abs()
    with torch.no_grad():
        predicted = batch.probs > options.threshold
        if batch.valid is not None:
            predicted &= batch.valid
        predicted_distance = signed_distance_map(predicted, spacing=batch.spacing, no_surface=options.no_surface,
                                                 backend=options.backend, validate_args=False).abs()
        weight = predicted_distance.to(batch.probs.dtype).pow(options.alpha) + target_distance.pow(options.alpha)
        if options.normalize:
            weight = weight / _spatial.normalizer(batch) ** options.alpha
    losses = _spatial.class_mean(_spatial.hard_error(batch).square() * weight, batch.valid)
    return _spatial.reduce(losses, options, classes=classes, class_weights=class_weights)


class HausdorffDTLoss(_spatial.DistanceMapLoss, _HausdorffAttributes):
    """Hausdorff-DT loss (Karimi and Salcudean); a thin shell over :func:`hausdorff_dt_loss`.

    ``HausdorffDTLoss(mode, alpha=2.0, *, threshold=0.5, classes=None, from_logits=True,
    ignore_index=None, spacing=None, no_surface="bound", normalize=False, class_weights=None,
    reduction="mean", backend="auto", validate_args=True)``; ``forward(input, target, distance_map=None)``.

    Example:
        >>> criterion = HausdorffDTLoss("multiclass", alpha=2.0)
        >>> loss = criterion(torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 16, 16)))
        >>> bool(torch.isfinite(loss))
        True
    """

    spec = HAUSDORFF
    positional = ("mode", "alpha")

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, alpha: float = 2.0, **options: Unpack[HausdorffClassKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor, distance_map: Optional[Tensor] = None) -> Tensor:
        return hausdorff_from_options(input, target, self.options, distance_map=distance_map,
                                      classes=self.option_tensor("classes"),
                                      class_weights=self.option_tensor("class_weights"))
