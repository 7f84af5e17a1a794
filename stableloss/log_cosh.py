"""Log-cosh Dice loss (Jadon 2020), in an overflow-free form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

from stableloss._options import OptionSpec, RegionOptions
from stableloss._region import RegionLossModule, region_loss
from stableloss._typing import IntSequence, LogCoshDiceKwargs, RegionClassKwargs

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import LogCoshDiceAttributes as _LogCoshDiceAttributes
else:  # the option attributes are properties that OptionsModule makes: the base is for type checkers
    _LogCoshDiceAttributes = object

LOG_COSH_DICE = OptionSpec("log_cosh_dice_loss()", RegionOptions, fixed={"alpha": 0.5, "beta": 0.5, "gamma": 1.0},
                           excluded=("log_loss",))


def log_cosh_unit(x: Tensor) -> Tensor:
    """``log(cosh(x))`` for ``x`` in [0, 1] (a Dice loss), as ``log1p(sinh(x)^2) / 2``.

    Exact in form (``cosh^2 = 1 + sinh^2``), free of cancellation down to ``x^2 / 2`` for tiny
    ``x`` (where ``log(cosh(x))`` rounds ``cosh`` to 1 and returns 0), and no overflow on [0, 1]
    (``cosh`` itself overflows float16 at 11.1). Its gradient is ``tanh(x)``.
    """
    return 0.5 * torch.log1p(torch.sinh(x).square())


def log_cosh_dice_loss(input: Tensor, target: Tensor, *, mode: str, **options: Unpack[LogCoshDiceKwargs]) -> Tensor:
    """Log-cosh Dice loss: ``log(cosh(1 - Dice))`` per class, then the mean over classes.

    .. math::

        \\ell_c = \\log\\cosh(1 - D_c) = \\tfrac{1}{2} \\log\\bigl(1 + \\sinh^2(1 - D_c)\\bigr),
        \\qquad \\mathcal{L} = \\operatorname{mean}_c \\ell_c

    Applied per class (for one class, as in the binary liver task, this is exactly
    ``log(cosh(DiceLoss))``); with several classes each class's gradient is scaled by
    ``tanh(1 - D_c)``, so badly segmented classes weigh more. Values lie in
    ``[0, log cosh 1] = [0, 0.4338]``. Empty masks behave as in :func:`~stableloss.dice_loss`
    (loss 0 with ``ignore_empty=True``).

    Args:
        input: Logits ``(N, C, *S)`` (probabilities if ``from_logits=False``).
        target: As for :func:`~stableloss.dice_loss`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        **options: The options of :func:`~stableloss.dice_loss` except ``log_loss``.

    Shape:
        - input: ``(N, C, *S)``; output: scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``.

    Returns:
        The loss, float32 (float64 for a float64 input).

    Example:
        >>> logits = torch.zeros(1, 1, 4, 4)
        >>> round(log_cosh_dice_loss(logits, torch.ones(1, 1, 4, 4), mode="binary").item(), 4)
        0.0546

    References:
        Jadon. A survey of loss functions for semantic segmentation. CIBCB 2020.

    Note:
        ``cosh`` overflows float16 at 11.1 and ``log(cosh(x))`` loses small ``x`` entirely;
        ``log_cosh_unit`` does neither on [0, 1], and its gradient is ``tanh(x)``.
    """
    return region_loss(input, target, LOG_COSH_DICE.build(dict(options, mode=mode)), transform=log_cosh_unit)


log_cosh_dice_loss.__signature__ = LOG_COSH_DICE.function_signature()  # type: ignore[attr-defined]


class LogCoshDiceLoss(RegionLossModule, _LogCoshDiceAttributes):
    """Log-cosh Dice loss; a thin shell over :func:`log_cosh_dice_loss`.

    ``LogCoshDiceLoss(mode, classes=None, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-7,
    *, ...)``.

    Example:
        >>> LogCoshDiceLoss("binary")(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).item() > 0
        True
    """

    spec = LOG_COSH_DICE
    positional = ("mode", "classes", "from_logits", "smooth", "ignore_index", "eps")

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, classes: Optional[IntSequence] = None, from_logits: bool = True, smooth: float = 0.0,
                     ignore_index: Optional[int] = None, eps: float = 1e-7, **options: Unpack[RegionClassKwargs]) -> None: ...

    def transform(self, losses: Tensor) -> Tensor:
        """``log cosh`` of each class's Dice loss."""
        return log_cosh_unit(losses)
