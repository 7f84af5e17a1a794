"""Tversky loss and its special cases focal-Tversky and Jaccard (IoU).

Dice (``dice.py``) and log-cosh Dice (``log_cosh.py``) are the same pipeline with other fixed
options; the computation lives in :mod:`stableloss._region`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from torch import Tensor

from stableloss._options import OptionSpec, RegionOptions
from stableloss._region import RegionLossModule, region_loss
from stableloss._typing import DiceKwargs, IntSequence, RegionClassKwargs, TverskyKwargs

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import DiceAttributes as _JaccardAttributes
    from stableloss._typing import TverskyAttributes as _TverskyAttributes
else:  # the option attributes are properties that OptionsModule makes: the bases are for type checkers
    _JaccardAttributes = _TverskyAttributes = object

TVERSKY = OptionSpec("tversky_loss()", RegionOptions)
JACCARD = OptionSpec("jaccard_loss()", RegionOptions, fixed={"alpha": 1.0, "beta": 1.0, "gamma": 1.0})
SMP_POSITIONAL = ("mode", "classes", "log_loss", "from_logits", "smooth", "ignore_index", "eps")
"""The positional arguments of segmentation-models-pytorch's DiceLoss and JaccardLoss, in order."""


def tversky_loss(input: Tensor, target: Tensor, *, mode: str, **options: Unpack[TverskyKwargs]) -> Tensor:
    """Tversky loss, and focal-Tversky for ``gamma != 1``, per class, FP16-safe.

    .. math::

        TI_c = \\frac{TP_c + s}{TP_c + \\alpha FP_c + \\beta FN_c + s}, \\qquad
        \\ell_c = (1 - TI_c)^{\\gamma}, \\qquad \\mathcal{L} = \\operatorname{mean}_c \\ell_c

    ``alpha`` weights **false positives** and ``beta`` **false negatives** (the convention of
    Salehi et al. 2017 and segmentation-models-pytorch); ``beta > alpha`` favours recall.
    ``alpha = beta = 0.5`` is Dice, ``alpha = beta = 1`` is Jaccard (IoU). With ``gamma != 1`` the
    exponent is applied **per class before the mean**, as in Abraham and Khan (2019)
    (segmentation-models-pytorch applies it to the mean); ``gamma < 1`` (e.g. 0.75 = 1 / (4/3), the
    paper's choice) keeps a finite gradient at a perfect prediction.

    Args:
        input: Logits ``(N, C, *S)`` with 0 to 3 spatial dims, or ``(N,)`` in binary mode
            (probabilities if ``from_logits=False``), any float dtype.
        target: Binary ``(N, 1, *S)`` or ``(N, *S)``, values in [0, 1] (soft labels allowed);
            multiclass ``(N, *S)`` integer indices; multilabel ``(N, C, *S)`` in [0, 1].
        mode: ``"binary"``, ``"multiclass"`` (softmax over C) or ``"multilabel"`` (sigmoid per C).
        **options: Keyword-only, each documented in :class:`~stableloss.RegionOptions`:
            ``alpha=0.5`` (false positives), ``beta=0.5`` (false negatives), ``gamma=1.0``,
            ``classes=None``, ``log_loss=False``, ``from_logits=True``, ``smooth=0.0``,
            ``ignore_index=None``, ``eps=1e-7``, ``class_weights=None``, ``per_image=False``,
            ``ignore_empty=True``, ``global_batch=False``, ``reduction="mean"``,
            ``validate_args=True``. An unknown keyword raises ``TypeError``.

    Shape:
        - input: ``(N, C, *S)`` with 0 to 3 spatial dims ``S``.
        - target: see ``target`` above.
        - output: scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    Returns:
        The loss, float32 (float64 for a float64 input).

    Empty masks: a class with no target pixel (in the batch, or in the image with ``per_image``)
    contributes loss 0 and no gradient (``ignore_empty=True``, segmentation-models-pytorch's
    behaviour); it still counts in the class mean. With ``ignore_empty=False`` its score follows
    the formula: ``smooth / (alpha * FP + smooth)``.

    Example:
        >>> logits = torch.tensor([[[[4.0, -4.0], [4.0, -4.0]]]])
        >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
        >>> round(tversky_loss(logits, target, mode="binary", alpha=0.3, beta=0.7).item(), 4)
        0.2659

    References:
        Salehi, Erdogmus, Gholipour. Tversky loss function for image segmentation using 3D fully
        convolutional deep networks. MLMI 2017.
        Abraham, Khan. A novel focal Tversky loss function with improved attention U-Net for lesion
        segmentation. ISBI 2019.

    Note:
        Logits are clamped to +-65504 (straight-through), probabilities formed in float32, and
        ``1 - TI`` computed as ``(alpha FP + beta FN) / denominator`` from float32 sums, so the loss
        and its gradient are finite for every finite or infinite input. A NaN input gives NaN.
    """
    return region_loss(input, target, TVERSKY.build(dict(options, mode=mode)))


def jaccard_loss(input: Tensor, target: Tensor, *, mode: str, **options: Unpack[DiceKwargs]) -> Tensor:
    """Jaccard (IoU) loss, ``1 - TP / (TP + FP + FN)``: :func:`tversky_loss` with ``alpha = beta = 1``.

    Takes every option of :func:`tversky_loss` except ``alpha``, ``beta`` and ``gamma``.

    Example:
        >>> logits = torch.tensor([[[[4.0, -4.0], [4.0, -4.0]]]])
        >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
        >>> round(jaccard_loss(logits, target, mode="binary").item(), 4)
        0.3433
    """
    return region_loss(input, target, JACCARD.build(dict(options, mode=mode)))


tversky_loss.__signature__ = TVERSKY.function_signature()  # type: ignore[attr-defined]
jaccard_loss.__signature__ = JACCARD.function_signature()  # type: ignore[attr-defined]


class TverskyLoss(RegionLossModule, _TverskyAttributes):
    """Tversky / focal-Tversky loss; a thin shell over :func:`tversky_loss`.

    ``TverskyLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, alpha=0.5, beta=0.5, gamma=1.0, *, class_weights=None,
    per_image=False, ignore_empty=True, global_batch=False, reduction="mean", validate_args=True)``:
    the positional arguments match ``segmentation_models_pytorch.losses.TverskyLoss``; every option
    is an attribute (``loss.alpha = 0.3`` is validated and takes effect). See :func:`tversky_loss`.

    Example:
        >>> loss = TverskyLoss("binary", alpha=0.3, beta=0.7)
        >>> round(loss(torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)).item(), 4)  # 0.7 / (1 + 0.7)
        0.4118
    """

    spec = TVERSKY
    positional = SMP_POSITIONAL + ("alpha", "beta", "gamma")

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, classes: Optional[IntSequence] = None, log_loss: bool = False, from_logits: bool = True,
                     smooth: float = 0.0, ignore_index: Optional[int] = None, eps: float = 1e-7, alpha: float = 0.5,
                     beta: float = 0.5, gamma: float = 1.0, **options: Unpack[RegionClassKwargs]) -> None: ...


class JaccardLoss(RegionLossModule, _JaccardAttributes):
    """Jaccard (IoU) loss: :class:`TverskyLoss` with ``alpha = beta = 1``.

    ``JaccardLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, *, ...)``: the positional arguments match
    ``segmentation_models_pytorch.losses.JaccardLoss``.

    Example:
        >>> JaccardLoss("binary")(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).item()
        0.5
    """

    spec = JACCARD
    positional = SMP_POSITIONAL

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, classes: Optional[IntSequence] = None, log_loss: bool = False, from_logits: bool = True,
                     smooth: float = 0.0, ignore_index: Optional[int] = None, eps: float = 1e-7,
                     **options: Unpack[RegionClassKwargs]) -> None: ...
