"""Dice loss: the Tversky scorer with ``alpha = beta = 1/2``."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from stableloss.tversky import TverskyLoss, Weights, tversky_loss


def dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    classes: Union[None, Sequence[int], Tensor] = None,
    log_loss: bool = False,
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
        input: Logits ``(N, C, *S)`` (probabilities if ``from_logits=False``), any float dtype.
        target: Binary ``(N, 1, *S)`` or ``(N, *S)`` in [0, 1] (soft labels allowed); multiclass
            ``(N, *S)`` integer class indices; multilabel ``(N, C, *S)`` in [0, 1].
        mode: ``"binary"``, ``"multiclass"`` (softmax over C) or ``"multilabel"`` (sigmoid per C).
        classes: Indices of the classes that enter the mean.
        log_loss: Use ``-log(Dice)`` instead of ``1 - Dice``.
        from_logits: ``input`` holds logits (True) or probabilities (False).
        smooth: Added to numerator and denominator.
        ignore_index: Target value whose pixels are left out.
        eps: Lower bound of the denominator.
        class_weights: Non-negative weight per class (weighted mean over classes).
        per_image: Per-image Dice averaged over images and classes.
        ignore_empty: See "Empty masks" above; False scores an empty class by the formula.
        global_batch: Sum the counts over all ``torch.distributed`` ranks (see
            :func:`~stableloss.tversky_loss`).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the ``(C,)`` or ``(N, C)`` losses).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.

    Shape:
        - input: ``(N, C, *S)`` with 1 to 3 spatial dims.
        - target: as above.
        - output: scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``; float32.

    Returns:
        The loss, float32, in [0, 1] (``1 - Dice``) or [0, -log eps] (``log_loss``).

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
        than by subtraction, so it keeps full precision near a perfect prediction.
    """
    return tversky_loss(
        input, target, mode=mode, alpha=0.5, beta=0.5, gamma=1.0, classes=classes, log_loss=log_loss,
        from_logits=from_logits, smooth=smooth, ignore_index=ignore_index, eps=eps,
        class_weights=class_weights, per_image=per_image, ignore_empty=ignore_empty,
        global_batch=global_batch, reduction=reduction, validate_args=validate_args,
    )


class DiceLoss(TverskyLoss):
    """Dice loss; a thin shell over :func:`dice_loss`.

    The positional arguments, their order and defaults match
    ``segmentation_models_pytorch.losses.DiceLoss``, so replacing the import gives the same value
    in float32. The options after them are keyword-only; see :func:`dice_loss`.

    Example:
        >>> criterion = DiceLoss("binary")
        >>> logits = torch.randn(2, 1, 32, 32, requires_grad=True)
        >>> loss = criterion(logits, (torch.rand(2, 1, 32, 32) > 0.5).float())
        >>> loss.backward()
        >>> bool(torch.isfinite(logits.grad).all())
        True
    """

    def __init__(
        self,
        mode: str,
        classes: Optional[Sequence[int]] = None,
        log_loss: bool = False,
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
        super().__init__(
            mode, classes, log_loss, from_logits, smooth, ignore_index, eps, 0.5, 0.5, 1.0,
            class_weights=class_weights, per_image=per_image, ignore_empty=ignore_empty,
            global_batch=global_batch, reduction=reduction, validate_args=validate_args,
        )
