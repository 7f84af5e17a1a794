"""Matthews correlation coefficient loss, ``1 - MCC``, free of overflow and cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from stableloss import _checks
from stableloss._activation import compute_dtype
from stableloss._module import OptionsModule
from stableloss._smp_options import MCCOptions, ModelessSpec
from stableloss._typing import ValidateArgsKwargs

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import MCCAttributes as _MCCAttributes
else:
    _MCCAttributes = object

MCC = ModelessSpec("mcc_loss()", MCCOptions)


def mcc_loss(input: Tensor, target: Tensor, *, eps: float = 1e-5, validate_args: bool = True) -> Tensor:
    """Matthews correlation coefficient loss ``1 - MCC`` of soft counts; takes **probabilities**.

    Over every element of the batch (one coefficient, as segmentation-models-pytorch computes it):

    .. math::

        TP = \\sum p t + \\epsilon, \\quad FP = \\sum p (1 - t) + \\epsilon, \\quad
        FN = \\sum (1 - p) t + \\epsilon, \\quad TN = \\sum (1 - p)(1 - t) + \\epsilon

        \\mathrm{MCC} = \\frac{TP \\cdot TN - FP \\cdot FN}
        {\\sqrt{(TP + FP)(TP + FN)(TN + FP)(TN + FN)}}, \\qquad \\mathcal{L} = 1 - \\mathrm{MCC} \\in [0, 2]

    Like segmentation-models-pytorch's ``MCCLoss``, it takes probabilities (apply ``sigmoid`` to a
    network's logits first), not logits; values outside [0, 1] are clamped to it.

    Empty masks: no special case. With ``eps`` in every count the coefficient stays defined: an
    all-background target predicted all background scores ``MCC = 1/2`` (loss 1/2), as in smp.

    Args:
        input: Probabilities of any shape (``(N, 1, *S)`` or ``(N, *S)`` for segmentation; a
            multi-channel input is pooled into one coefficient), any float dtype.
        target: The input's shape, or ``(N, *S)`` for a one-channel ``(N, 1, *S)`` input; values in
            [0, 1] (soft labels allowed).
        eps: Added to each count, > 0.
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.

    Shape:
        - input: any; target: the input's (or ``(N, *S)`` for ``(N, 1, *S)``); output: scalar.

    Returns:
        The loss, float32 (float64 for a float64 input).

    Example:
        >>> probs = torch.tensor([[[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]])
        >>> target = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]])
        >>> round(mcc_loss(probs, target).item(), 4)  # half right: MCC = 0
        1.0
        >>> probs = torch.full((16, 1, 512, 512), 0.75, dtype=torch.float16)  # counts far above 65504
        >>> round(mcc_loss(probs, (torch.arange(512) < 256).expand(16, 1, 512, 512).half()).item(), 4)
        1.0

    References:
        Abhishek, Hamarneh. Matthews correlation coefficient loss for deep convolutional networks:
        application to skin lesion segmentation. ISBI 2021.

    Note:
        The counts are float32 sums (float64 for float64 input), divided by their total before any
        product, so no product overflows (smp's float16 products of counts overflow at 65504) and
        none underflows. ``1 - MCC`` is formed without cancellation: where ``MCC >= 0`` as
        ``n (TP TN (FP + FN) + FP FN (TP + TN)) / (d (d + TP TN - FP FN))`` with ``n`` the total and
        ``d`` the square root above (an identity of the four counts; every term is >= 0), elsewhere
        as ``(d - TP TN + FP FN) / d`` (a sum of positive terms), so a near-perfect prediction keeps its
        small loss in float32. A NaN input gives NaN.
    """
    return mcc_from_options(input, target, MCC.build(dict(eps=eps, validate_args=validate_args)))


def mcc_from_options(input: Tensor, target: Tensor, options: MCCOptions) -> Tensor:
    """The MCC pipeline: validate, the four soft counts in float32, ``1 - MCC`` in closed form."""
    input, target = _checks.check_same_shape_pair(input, target, what="probabilities", ignore_index=None,
                                                  validate_args=options.validate_args)
    dtype = compute_dtype(input.dtype)
    probs = input.to(dtype).clamp(0.0, 1.0)
    labels = target.to(dtype)
    complement, background = 1.0 - probs, 1.0 - labels
    tp = torch.sum(probs * labels, dtype=dtype) + options.eps
    fp = torch.sum(probs * background, dtype=dtype) + options.eps
    fn = torch.sum(complement * labels, dtype=dtype) + options.eps
    tn = torch.sum(complement * background, dtype=dtype) + options.eps
    return one_minus_mcc(tp, fp, fn, tn)


def one_minus_mcc(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
    """``1 - MCC`` of positive counts, scaled to fractions first (no overflow) and without cancellation.

    With ``d = sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))``, ``b = TP TN - FP FN`` and ``n`` the sum of
    the four counts, ``d^2 - b^2 = n (TP TN (FP + FN) + FP FN (TP + TN))``, so for ``b >= 0``
    ``1 - MCC = (d - b) / d = (d^2 - b^2) / (d (d + b))``; for ``b < 0``, ``d - b`` has no cancellation.
    """
    total = tp + fp + fn + tn
    tp, fp, fn, tn = tp / total, fp / total, fn / total, tn / total
    total = tp + fp + fn + tn  # 1 up to rounding: the identity holds for the scaled counts as they are
    root = torch.sqrt((tp + fp) * (tn + fn)) * torch.sqrt((tp + fn) * (tn + fp))  # each product >= eps / (2 n)
    agreement = tp * tn - fp * fn
    correlated = agreement >= 0
    excess = total * (tp * tn * (fp + fn) + fp * fn * (tp + tn))  # d^2 - b^2
    near = excess / torch.where(correlated, root * (root + agreement), 1.0)
    far = (root - agreement) / root
    return torch.where(correlated, near, far)


class MCCLoss(OptionsModule, _MCCAttributes):
    """Matthews correlation coefficient loss on probabilities; a thin shell over :func:`mcc_loss`.

    ``MCCLoss(eps=1e-5, *, validate_args=True)``: segmentation-models-pytorch's argument and default,
    and its values in float32 (on probabilities, as smp's). ``eps`` must be > 0 (smp accepts 0, which
    gives NaN when a class is empty). Every option is an attribute, validated when set.

    Example:
        >>> criterion = MCCLoss()
        >>> logits = torch.randn(2, 1, 8, 8, requires_grad=True)
        >>> loss = criterion(torch.sigmoid(logits), (torch.rand(2, 1, 8, 8) > 0.5).float())
        >>> loss.backward()
        >>> bool(0.0 <= loss.item() <= 2.0), bool(torch.isfinite(logits.grad).all())
        (True, True)
    """

    spec = MCC
    positional = ("eps",)

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, eps: float = 1e-5, **options: Unpack[ValidateArgsKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mcc_from_options(input, target, self.options)
