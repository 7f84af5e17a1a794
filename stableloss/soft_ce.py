"""Soft binary cross-entropy and soft (label-smoothed) cross-entropy, in logit space, FP16-safe.

segmentation-models-pytorch's ``SoftBCEWithLogitsLoss`` and ``SoftCrossEntropyLoss``: the torch
cross-entropies with ``ignore_index`` and label smoothing. Here the logits are clamped to +-65504
(straight-through) and cast to float32 first, so a float16 logit that overflowed to ``+-inf`` costs a
finite amount, and every sum runs in float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from stableloss import _checks
from stableloss._activation import saturate
from stableloss._module import OptionsModule
from stableloss._reduction import reduce_loss
from stableloss._smp_options import ModelessSpec, SoftBCEOptions, SoftCrossEntropyOptions, weight_tensor
from stableloss._typing import ValidateArgsKwargs, WeightLike
from stableloss.focal import softmax_cross_entropy

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import SoftBCEAttributes as _SoftBCEAttributes
    from stableloss._typing import SoftCrossEntropyAttributes as _SoftCrossEntropyAttributes
else:
    _SoftBCEAttributes = _SoftCrossEntropyAttributes = object

SOFT_BCE = ModelessSpec("soft_bce_with_logits_loss()", SoftBCEOptions)
SOFT_CROSS_ENTROPY = ModelessSpec("soft_cross_entropy_loss()", SoftCrossEntropyOptions)

def soft_bce_with_logits_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Optional[WeightLike] = None,
    ignore_index: Optional[int] = -100,
    reduction: str = "mean",
    smooth_factor: Optional[float] = None,
    pos_weight: Optional[WeightLike] = None,
    validate_args: bool = True,
) -> Tensor:
    """Binary cross-entropy with logits, with ``ignore_index`` and label smoothing, FP16-safe.

    .. math::

        \\tilde t = t (1 - s) + (1 - t) s, \\qquad
        \\ell_i = w_i \\bigl[\\, w^{+}_i \\tilde t_i \\operatorname{softplus}(-x_i)
        + (1 - \\tilde t_i) \\operatorname{softplus}(x_i) \\bigr] \\, [t_i \\ne \\text{ignore}]

    (``softplus(-x) = -log sigmoid(x)``), which is ``torch.nn.functional.binary_cross_entropy_with_logits``
    with ``weight`` :math:`w` and ``pos_weight`` :math:`w^+` on the smoothed targets. ``"mean"``
    divides by the number of **all** elements, ignored ones included (segmentation-models-pytorch's
    convention; they contribute 0).

    Args:
        input: Logits of any shape (``(N, C, *S)`` for segmentation), any float dtype.
        target: The input's shape, or ``(N, *S)`` for a one-channel ``(N, 1, *S)`` input; values in
            [0, 1] (soft labels allowed) or ``ignore_index``; any real dtype.
        weight: Weight of each element, broadcast to the input's shape (a tensor, array, nested
            list or number, >= 0); ``None``: 1.
        ignore_index: Target value whose elements contribute 0; ``None``: none is ignored.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the input's shape).
        smooth_factor: Label smoothing ``s`` in [0, 1] (0.1 turns targets 1 and 0 into 0.9 and 0.1);
            ``None``: none.
        pos_weight: Weight of the positive term, broadcast to the input's shape like ``weight``
            (mind torch's broadcasting: a per-class weight for ``(N, C, H, W)`` is ``(C, 1, 1)``).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.

    Shape:
        - input: any; target: the input's (or ``(N, *S)`` for ``(N, 1, *S)``); output: scalar, or
          the input's shape with ``reduction="none"``.

    Returns:
        The loss, float32 (float64 for a float64 input).

    Example:
        >>> logits = torch.tensor([-9.0, 9.0, 1.0, 9.0, -9.0])
        >>> target = torch.tensor([0, 1, -100, 1, 0])
        >>> round(soft_bce_with_logits_loss(logits, target, smooth_factor=0.1).item(), 4)
        0.7201
        >>> half = torch.tensor([float("inf"), float("-inf")], dtype=torch.float16)
        >>> soft_bce_with_logits_loss(half, torch.tensor([0.0, 0.0]), reduction="none").tolist()
        [65504.0, 0.0]

    Note:
        Logits are clamped to +-65504 (straight-through gradient) and the two ``softplus`` terms,
        each >= 0, are computed in float32 (float64 for float64 input) with no cancellation, so the
        loss and its gradient are finite for every finite or infinite logit. Beyond
        segmentation-models-pytorch 0.6: integer targets work without ``smooth_factor``, and an
        ``(N, *S)`` target for an ``(N, 1, *S)`` input (which its docstring allows and its code
        refuses). A NaN input (anywhere, ignored elements included) gives NaN.
    """
    options = SOFT_BCE.build(dict(weight=weight, ignore_index=ignore_index, reduction=reduction, smooth_factor=smooth_factor,
                                  pos_weight=pos_weight, validate_args=validate_args))
    return soft_bce_from_options(input, target, options)


def soft_bce_from_options(input: Tensor, target: Tensor, options: SoftBCEOptions, *, weight: Optional[Tensor] = None,
                          pos_weight: Optional[Tensor] = None) -> Tensor:
    """The soft BCE pipeline; ``weight`` and ``pos_weight`` are a module's buffers (built from ``options`` if not given)."""
    input, target = _checks.check_same_shape_pair(input, target, what="logits", ignore_index=options.ignore_index,
                                                  validate_args=options.validate_args)
    weight = weight if weight is not None else weight_tensor(options.weight, input.device)
    pos_weight = pos_weight if pos_weight is not None else weight_tensor(options.pos_weight, input.device)
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None and not _broadcasts_to(value.shape, input.shape):
            raise ValueError(f"{name} must broadcast to the input's shape {tuple(input.shape)}; received shape "
                             f"{tuple(value.shape)}")
    logits = saturate(input)
    dtype = logits.dtype
    valid = None if options.ignore_index is None else target != options.ignore_index
    labels = target.to(dtype)
    if valid is not None:
        labels = torch.where(valid, labels, 0.0)
    if options.smooth_factor is not None:
        labels = labels * (1.0 - options.smooth_factor) + (1.0 - labels) * options.smooth_factor
    positive = F.softplus(-logits)  # -log sigmoid(x)
    if pos_weight is not None:
        positive = positive * pos_weight.to(dtype)
    loss = labels * positive + (1.0 - labels) * F.softplus(logits)
    if weight is not None:
        loss = loss * weight.to(dtype)
    if valid is not None:  # a product: a NaN at an ignored element stays NaN
        loss = loss * valid
    return reduce_loss(loss, options.reduction)


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:  # not broadcastable at all
        return False


class SoftBCEWithLogitsLoss(OptionsModule, _SoftBCEAttributes):
    """Soft binary cross-entropy with logits; a thin shell over :func:`soft_bce_with_logits_loss`.

    ``SoftBCEWithLogitsLoss(weight=None, ignore_index=-100, reduction="mean", smooth_factor=None,
    pos_weight=None, *, validate_args=True)``: segmentation-models-pytorch's arguments, order and
    defaults, and its values in float32. ``weight`` and ``pos_weight`` read back as float32 tensors
    (buffers that ``.to()`` moves but does not round; not in the ``state_dict``, unlike smp's); every
    option is an attribute, validated when set.

    Example:
        >>> criterion = SoftBCEWithLogitsLoss(smooth_factor=0.1, pos_weight=[2.0])
        >>> logits = (torch.randn(2, 1, 8, 8) * 1e5).half().requires_grad_()  # mostly +-inf
        >>> loss = criterion(logits, (torch.rand(2, 1, 8, 8) > 0.5).float())
        >>> loss.backward()
        >>> bool(torch.isfinite(loss)), bool(torch.isfinite(logits.grad).all()), criterion.pos_weight
        (True, True, tensor([2.]))
    """

    spec = SOFT_BCE
    positional = ("weight", "ignore_index", "reduction", "smooth_factor", "pos_weight")

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, weight: Optional[WeightLike] = None, ignore_index: Optional[int] = -100, reduction: str = "mean",
                     smooth_factor: Optional[float] = None, pos_weight: Optional[WeightLike] = None,
                     **options: Unpack[ValidateArgsKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return soft_bce_from_options(input, target, self.options, weight=self.option_tensor("weight"),
                                     pos_weight=self.option_tensor("pos_weight"))


def soft_cross_entropy_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    smooth_factor: Optional[float] = None,
    ignore_index: Optional[int] = -100,
    dim: int = 1,
    validate_args: bool = True,
) -> Tensor:
    """Cross-entropy with label smoothing and ``ignore_index``, FP16-safe (segmentation-models-pytorch's).

    With ``log p = log_softmax(x)`` over ``dim`` (``C`` classes), ``y`` the target class and
    :math:`\\epsilon` the ``smooth_factor``:

    .. math::

        \\ell_i = (1 - \\epsilon)\\, (-\\log p_{i, y_i})
        + \\frac{\\epsilon}{C} \\sum_{k} (-\\log p_{i, k}), \\qquad 0 \\text{ where } y_i = \\text{ignore}

    (fairseq's ``label_smoothed_nll_loss``, as segmentation-models-pytorch computes it).
    ``"mean"`` divides by the number of **all** target elements, ignored ones included (smp's
    convention; ``torch.nn.functional.cross_entropy`` divides by the non-ignored count).

    Args:
        input: Logits with the classes along ``dim``: ``(N, C, *S)`` for segmentation, ``(N, C)``
            for classification; any float dtype.
        target: Integer class indices, the input's shape without ``dim`` (or with a size-1 ``dim``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the target's shape without ``dim``).
        smooth_factor: Label smoothing :math:`\\epsilon` in [0, 1]. ``None`` (the default, as in
            smp's signature) means 0: smp 0.6 raises ``TypeError`` at the first call with its own
            default (``None / int``); here it is plain cross-entropy.
        ignore_index: Target value whose elements contribute 0; ``None``: none is ignored.
        dim: The class dimension of the input.
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.

    Shape:
        - input: ``(N, C, *S)`` (classes along ``dim``); target: ``(N, *S)`` or ``(N, 1, *S)``;
          output: scalar, or ``(N, *S)`` with ``reduction="none"`` (smp returns ``(N, 1, *S)``
          when ``ignore_index`` is set).

    Returns:
        The loss, float32 (float64 for a float64 input).

    Example:
        >>> logits = torch.tensor([[9.0, -9, -9, -9], [-9, 9, -9, -9], [-9, -9, 9, -9], [-9, -9, -9, 9]])
        >>> target = torch.tensor([0, 1, -100, 3])
        >>> round(soft_cross_entropy_loss(logits, target, smooth_factor=0.1).item(), 4)
        1.0125
        >>> half = torch.tensor([[float("inf"), float("-inf")]], dtype=torch.float16)
        >>> soft_cross_entropy_loss(half, torch.tensor([1])).item()  # clamped: 65504 - (-65504)
        131008.0

    Note:
        Logits are clamped to +-65504 (straight-through gradient) and cast to float32 (float64 stays
        float64) before the softmax; ``-log p_y`` is ``(max - x_y) + log1p(rest)``, exact for
        confident right predictions. Loss and gradient are finite for every finite or infinite
        logit. A NaN input (anywhere, ignored pixels included) gives NaN.
    """
    options = SOFT_CROSS_ENTROPY.build(dict(reduction=reduction, smooth_factor=smooth_factor, ignore_index=ignore_index,
                                            dim=dim, validate_args=validate_args))
    return soft_cross_entropy_from_options(input, target, options)


def soft_cross_entropy_from_options(input: Tensor, target: Tensor, options: SoftCrossEntropyOptions) -> Tensor:
    """The soft cross-entropy pipeline: validate, classes to dim 1, the two terms, reduce."""
    input, target, dim = _checks.check_class_dim_pair(input, target, dim=options.dim, ignore_index=options.ignore_index,
                                                      validate_args=options.validate_args)
    logits = saturate(input)
    if logits.dim() == 1:  # one sample's scores: a batch of one
        logits, target = logits.unsqueeze(0), target.unsqueeze(0)
        dim = 1
    logits = logits.movedim(dim, 1)
    labels = target.long()
    valid = None if options.ignore_index is None else labels != options.ignore_index
    safe_labels = labels if valid is None else torch.where(valid, labels, 0)
    loss = softmax_cross_entropy(logits, safe_labels)
    epsilon = options.epsilon
    if epsilon > 0.0:
        uniform = -torch.log_softmax(logits, dim=1).sum(dim=1)
        loss = (1.0 - epsilon) * loss + (epsilon / logits.shape[1]) * uniform
    if valid is not None:  # a product: a NaN at an ignored pixel stays NaN
        loss = loss * valid
    return reduce_loss(loss.reshape(target.shape), options.reduction)


class SoftCrossEntropyLoss(OptionsModule, _SoftCrossEntropyAttributes):
    """Soft (label-smoothed) cross-entropy; a thin shell over :func:`soft_cross_entropy_loss`.

    ``SoftCrossEntropyLoss(reduction="mean", smooth_factor=None, ignore_index=-100, dim=1, *,
    validate_args=True)``: segmentation-models-pytorch's arguments, order and defaults, and its
    values in float32; with ``smooth_factor=None`` (the default) it is plain cross-entropy, where smp
    0.6 raises ``TypeError``. Every option is an attribute, validated when set.

    Example:
        >>> criterion = SoftCrossEntropyLoss(smooth_factor=0.1, ignore_index=255)
        >>> logits = (torch.randn(2, 4, 8, 8) * 1e5).half().requires_grad_()  # mostly +-inf
        >>> loss = criterion(logits, torch.randint(0, 4, (2, 8, 8)))
        >>> loss.backward()
        >>> bool(torch.isfinite(loss)), bool(torch.isfinite(logits.grad).all())
        (True, True)
    """

    spec = SOFT_CROSS_ENTROPY
    positional = ("reduction", "smooth_factor", "ignore_index", "dim")

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, reduction: str = "mean", smooth_factor: Optional[float] = None, ignore_index: Optional[int] = -100,
                     dim: int = 1, **options: Unpack[ValidateArgsKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return soft_cross_entropy_from_options(input, target, self.options)
