"""Focal loss: sigmoid focal for binary and multilabel, softmax focal for multiclass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

import torch
from torch import Tensor

from stableloss import _checks, _fused
from stableloss._activation import LOGIT_LIMIT, compute_dtype, logits_from_probabilities, saturate
from stableloss._focal_math import focal_factor, one_minus_pt
from stableloss._module import OptionsModule
from stableloss._options import FocalOptions, OptionSpec
from stableloss._overlap import flatten_target
from stableloss._reduction import reduce_loss
from stableloss._region import option_tensor
from stableloss._sigmoid_focal import sigmoid_focal_terms
from stableloss._typing import FloatSequence, FocalClassKwargs, FocalKwargs

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import FocalAttributes as _FocalAttributes
else:  # the option attributes are properties that OptionsModule makes: the base is for type checkers
    _FocalAttributes = object

FOCAL = OptionSpec("focal_loss()", FocalOptions)


def focal_loss(input: Tensor, target: Tensor, *, mode: str, **options: Unpack[FocalKwargs]) -> Tensor:
    """Focal loss in logit space, FP16-safe: sigmoid focal (binary, multilabel), softmax focal (multiclass).

    .. math::

        \\ell_i = -\\alpha_{t} (1 - p_{t,i})^{\\gamma} \\log p_{t,i}, \\qquad
        -\\log p_{t,i} = \\min(\\operatorname{CE}(x_i, t_i), 65504)

    where ``CE`` is binary cross-entropy with logits (sigmoid modes, soft labels allowed) or
    cross-entropy over the classes (softmax). ``mode="multiclass"`` uses the **softmax** focal loss
    of Lin et al. by default; segmentation-models-pytorch instead applies a sigmoid focal loss to
    each class's one-hot channel and averages the classes: ``multiclass_activation="sigmoid"``
    reproduces that.

    Reductions. Sigmoid modes, ``"mean"``: the mean of each class over its non-ignored elements,
    then the mean over classes (weighted by ``class_weights``); ``"sum"``: the sum over every
    element (each class weighted); ``"none"``: per element, 0 at ignored ones, shaped like the
    input. Softmax, with ``w_i`` the ``class_weights`` entry of pixel ``i``'s true class (1 without
    them): ``"mean"`` is :math:`\\sum_i w_i \\ell_i / \\sum_i w_i` over non-ignored pixels (the
    normalisation of ``torch.nn.functional.cross_entropy(weight=...)``), ``"sum"`` is
    :math:`\\sum_i w_i \\ell_i`, ``"none"`` gives :math:`w_i \\ell_i` per pixel, shaped like the target.

    Empty masks: no special case; background pixels are ordinary negatives, so an empty mask with
    a confident background prediction gives a loss near 0, and predicted foreground is penalised.

    Args:
        input: Logits ``(N, C, *S)`` with 0 to 3 spatial dims (``(N, C)`` for classification), or
            ``(N,)`` in binary mode; probabilities if ``from_logits=False``.
        target: Binary ``(N, 1, *S)`` or ``(N, *S)`` in [0, 1]; multiclass ``(N, *S)`` indices;
            multilabel ``(N, C, *S)`` in [0, 1].
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        **options: Keyword-only, each documented in :class:`~stableloss.FocalOptions`:
            ``alpha=None``, ``gamma=2.0``, ``ignore_index=None``, ``from_logits=True``,
            ``eps=1e-7``, ``reduction="mean"``, ``normalized=False``, ``reduced_threshold=None``,
            ``class_weights=None``, ``multiclass_activation="softmax"``, ``validate_args=True``.

    Shape:
        - input: ``(N, C, *S)``; output: scalar, or per element with ``reduction="none"``.

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
        Sergievskiy, Ponamarev. Reduced focal loss. 2019.

    Note:
        Cross-entropy is computed from clamped float32 logits (``softplus``/``log_softmax`` form)
        and capped at 65504 with the limit gradient (a logit of +-inf costs 65504 per element,
        whichever class holds it), ``1 - p_t`` is ``-expm1(-CE)``, and the ``gamma < 1`` power is
        guarded, so the loss and gradient are finite for every finite or infinite logit. A NaN
        input (anywhere, ignored pixels included) gives NaN.
    """
    options_ = FOCAL.build(dict(options, mode=mode))
    return focal_from_options(input, target, options_)


focal_loss.__signature__ = FOCAL.function_signature()  # type: ignore[attr-defined]


def focal_from_options(input: Tensor, target: Tensor, options: FocalOptions, *, alpha: Optional[Tensor] = None,
                       class_weights: Optional[Tensor] = None) -> Tensor:
    """The focal pipeline: validate the pair, logits in logit space, per-element terms, reduce.

    ``alpha`` and ``class_weights`` are the per-class options as float32 tensors on the input's
    device (a module's buffers); built from ``options`` when not given.
    """
    original_shape = input.shape if isinstance(input, Tensor) else ()
    input, target = _checks.check_pair(input, target, mode=options.mode, from_logits=options.from_logits,
                                       ignore_index=options.ignore_index, validate_args=options.validate_args)
    num_classes = input.shape[1]
    if isinstance(options.alpha, tuple):
        _checks.check_class_count("alpha", len(options.alpha), num_classes)
        alpha = alpha if alpha is not None else option_tensor(options.alpha, torch.float32, input.device)
    if options.class_weights is not None:
        _checks.check_class_count("class_weights", len(options.class_weights), num_classes)
        if class_weights is None:
            class_weights = option_tensor(options.class_weights, torch.float32, input.device)
    # multiclass probabilities become log p whatever the activation, as segmentation-models-pytorch's
    # FocalLoss does: with multiclass_activation="sigmoid" (smp's) the channels are then read as
    # sigmoid(log p) = p / (1 + p), smp's numbers; use mode="multilabel" with one-hot targets to read
    # each channel as a sigmoid probability instead.
    logits = input if options.from_logits else logits_from_probabilities(input, mode=options.mode, eps=options.eps)
    dtype = compute_dtype(input.dtype)
    scalar_alpha = options.alpha if not isinstance(options.alpha, tuple) else None
    per_class_alpha = None if alpha is None else alpha.to(dtype)
    weights = None if class_weights is None else class_weights.to(dtype)
    if options.softmax:
        return _softmax_focal(logits, target, options, per_class_alpha, scalar_alpha, weights)
    loss = _sigmoid_focal(logits, target, options, per_class_alpha, scalar_alpha, weights)
    return loss.reshape(original_shape) if options.reduction == "none" else loss  # shaped like the input


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


def _softmax_focal(logits: Tensor, target: Tensor, options: FocalOptions, alpha: Optional[Tensor],
                   scalar_alpha: Optional[float], weights: Optional[Tensor]) -> Tensor:
    labels = target.long()
    valid = None if options.ignore_index is None else labels != options.ignore_index
    safe_labels = labels if valid is None else torch.where(valid, labels, 0)
    # Clamped logits differ by up to 2 * 65504; the cap keeps a wrong +-inf pixel at the documented
    # 65504 (straight-through: the gradient stays the cross-entropy's limit gradient).
    ce = saturate(softmax_cross_entropy(saturate(logits), safe_labels), -LOGIT_LIMIT, LOGIT_LIMIT)
    factor = focal_factor(one_minus_pt(ce), ce, options.gamma, options.reduced_threshold)
    loss = ce * factor
    if alpha is not None:
        loss = loss * alpha[safe_labels]
    elif scalar_alpha is not None:
        loss = loss * scalar_alpha
    pixel_weight = None if weights is None else weights[safe_labels]
    if valid is not None:  # a product, not a selection: a NaN at an ignored pixel stays NaN
        pixel_weight = valid.to(loss.dtype) if pixel_weight is None else pixel_weight * valid
    if options.normalized:
        kept = factor if valid is None else factor * valid
        loss = loss / kept.sum().clamp_min(options.eps)
    if pixel_weight is None:
        return reduce_loss(loss, options.reduction)
    return reduce_loss(loss * pixel_weight, options.reduction, count=pixel_weight.sum())


def _sigmoid_focal(logits: Tensor, target: Tensor, options: FocalOptions, alpha: Optional[Tensor],
                   scalar_alpha: Optional[float], weights: Optional[Tensor]) -> Tensor:
    batch, num_classes = logits.shape[:2]
    flat_logits = logits.reshape(batch, num_classes, -1)
    flat_target, valid = flatten_target(target, mode=options.mode, num_classes=num_classes,
                                        ignore_index=options.ignore_index, dtype=compute_dtype(logits.dtype))
    if not options.normalized and options.reduction != "none" and _fused.use_fused(flat_logits, options.fused):  # one read per pass
        fused_alpha = alpha if alpha is not None else scalar_alpha
        class_sum, count = _fused.sigmoid_focal_sums(flat_logits, flat_target, valid, gamma=options.gamma,
                                                     alpha=fused_alpha, reduced_threshold=options.reduced_threshold,
                                                     fused=True)
        if options.reduction == "sum":
            return reduce_loss(class_sum, "sum", weights)
        return reduce_loss(class_sum / count.clamp_min(1.0), "mean", weights)
    weight = None
    if alpha is not None:
        weight = alpha.view(1, num_classes, 1)
    elif scalar_alpha is not None:
        weight = flat_target * (2.0 * scalar_alpha - 1.0) + (1.0 - scalar_alpha)  # alpha t + (1 - alpha)(1 - t)
    if valid is not None:  # a product: a NaN at an ignored pixel stays NaN
        weight = valid.to(flat_target.dtype) if weight is None else weight * valid
    if options.normalized:
        loss = _normalized_sigmoid_focal(flat_logits, flat_target, weight, valid, options)
    else:
        loss = sigmoid_focal_terms(flat_logits, flat_target, gamma=options.gamma,
                                   reduced_threshold=options.reduced_threshold, weight=weight)
    class_weights = None if weights is None else weights.view(1, num_classes, 1)
    if options.reduction == "none":
        return loss if class_weights is None else loss * class_weights
    class_sum = loss.sum(dim=(0, 2))
    if options.reduction == "sum":
        return reduce_loss(class_sum, "sum", weights)
    if valid is None:
        count = class_sum.new_tensor(float(batch * flat_logits.shape[2]))
    else:
        count = torch.broadcast_to(valid, loss.shape).sum(dim=(0, 2), dtype=loss.dtype)
    return reduce_loss(class_sum / count.clamp_min(1.0), "mean", weights)


def _normalized_sigmoid_focal(logits: Tensor, target: Tensor, weight: Optional[Tensor], valid: Optional[Tensor],
                              options: FocalOptions) -> Tensor:
    """Focal loss divided by the per-class sum of focal factors (gradient flows through both)."""
    from stableloss._sigmoid_focal import sigmoid_cross_entropy

    ce = sigmoid_cross_entropy(saturate(logits), target)
    factor = focal_factor(one_minus_pt(ce), ce, options.gamma, options.reduced_threshold)
    loss = ce * factor if weight is None else ce * factor * weight
    kept = factor if valid is None else factor * valid
    return loss / kept.sum(dim=(0, 2), keepdim=True).clamp_min(options.eps)


class FocalLoss(OptionsModule, _FocalAttributes):
    """Focal loss; a thin shell over :func:`focal_loss`.

    ``FocalLoss(mode, alpha=None, gamma=2.0, ignore_index=None, from_logits=True, eps=1e-7,
    reduction="mean", normalized=False, reduced_threshold=None, *, class_weights=None,
    multiclass_activation="softmax", validate_args=True)``: the positional arguments match
    ``segmentation_models_pytorch.losses.FocalLoss`` (0.5 and later); every option is an attribute,
    validated when set. Note the multiclass default differs: softmax focal here, per-class sigmoid
    in smp (``multiclass_activation="sigmoid"`` gives smp's).

    Example:
        >>> criterion = FocalLoss("binary", gamma=2.0)
        >>> logits = torch.tensor([[[[30000.0, -30000.0]]]], dtype=torch.float16) * 4  # overflows to inf
        >>> bool(torch.isfinite(criterion(logits, torch.tensor([[[[1.0, 0.0]]]]))))
        True
    """

    spec = FOCAL
    positional = ("mode", "alpha", "gamma", "ignore_index", "from_logits", "eps", "reduction", "normalized",
                  "reduced_threshold")

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, alpha: Union[None, float, FloatSequence] = None, gamma: float = 2.0,
                     ignore_index: Optional[int] = None, from_logits: bool = True, eps: float = 1e-7, reduction: str = "mean",
                     normalized: bool = False, reduced_threshold: Optional[float] = None,
                     **options: Unpack[FocalClassKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal_from_options(input, target, self.options, alpha=self.option_tensor("alpha"),
                                  class_weights=self.option_tensor("class_weights"))
