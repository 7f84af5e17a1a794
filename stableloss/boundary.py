"""Boundary loss (Kervadec et al.): the prediction weighted by the target's signed distance map."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from torch import Tensor

from stableloss import _spatial
from stableloss._options import BoundaryOptions, OptionSpec
from stableloss._typing import BoundaryKwargs

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import BoundaryAttributes as _BoundaryAttributes
else:  # the option attributes are properties that OptionsModule makes: the base is for type checkers
    _BoundaryAttributes = object

BOUNDARY = OptionSpec("boundary_loss()", BoundaryOptions,
                      excluded=("alpha", "threshold", "alpha_max", "smooth", "ignore_empty"))


def boundary_loss(input: Tensor, target: Tensor, *, mode: str, distance_map: Optional[Tensor] = None,
                  **options: Unpack[BoundaryKwargs]) -> Tensor:
    """Boundary loss: the mean of ``p * phi`` per class, ``phi`` the target's signed distance map.

    .. math::

        \\ell_c = \\frac{1}{|\\Omega|} \\sum_{x \\in \\Omega} p_c(x) \\, \\phi_c(x), \\qquad
        \\mathcal{L} = \\operatorname{mean}_c \\ell_c

    with ``phi_c`` negative inside class ``c``'s target and positive outside, in the units of
    ``spacing`` (:func:`~stableloss.signed_distance_map`). A predicted pixel costs its distance from
    the target's surface: a false positive far from the object costs more than one next to it, so
    the gradient grows with the distance of an error (Kervadec et al.'s point), unlike a region loss.
    The loss is negative when the prediction lies inside the target (its minimum is minus the mean
    inside distance), so it is used **with** a region loss (:class:`~stableloss.BoundaryAwareLoss`),
    typically with a weight that grows during training (:class:`~stableloss.RebalanceSchedule`).

    Pass the maps in ``distance_map`` when the data loader computes them once per sample
    (:class:`~stableloss.SignedDistanceTransform`; ``BoundaryLoss.distance_transform()`` returns one
    with the loss's settings); otherwise they are computed from the target at every call (exact, on
    the target's device). A loader map must be made with the loss's ``spacing``, ``inside_shift``
    and ``no_surface`` (``normalize`` is applied by the loss to either map): with ``validate_args``
    (the default) the loss checks this exactly and raises ``ValueError`` naming the setting that
    differs, instead of silently computing another number.

    Empty and full targets have no surface: with ``no_surface="bound"`` (default) an empty channel's
    map is the image's extent diagonal ``B`` everywhere, so every predicted pixel on an empty image
    costs ``B`` (a false positive there is penalised, not free as with MONAI's zero map), and a full
    channel's map is ``-B``.

    Args:
        input: Logits ``(N, C, *S)`` with 1 to 3 spatial dims (probabilities if ``from_logits=False``).
        target: Binary ``(N, 1, *S)`` or ``(N, *S)`` 0/1; multiclass ``(N, *S)`` class indices;
            multilabel ``(N, C, *S)`` 0/1 (soft labels only with ``distance_map``).
        mode: ``"binary"``, ``"multiclass"`` (softmax over C) or ``"multilabel"`` (sigmoid per C).
        distance_map: Precomputed target maps ``(N, C, *S)`` (float), or None to compute them.
        **options: Keyword-only, documented in :class:`~stableloss.BoundaryOptions`: ``classes``,
            ``from_logits``, ``ignore_index``, ``spacing``, ``no_surface="bound"``,
            ``normalize=False`` (divide by ``B``: maps in [-1, 1]), ``inside_shift=0.0`` (1 for
            Kervadec's code), ``class_weights``, ``reduction``, ``backend``, ``validate_args``.

    Shape:
        - input: ``(N, C, *S)``; target: as above; distance_map: ``(N, C, *S)``.
        - output: scalar, or ``(C,)`` with ``reduction="none"``.

    Returns:
        The loss, float32 (float64 for a float64 input).

    Example:
        >>> logits = torch.tensor([[[-9.0, 9.0, 9.0, -9.0, -9.0, 9.0]]])  # a far false positive at the end
        >>> target = torch.tensor([[[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]]])
        >>> round(boundary_loss(logits, target, mode="binary").item(), 3)  # (-1 - 1 + 3) / 6
        0.167

    References:
        Kervadec, Bouchtiba, Desrosiers, Granger, Dolz, Ben Ayed. Boundary loss for highly
        unbalanced segmentation. MIDL 2019; Medical Image Analysis 67, 2021.

    Note:
        Probabilities and maps are float32 and the sums float32 (a map reaches +-260 on a 512x512
        image and ``sum(p * phi)`` overflows float16); logits of +-inf are saturated
        probabilities; a NaN input gives NaN.
    """
    return boundary_from_options(input, target, BOUNDARY.build(dict(options, mode=mode)), distance_map=distance_map)


boundary_loss.__signature__ = BOUNDARY.function_signature(extra=("distance_map",))  # type: ignore[attr-defined]


def boundary_from_options(input: Tensor, target: Tensor, options: BoundaryOptions, *, distance_map: Optional[Tensor] = None,
                          classes: Optional[Tensor] = None, class_weights: Optional[Tensor] = None) -> Tensor:
    """The pipeline of :func:`boundary_loss` for validated options (a module passes its buffers)."""
    batch, raw_target = _spatial.prepare(input, target, options)
    if distance_map is None:
        phi = _spatial.target_maps(raw_target, batch, options, inside_shift=options.inside_shift)
    else:
        phi = _spatial.checked_map(distance_map, batch, options)
    if options.normalize:
        phi = phi / _spatial.normalizer(batch)
    losses = _spatial.class_mean(batch.probs * phi, batch.valid)
    return _spatial.reduce(losses, options, classes=classes, class_weights=class_weights)


class BoundaryLoss(_spatial.DistanceMapLoss, _BoundaryAttributes):
    """Boundary loss (Kervadec et al.); a thin shell over :func:`boundary_loss`.

    ``BoundaryLoss(mode, *, classes=None, from_logits=True, ignore_index=None, spacing=None,
    no_surface="bound", normalize=False, inside_shift=0.0, class_weights=None, reduction="mean",
    backend="auto", validate_args=True)``; ``forward(input, target, distance_map=None)``.

    Example:
        >>> criterion = BoundaryLoss("binary", spacing=(0.8, 0.8))
        >>> logits = torch.randn(2, 1, 16, 16, requires_grad=True)
        >>> target = torch.zeros(2, 1, 16, 16); target[:, :, 4:10, 4:10] = 1
        >>> criterion(logits, target).backward()
        >>> bool(torch.isfinite(logits.grad).all())
        True
    """

    spec = BOUNDARY

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, **options: Unpack[BoundaryKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor, distance_map: Optional[Tensor] = None) -> Tensor:
        return boundary_from_options(input, target, self.options, distance_map=distance_map,
                                     classes=self.option_tensor("classes"),
                                     class_weights=self.option_tensor("class_weights"))
