"""Tversky loss and its special cases: focal-Tversky and Jaccard (Dice lives in ``dice.py``).

One scorer serves Dice, Jaccard and Tversky: :func:`tversky_class_losses` computes the loss per
class from the overlap statistics of ``_overlap.py``; the public functions only choose ``alpha``,
``beta`` and ``gamma`` and reduce.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from stableloss import _checks
from stableloss._activation import compute_dtype
from stableloss._overlap import Overlap, flatten_target, overlap_statistics
from stableloss._reduction import check_reduction, reduce_loss

Weights = Union[None, Sequence[float], Tensor]


def tversky_class_losses(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    alpha: float,
    beta: float,
    gamma: float = 1.0,
    log_loss: bool = False,
    from_logits: bool = True,
    smooth: float = 0.0,
    ignore_index: Optional[int] = None,
    eps: float = 1e-7,
    per_image: bool = False,
    ignore_empty: bool = True,
    global_batch: bool = False,
    validate_args: bool = True,
) -> Tensor:
    """Unreduced (focal-)Tversky loss per class: float32 ``(C,)``, or ``(N, C)`` with ``per_image``.

    See :func:`tversky_loss` for the arguments; this is that function before ``classes``,
    ``class_weights`` and ``reduction`` are applied.
    """
    mode = _checks.check_mode(mode)
    alpha = _checks.check_number("alpha", alpha, low=0.0)
    beta = _checks.check_number("beta", beta, low=0.0)
    if alpha + beta <= 0:
        raise ValueError(f"alpha + beta must be > 0 (else every prediction scores 1); received alpha={alpha}, beta={beta}")
    gamma = _checks.check_number("gamma", gamma, low=0.0, low_inclusive=False)
    smooth = _checks.check_number("smooth", smooth, low=0.0)
    eps = _checks.check_number("eps", eps, low=0.0)
    for name, flag in (("log_loss", log_loss), ("from_logits", from_logits), ("per_image", per_image),
                       ("ignore_empty", ignore_empty), ("global_batch", global_batch),
                       ("validate_args", validate_args)):
        _checks.check_bool(name, flag)
    if per_image and global_batch:
        raise ValueError("per_image and global_batch must not both be True (per-image scores need no "
                         "cross-rank sums); received per_image=True, global_batch=True")
    ignore_index = _checks.check_ignore_index(ignore_index)
    input = _checks.check_input(input, mode=mode, from_logits=from_logits)
    target = _checks.check_target(target, input, mode=mode, ignore_index=ignore_index, validate_args=validate_args)

    flat_target, valid = flatten_target(target, mode=mode, num_classes=input.shape[1], ignore_index=ignore_index,
                                        dtype=compute_dtype(input.dtype))
    overlap = overlap_statistics(input, flat_target, mode=mode, from_logits=from_logits, valid=valid,
                                 per_image=per_image, global_batch=global_batch)
    loss = tversky_from_overlap(overlap, alpha=alpha, beta=beta, smooth=smooth, eps=eps, log_loss=log_loss)
    loss = focal_power(loss, gamma)
    if ignore_empty:
        loss = torch.where(overlap.target_sum > 0, loss, 0.0)
    return loss


def tversky_from_overlap(
    overlap: Overlap, *, alpha: float, beta: float, smooth: float, eps: float, log_loss: bool
) -> Tensor:
    """``1 - TI`` (or ``-log TI``) from soft counts, without forming ``1 - score`` by subtraction.

    .. math::

        TI = \\frac{TP + s}{\\max(TP + \\alpha FP + \\beta FN + s, \\epsilon)}, \\qquad
        1 - TI = \\frac{\\alpha FP + \\beta FN}{TP + \\alpha FP + \\beta FN + s}
    """
    tp, fp, fn = overlap
    errors = alpha * fp + beta * fn
    denominator = tp + errors + smooth
    clamped = denominator.clamp_min(eps)
    excess = torch.where(denominator >= eps, errors, clamped - tp - smooth)  # clamped - (TP + s)
    if not log_loss:
        return excess / clamped
    # -log(max(TI, eps)) = log1p(excess / (TP + s)): accurate for TI near 1 and near 0. Below eps
    # the clamp makes it the constant -log(eps) (gradient 0), with a safe divisor on that branch.
    numerator = tp + smooth
    usable = numerator >= eps * clamped
    return torch.where(usable, torch.log1p(excess / torch.where(usable, numerator, 1.0)), -math.log(eps))


def focal_power(loss: Tensor, gamma: float) -> Tensor:
    """``loss ** gamma`` with a finite gradient at ``loss == 0`` for ``gamma < 1``.

    The derivative ``gamma * loss ** (gamma - 1)`` is infinite at 0, where a perfect prediction
    sits; the guard makes the value 0 there with gradient 0 (the product with the vanishing
    ``d loss / d logit`` has limit 0 too).
    """
    if gamma == 1.0:
        return loss
    positive = loss > 0
    safe = torch.where(positive, loss, 1.0)
    return torch.where(positive, safe.pow(gamma), 0.0)


def resolve_class_weights(weights: Weights, *, mode: str, num_classes: int, device: torch.device) -> Optional[Tensor]:
    """Per-class weights as a tensor on ``device``, checked against ``num_classes``."""
    if weights is None:
        return None
    if not isinstance(weights, Tensor):
        weights = _checks.check_weights("class_weights", weights, mode=mode)
    _checks.check_class_count("class_weights", weights, num_classes)
    return weights.to(device=device)


def reduce_class_losses(
    losses: Tensor,
    *,
    mode: str,
    classes: Union[None, Sequence[int], Tensor],
    class_weights: Weights,
    reduction: str,
) -> Tensor:
    """Select ``classes``, weight by ``class_weights`` and reduce ``(C,)`` or ``(N, C)`` losses."""
    reduction = check_reduction(reduction)
    num_classes = losses.shape[-1]
    weights = resolve_class_weights(class_weights, mode=mode, num_classes=num_classes, device=losses.device)
    if classes is not None:
        index = classes if isinstance(classes, Tensor) else _checks.check_classes(classes, mode)
        index = index.to(losses.device)
        if not _checks.is_compiling() and index.numel() and int(index.max()) >= num_classes:
            raise ValueError(f"classes must be indices below {num_classes} (the input's channels); received {index.tolist()}")
        losses = losses.index_select(-1, index)
        weights = None if weights is None else weights.index_select(0, index)
    return reduce_loss(losses, reduction, weights)


def tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
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
        input: Logits ``(N, C, *S)`` (probabilities if ``from_logits=False``), any float dtype.
        target: Binary ``(N, 1, *S)`` or ``(N, *S)``, values in [0, 1] (soft labels allowed);
            multiclass ``(N, *S)`` integer indices; multilabel ``(N, C, *S)`` in [0, 1].
        mode: ``"binary"``, ``"multiclass"`` (softmax over C) or ``"multilabel"`` (sigmoid per C).
        alpha: Weight of false positives, >= 0.
        beta: Weight of false negatives, >= 0.
        gamma: Focal exponent, > 0.
        classes: Indices of the classes that enter the mean (segmentation-models-pytorch's option).
        log_loss: Use ``-log(TI)`` instead of ``1 - TI``.
        from_logits: ``input`` holds logits (True) or probabilities (False).
        smooth: Added to numerator and denominator.
        ignore_index: Target value whose pixels are left out of every count.
        eps: Lower bound of the denominator.
        class_weights: Non-negative weight per class; the mean becomes a weighted mean.
        per_image: Score each image separately and average (default: one score per class over the
            whole batch, as segmentation-models-pytorch does).
        ignore_empty: A class whose target is empty (in the batch, or in the image with
            ``per_image``) contributes loss 0, as in segmentation-models-pytorch. With False its
            score follows the formula: ``smooth / (alpha * FP + smooth)`` for ``smooth > 0``.
        global_batch: Sum the counts over all ``torch.distributed`` ranks before scoring, so each
            rank's loss is the loss of the global batch (with gradient; after DDP averages over
            ranks, parameter gradients equal one process on the concatenated batch). Without a
            process group it changes nothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the ``(C,)`` or ``(N, C)`` losses).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.

    Shape:
        - input: ``(N, C, *S)`` with 1 to 3 spatial dims ``S``.
        - target: see ``target`` above.
        - output: scalar, or ``(C,)`` / ``(N, C)`` with ``reduction="none"``; float32 (float64 for a float64 input).

    Returns:
        The loss, float32 (float64 for a float64 input).

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
    losses = tversky_class_losses(
        input, target, mode=mode, alpha=alpha, beta=beta, gamma=gamma, log_loss=log_loss,
        from_logits=from_logits, smooth=smooth, ignore_index=ignore_index, eps=eps,
        per_image=per_image, ignore_empty=ignore_empty, global_batch=global_batch,
        validate_args=validate_args,
    )
    return reduce_class_losses(losses, mode=mode, classes=classes, class_weights=class_weights, reduction=reduction)


def jaccard_loss(input: Tensor, target: Tensor, *, mode: str, **kwargs) -> Tensor:
    """Jaccard (IoU) loss, ``1 - TP / (TP + FP + FN)``: :func:`tversky_loss` with ``alpha = beta = 1``.

    Takes every keyword of :func:`tversky_loss` except ``alpha``, ``beta`` and ``gamma``.

    Example:
        >>> logits = torch.tensor([[[[4.0, -4.0], [4.0, -4.0]]]])
        >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
        >>> round(jaccard_loss(logits, target, mode="binary").item(), 4)
        0.3433
    """
    for name in ("alpha", "beta", "gamma"):
        if name in kwargs:
            raise TypeError(f"jaccard_loss() fixes {name}; use tversky_loss to choose it (received {name}={kwargs[name]!r})")
    return tversky_loss(input, target, mode=mode, alpha=1.0, beta=1.0, **kwargs)


class _OverlapLoss(nn.Module):
    """Shared shell of the overlap-based loss classes: stores options, holds weights as buffers."""

    def __init__(self, mode: str, classes, class_weights: Weights, options: dict) -> None:
        super().__init__()
        self.mode = _checks.check_mode(mode)
        self.options = options
        self.register_buffer("classes", _checks.check_classes(classes, self.mode), persistent=False)
        self.register_buffer("class_weights", _checks.check_weights("class_weights", class_weights, mode=self.mode), persistent=False)
        check_reduction(options["reduction"])

    def extra_repr(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"mode={self.mode!r}, {shown}"


class TverskyLoss(_OverlapLoss):
    """Tversky / focal-Tversky loss; a thin shell over :func:`tversky_loss`.

    The positional arguments match ``segmentation_models_pytorch.losses.TverskyLoss``; the rest are
    keyword-only. See :func:`tversky_loss` for their meaning, the formula and the shapes.

    Example:
        >>> loss = TverskyLoss("binary", alpha=0.3, beta=0.7)
        >>> round(loss(torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)).item(), 4)  # 0.7 / (1 + 0.7)
        0.4118
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
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        *,
        class_weights: Weights = None,
        per_image: bool = False,
        ignore_empty: bool = True,
        global_batch: bool = False,
        reduction: str = "mean",
        validate_args: bool = True,
    ) -> None:
        options = dict(alpha=alpha, beta=beta, gamma=gamma, log_loss=log_loss, from_logits=from_logits,
                       smooth=smooth, ignore_index=ignore_index, eps=eps, per_image=per_image,
                       ignore_empty=ignore_empty, global_batch=global_batch, reduction=reduction,
                       validate_args=validate_args)
        _checks.check_number("alpha", alpha, low=0.0)
        _checks.check_number("beta", beta, low=0.0)
        _checks.check_number("gamma", gamma, low=0.0, low_inclusive=False)
        super().__init__(mode, classes, class_weights, options)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tversky_loss(input, target, mode=self.mode, classes=self.classes, class_weights=self.class_weights, **self.options)


class JaccardLoss(TverskyLoss):
    """Jaccard (IoU) loss: :class:`TverskyLoss` with ``alpha = beta = 1``.

    The positional arguments match ``segmentation_models_pytorch.losses.JaccardLoss``.

    Example:
        >>> JaccardLoss("binary")(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).item()
        0.5
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
        **kwargs,
    ) -> None:
        for name in ("alpha", "beta", "gamma"):
            if name in kwargs:
                raise TypeError(f"JaccardLoss fixes {name}; use TverskyLoss to choose it (received {name}={kwargs[name]!r})")
        super().__init__(mode, classes, log_loss, from_logits, smooth, ignore_index, eps, 1.0, 1.0, 1.0, **kwargs)
