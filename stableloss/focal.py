"""Focal loss: sigmoid focal for binary and multilabel, softmax focal for multiclass."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stableloss import _checks, _fused
from stableloss._activation import TINY_LOSS, compute_dtype, logits_from_probabilities, saturate
from stableloss._overlap import flatten_target
from stableloss._reduction import check_reduction, reduce_loss
from stableloss._sigmoid_focal import sigmoid_focal_terms
from stableloss.tversky import Weights, resolve_class_weights

Alpha = Union[None, float, Sequence[float], Tensor]
ACTIVATIONS = ("softmax", "sigmoid")


def focal_modulation(ce: Tensor, gamma: float, reduced_threshold: Optional[float]) -> Optional[Tensor]:
    """The focal factor ``(1 - p_t) ** gamma`` from the cross-entropy ``ce = -log p_t``.

    ``1 - p_t`` is ``-expm1(-ce)``, exact even when ``p_t`` rounds to 1. For ``gamma >= 1`` the
    power has a finite derivative everywhere. For ``gamma < 1`` it is computed as
    ``exp(gamma * log(1 - p_t))`` on elements with ``ce > 1e-30`` and set to 0 (with gradient 0)
    elsewhere, so a saturated correct prediction gives loss 0 and gradient 0 instead of
    ``0 * inf = NaN``. With ``reduced_threshold`` (Sergievskiy and Ponamarev 2019) the factor is
    ``((1 - p_t) / threshold) ** gamma`` where ``p_t >= threshold`` and 1 elsewhere.

    Returns:
        The factor, or ``None`` when it is identically 1 (``gamma == 0``, no threshold).
    """
    if gamma == 0.0 and reduced_threshold is None:
        return None
    if gamma >= 1.0:
        factor = (-torch.expm1(-ce)).pow(gamma)
    else:
        positive = ce > TINY_LOSS
        safe = torch.where(positive, ce, 1.0)
        factor = torch.where(positive, torch.exp(gamma * torch.log(-torch.expm1(-safe))), 0.0)
    if reduced_threshold is None:
        return factor
    factor = factor / reduced_threshold**gamma
    return torch.where(ce > -math.log(reduced_threshold), 1.0, factor)


def focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    alpha: Alpha = None,
    gamma: float = 2.0,
    ignore_index: Optional[int] = None,
    from_logits: bool = True,
    eps: float = 1e-7,
    reduction: str = "mean",
    normalized: bool = False,
    reduced_threshold: Optional[float] = None,
    class_weights: Weights = None,
    multiclass_activation: str = "softmax",
    validate_args: bool = True,
) -> Tensor:
    """Focal loss in logit space, FP16-safe: sigmoid focal (binary, multilabel), softmax focal (multiclass).

    .. math::

        \\ell_i = -\\alpha_{t} (1 - p_{t,i})^{\\gamma} \\log p_{t,i}, \\qquad
        -\\log p_{t,i} = \\operatorname{CE}(x_i, t_i)

    where ``CE`` is binary cross-entropy with logits (sigmoid modes, soft labels allowed) or
    cross-entropy over the classes (softmax). ``mode="multiclass"`` uses the **softmax** focal loss
    of Lin et al. by default; segmentation-models-pytorch instead applies a sigmoid focal loss to
    each class's one-hot channel and averages the classes: ``multiclass_activation="sigmoid"``
    reproduces that.

    ``alpha``: a scalar in [0, 1] weights positives by ``alpha`` and negatives by ``1 - alpha``
    (sigmoid modes; in softmax mode it multiplies every pixel). A sequence gives one weight per
    class: the weight of class ``c``'s channel (sigmoid) or of pixels whose true class is ``c``
    (softmax).

    Empty masks: no special case; background pixels are ordinary negatives, so an empty mask with
    a confident background prediction gives a loss near 0, and predicted foreground is penalised.

    Args:
        input: Logits ``(N, C, *S)`` (probabilities if ``from_logits=False``).
        target: Binary ``(N, 1, *S)`` or ``(N, *S)`` in [0, 1]; multiclass ``(N, *S)`` indices;
            multilabel ``(N, C, *S)`` in [0, 1].
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        alpha: ``None``, a scalar in [0, 1], or one weight >= 0 per class.
        gamma: Focusing exponent >= 0; 0 gives (weighted) cross-entropy.
        ignore_index: Target value whose pixels are left out (also of the mean's count).
        from_logits: ``input`` holds logits (True) or probabilities (False, clamped to
            ``[eps, 1 - eps]`` and turned into logits).
        eps: Clamp for probabilities and for the ``normalized`` denominator.
        reduction: ``"mean"`` (mean per class over its non-ignored elements, then the mean over
            classes; for one class, the plain mean), ``"sum"`` or ``"none"`` (per element, 0 at
            ignored ones: ``(N, C, *S)`` for sigmoid modes, ``(N, *S)`` for softmax).
        normalized: Divide by the sum of focal factors (Lin et al.'s normalisation, per class).
        reduced_threshold: Reduced focal loss threshold in (0, 1].
        class_weights: Weighted mean over classes (sigmoid modes; use ``alpha`` for softmax).
        multiclass_activation: ``"softmax"`` (default) or ``"sigmoid"`` (the smp behaviour).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.

    Shape:
        - input: ``(N, C, *S)``; output: scalar, or per element with ``reduction="none"``; float32.

    Returns:
        The loss, float32 (float64 for a float64 input).

    Example:
        >>> logits = torch.tensor([[[float("-inf"), 0.0, float("inf")]]], dtype=torch.float16)
        >>> target = torch.tensor([[[1.0, 1.0, 1.0]]])
        >>> loss = focal_loss(logits, target, mode="binary", reduction="none")
        >>> [round(v, 4) for v in loss.flatten().tolist()]
        [65504.0, 0.1733, 0.0]

    References:
        Lin, Goyal, Girshick, He, Dollar. Focal loss for dense object detection. ICCV 2017.

    Note:
        Cross-entropy is computed from clamped float32 logits (``softplus``/``log_softmax`` form),
        ``1 - p_t`` as ``-expm1(-CE)``, and the ``gamma < 1`` power is guarded, so the loss and
        gradient are finite for every finite or infinite logit; an infinite logit that is wrong
        costs 65504 per element, with the limit gradient. A NaN input gives NaN.
    """
    mode = _checks.check_mode(mode)
    gamma = _checks.check_number("gamma", gamma, low=0.0)
    eps = _checks.check_number("eps", eps, low=0.0, high=0.5, low_inclusive=False)
    reduced_threshold = _checks.check_optional_number("reduced_threshold", reduced_threshold, low=0.0, high=1.0, low_inclusive=False)
    reduction = check_reduction(reduction)
    ignore_index = _checks.check_ignore_index(ignore_index)
    for name, flag in (("from_logits", from_logits), ("normalized", normalized), ("validate_args", validate_args)):
        _checks.check_bool(name, flag)
    if multiclass_activation not in ACTIVATIONS:
        raise ValueError(f"multiclass_activation must be one of {ACTIVATIONS}; received {multiclass_activation!r}")
    input = _checks.check_input(input, mode=mode, from_logits=from_logits)
    target = _checks.check_target(target, input, mode=mode, ignore_index=ignore_index, validate_args=validate_args)
    alpha = alpha if isinstance(alpha, Tensor) else _checks.check_alpha(alpha)
    num_classes = input.shape[1]
    if isinstance(alpha, Tensor):
        _checks.check_class_count("alpha", alpha, num_classes)
        alpha = alpha.to(device=input.device, dtype=compute_dtype(input.dtype))
    softmax = mode == "multiclass" and multiclass_activation == "softmax"
    if class_weights is not None and softmax:
        raise ValueError(
            "class_weights must be None with mode='multiclass' and multiclass_activation='softmax' "
            "(there are no per-class losses to weigh); received class_weights. Pass per-class alpha instead."
        )
    weights = resolve_class_weights(class_weights, mode=mode, num_classes=num_classes, device=input.device)

    logits = input if from_logits else logits_from_probabilities(input, mode=mode, eps=eps)
    if softmax:
        return _softmax_focal(logits, target, alpha=alpha, gamma=gamma, ignore_index=ignore_index, eps=eps,
                              reduction=reduction, normalized=normalized, reduced_threshold=reduced_threshold)
    return _sigmoid_focal(logits, target, mode=mode, alpha=alpha, gamma=gamma, ignore_index=ignore_index, eps=eps,
                          reduction=reduction, normalized=normalized, reduced_threshold=reduced_threshold, weights=weights)


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """``-log softmax(x)[y]`` per pixel as ``(m - x_y) + log1p(sum of exp(x_k - m) over k != argmax)``.

    ``logsumexp(x) - x_y`` cancels when the prediction is confidently right (both terms are large
    and equal to many digits); here the first term is exactly 0 when ``y`` is the argmax and the
    second is ``log1p`` of the small remaining mass, so tiny losses keep their relative precision.

    Args:
        logits: ``(N, C, *S)`` finite float logits.
        labels: ``(N, *S)`` class indices.
    """
    top, top_index = logits.max(dim=1, keepdim=True)
    rest = torch.exp(logits - top).scatter(1, top_index, 0.0).sum(dim=1)
    return (top - logits.gather(1, labels.unsqueeze(1))).squeeze(1) + torch.log1p(rest)


def _softmax_focal(logits, target, *, alpha, gamma, ignore_index, eps, reduction, normalized, reduced_threshold):
    labels = target.long()
    valid = None if ignore_index is None else labels != ignore_index
    safe_labels = labels if valid is None else torch.where(valid, labels, 0)
    ce = softmax_cross_entropy(saturate(logits), safe_labels)
    factor = focal_modulation(ce, gamma, reduced_threshold)
    loss = ce if factor is None else ce * factor
    if isinstance(alpha, Tensor):
        loss = loss * alpha[safe_labels]
    elif alpha is not None:
        loss = loss * alpha
    if valid is not None:
        loss = torch.where(valid, loss, 0.0)
    if normalized:
        total = loss.new_tensor(float(loss.numel())) if factor is None else factor
        if factor is not None and valid is not None:
            total = torch.where(valid, factor, 0.0)
        loss = loss / total.sum().clamp_min(eps)
    if reduction == "none":
        return loss
    if reduction == "sum" or valid is None:
        return reduce_loss(loss, reduction)
    return loss.sum() / valid.sum(dtype=loss.dtype).clamp_min(1.0)


def _sigmoid_focal(logits, target, *, mode, alpha, gamma, ignore_index, eps, reduction, normalized, reduced_threshold, weights):
    batch, num_classes = logits.shape[:2]
    flat_logits = logits.reshape(batch, num_classes, -1)
    flat_target, valid = flatten_target(target, mode=mode, num_classes=num_classes, ignore_index=ignore_index,
                                        dtype=compute_dtype(logits.dtype))
    if not normalized and reduction != "none" and _fused.use_fused(flat_logits):  # one Triton read per pass
        class_sum, count = _fused.sigmoid_focal_sums(flat_logits, flat_target, valid, gamma=gamma, alpha=alpha,
                                                     reduced_threshold=reduced_threshold, fused=True)
        if reduction == "sum":
            return reduce_loss(class_sum, "sum", weights)
        return reduce_loss(class_sum / count.clamp_min(1.0), "mean", weights)
    weight = None
    if isinstance(alpha, Tensor):
        weight = alpha.view(1, num_classes, 1)
    elif alpha is not None:
        weight = flat_target * (2.0 * alpha - 1.0) + (1.0 - alpha)  # alpha t + (1 - alpha)(1 - t)
    if valid is not None:
        weight = valid.to(flat_target.dtype) if weight is None else weight * valid
    if normalized:
        loss = _normalized_sigmoid_focal(flat_logits, flat_target, weight, valid, gamma=gamma, eps=eps,
                                         reduced_threshold=reduced_threshold)
    else:
        loss = sigmoid_focal_terms(flat_logits, flat_target, gamma=gamma, reduced_threshold=reduced_threshold, weight=weight)
    if reduction == "none":
        out = loss if weights is None else loss * weights.view(1, num_classes, 1)
        return out.reshape(logits.shape)
    class_sum = loss.sum(dim=(0, 2))
    if reduction == "sum":
        return reduce_loss(class_sum, "sum", weights)
    if valid is None:
        count = class_sum.new_tensor(float(batch * flat_logits.shape[2]))
    else:
        count = torch.broadcast_to(valid, loss.shape).sum(dim=(0, 2), dtype=loss.dtype)
    return reduce_loss(class_sum / count.clamp_min(1.0), "mean", weights)


def _normalized_sigmoid_focal(logits, target, weight, valid, *, gamma, eps, reduced_threshold):
    """Focal loss divided by the per-class sum of focal factors (gradient flows through both)."""
    ce = F.binary_cross_entropy_with_logits(saturate(logits), target, reduction="none")  # normalized: rare path
    factor = focal_modulation(ce, gamma, reduced_threshold)
    factor = torch.ones_like(ce) if factor is None else factor
    loss = ce * factor if weight is None else ce * factor * weight
    kept = factor if valid is None else torch.where(valid, factor, 0.0)
    return loss / kept.sum(dim=(0, 2), keepdim=True).clamp_min(eps)


class FocalLoss(nn.Module):
    """Focal loss; a thin shell over :func:`focal_loss`.

    The positional arguments match ``segmentation_models_pytorch.losses.FocalLoss`` (0.5 and
    later); the options after them are keyword-only. Note the multiclass default differs: softmax
    focal here, per-class sigmoid in smp (``multiclass_activation="sigmoid"`` gives smp's).

    Example:
        >>> criterion = FocalLoss("binary", gamma=2.0)
        >>> logits = torch.tensor([[[[30000.0, -30000.0]]]], dtype=torch.float16) * 4  # overflows to inf
        >>> bool(torch.isfinite(criterion(logits, torch.tensor([[[[1.0, 0.0]]]]))))
        True
    """

    def __init__(
        self,
        mode: str,
        alpha: Alpha = None,
        gamma: float = 2.0,
        ignore_index: Optional[int] = None,
        from_logits: bool = True,
        eps: float = 1e-7,
        reduction: str = "mean",
        normalized: bool = False,
        reduced_threshold: Optional[float] = None,
        *,
        class_weights: Weights = None,
        multiclass_activation: str = "softmax",
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        self.mode = _checks.check_mode(mode)
        checked_alpha = _checks.check_alpha(alpha)
        self.register_buffer("alpha", checked_alpha if isinstance(checked_alpha, Tensor) else None, persistent=False)
        self.scalar_alpha = None if isinstance(checked_alpha, Tensor) else checked_alpha
        self.register_buffer("class_weights", _checks.check_weights("class_weights", class_weights, mode=self.mode), persistent=False)
        _checks.check_number("gamma", gamma, low=0.0)
        check_reduction(reduction)
        if multiclass_activation not in ACTIVATIONS:
            raise ValueError(f"multiclass_activation must be one of {ACTIVATIONS}; received {multiclass_activation!r}")
        self.options = dict(gamma=gamma, ignore_index=ignore_index, from_logits=from_logits, eps=eps,
                            reduction=reduction, normalized=normalized, reduced_threshold=reduced_threshold,
                            multiclass_activation=multiclass_activation, validate_args=validate_args)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        alpha = self.alpha if self.alpha is not None else self.scalar_alpha
        return focal_loss(input, target, mode=self.mode, alpha=alpha, class_weights=self.class_weights, **self.options)

    def extra_repr(self) -> str:
        alpha = self.alpha.tolist() if self.alpha is not None else self.scalar_alpha
        return f"mode={self.mode!r}, alpha={alpha!r}, " + ", ".join(f"{k}={v!r}" for k, v in self.options.items())
