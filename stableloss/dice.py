"""Dice loss: the region pipeline with the Tversky weights fixed at ``alpha = beta = 1/2``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from torch import Tensor

from stableloss._options import OptionSpec, RegionOptions
from stableloss._region import RegionLossModule, region_loss
from stableloss._typing import DiceKwargs, IntSequence, RegionClassKwargs
from stableloss.tversky import SMP_POSITIONAL

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import DiceAttributes as _DiceAttributes
else:  # the option attributes are properties that OptionsModule makes: the base is for type checkers
    _DiceAttributes = object

DICE = OptionSpec("dice_loss()", RegionOptions, fixed={"alpha": 0.5, "beta": 0.5, "gamma": 1.0})


def dice_loss(input: Tensor, target: Tensor, *, mode: str, **options: Unpack[DiceKwargs]) -> Tensor:
    """Soft Dice loss, FP16-safe, for binary, multiclass and multilabel segmentation.

    .. math::

        D_c = \\frac{TP_c + s}{TP_c + (FP_c + FN_c) / 2 + s}, \\qquad
        \\ell_c = 1 - D_c = \\frac{FP_c + FN_c}{2 TP_c + FP_c + FN_c + 2 s}, \\qquad
        \\mathcal{L} = \\operatorname{mean}_c \\ell_c

    (the smoothing of segmentation-models-pytorch: Tversky with ``alpha = beta = 1/2``; for hard
    labels ``FP + FN = sum |p - t|`` and ``2 TP + FP + FN = sum p + sum t``).

    With ``log_loss=True``, :math:`\\ell_c = -\\log D_c`. By default the counts are summed over the
    whole batch (one score per class, as segmentation-models-pytorch does); ``per_image=True``
    scores each image separately.

    Empty masks: a class with no target pixel (in the batch, or in the image with ``per_image``)
    contributes loss 0 and no gradient, whatever is predicted (``ignore_empty=True``, the
    segmentation-models-pytorch behaviour). It still counts in the mean over classes.

    Args:
        input: Logits ``(N, C, *S)`` with 0 to 3 spatial dims, or ``(N,)`` in binary mode
            (probabilities if ``from_logits=False``), any float dtype.
        target: Binary ``(N, 1, *S)`` or ``(N, *S)`` in [0, 1] (soft labels allowed); multiclass
            ``(N, *S)`` integer class indices; multilabel ``(N, C, *S)`` in [0, 1].
        mode: ``"binary"``, ``"multiclass"`` (softmax over C) or ``"multilabel"`` (sigmoid per C).
        **options: Keyword-only, each documented in :class:`~stableloss.RegionOptions`:
            ``classes=None``, ``log_loss=False``, ``from_logits=True``, ``smooth=0.0``,
            ``ignore_index=None``, ``eps=1e-7``, ``class_weights=None``, ``per_image=False``,
            ``ignore_empty=True``, ``global_batch=False``, ``reduction="mean"``,
            ``validate_args=True``. An unknown keyword raises ``TypeError``.

    Shape:
        - input: ``(N, C, *S)`` with 0 to 3 spatial dims.
        - target: as above.
        - output: scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    Returns:
        The loss, float32 (float64 for a float64 input), in [0, 1] (``1 - Dice``) or
        [0, -log eps] (``log_loss``).

    Example:
        >>> logits = torch.full((16, 1, 512, 512), 8.0, dtype=torch.float16)
        >>> target = torch.ones(16, 1, 512, 512)
        >>> loss = dice_loss(logits, target, mode="binary")  # float16 sums would overflow here
        >>> loss.dtype, bool(torch.isfinite(loss)), round(loss.item(), 4)
        (torch.float32, True, 0.0002)

    References:
        Milletari, Navab, Ahmadi. V-Net. 3DV 2016. Wang, Blaschko. Dice semimetric losses. 2023.

    Note:
        Sums run in float32 (float16 sums overflow at 65504 pixels), logits are clamped to
        +-65504 with a straight-through gradient, and ``1 - D`` is formed as the ratio above rather
        than by subtraction, so it keeps full precision near a perfect prediction. A NaN input
        (anywhere, ignored pixels included) gives NaN.
    """
    return region_loss(input, target, DICE.build(dict(options, mode=mode)))


dice_loss.__signature__ = DICE.function_signature()  # type: ignore[attr-defined]


class DiceLoss(RegionLossModule, _DiceAttributes):
    """Dice loss; a thin shell over :func:`dice_loss`.

    ``DiceLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, *, class_weights=None, per_image=False, ignore_empty=True,
    global_batch=False, reduction="mean", validate_args=True)``. The positional arguments, their
    order and defaults match ``segmentation_models_pytorch.losses.DiceLoss``, so replacing the
    import gives the same value in float32; every option is an attribute, validated when set.

    Example:
        >>> criterion = DiceLoss("binary")
        >>> logits = torch.randn(2, 1, 32, 32, requires_grad=True)
        >>> loss = criterion(logits, (torch.rand(2, 1, 32, 32) > 0.5).float())
        >>> loss.backward()
        >>> bool(torch.isfinite(logits.grad).all())
        True
        >>> criterion.smooth = 1.0  # validated: criterion.smooth = -1.0 raises ValueError
    """

    spec = DICE
    positional = SMP_POSITIONAL

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, classes: Optional[IntSequence] = None, log_loss: bool = False, from_logits: bool = True,
                     smooth: float = 0.0, ignore_index: Optional[int] = None, eps: float = 1e-7,
                     **options: Unpack[RegionClassKwargs]) -> None: ...
