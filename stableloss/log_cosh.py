"""Log-cosh Dice loss (Jadon 2020), in an overflow-free form."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from stableloss.tversky import Weights, _OverlapLoss, reduce_class_losses, tversky_class_losses

def log_cosh_unit(x: Tensor) -> Tensor:
    """``log(cosh(x))`` for ``x`` in [0, 1] (a Dice loss), as ``log1p(sinh(x)^2) / 2``.

    Exact in form (``cosh^2 = 1 + sinh^2``), free of cancellation down to ``x^2 / 2`` for tiny
    ``x`` (where ``log(cosh(x))`` rounds ``cosh`` to 1 and returns 0), and no overflow on [0, 1]
    (``cosh`` itself overflows float16 at 11.1). Its gradient is ``tanh(x)``.
    """
    return 0.5 * torch.log1p(torch.sinh(x).square())


def log_cosh_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    classes: Union[None, Sequence[int], Tensor] = None,
    from_logits: bool = True,
    smooth: float = 0.0,
    ignore_index: Optional[int] = None,
    eps: float = 1e-7,
    class_weights: Weights = None,
    per_image: bool = False,
    ignore_empty: bool = True,
    global_batch: bool = False,
    reduction: str = "mean",
    validate_args: bool = True,
) -> Tensor:
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
        classes, from_logits, smooth, ignore_index, eps, class_weights, per_image, ignore_empty,
            global_batch, reduction, validate_args: As for :func:`~stableloss.dice_loss`.

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
        :func:`log_cosh_unit` does neither on [0, 1], and its gradient is ``tanh(x)``.
    """
    losses = tversky_class_losses(
        input, target, mode=mode, alpha=0.5, beta=0.5, from_logits=from_logits, smooth=smooth,
        ignore_index=ignore_index, eps=eps, per_image=per_image, ignore_empty=ignore_empty,
        global_batch=global_batch, validate_args=validate_args,
    )
    return reduce_class_losses(log_cosh_unit(losses), mode=mode, classes=classes, class_weights=class_weights, reduction=reduction)


class LogCoshDiceLoss(_OverlapLoss):
    """Log-cosh Dice loss; a thin shell over :func:`log_cosh_dice_loss`.

    Example:
        >>> LogCoshDiceLoss("binary")(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).item() > 0
        True
    """

    def __init__(
        self,
        mode: str,
        classes: Optional[Sequence[int]] = None,
        from_logits: bool = True,
        smooth: float = 0.0,
        ignore_index: Optional[int] = None,
        eps: float = 1e-7,
        *,
        class_weights: Weights = None,
        per_image: bool = False,
        ignore_empty: bool = True,
        global_batch: bool = False,
        reduction: str = "mean",
        validate_args: bool = True,
    ) -> None:
        options = dict(from_logits=from_logits, smooth=smooth, ignore_index=ignore_index, eps=eps,
                       per_image=per_image, ignore_empty=ignore_empty, global_batch=global_batch,
                       reduction=reduction, validate_args=validate_args)
        super().__init__(mode, classes, class_weights, options)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return log_cosh_dice_loss(input, target, mode=self.mode, classes=self.classes, class_weights=self.class_weights, **self.options)
