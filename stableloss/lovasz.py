"""Lovasz loss: the Lovasz hinge (binary, multilabel) and Lovasz-softmax (multiclass), FP16-safe.

The Lovasz extension of the Jaccard loss (Berman, Rannen Triki, Blaschko 2018) sorts the errors,
takes the Jaccard index of each prefix of the sorted order, and weighs each error by the increase of
``1 - J`` it brings. Here the sort key and the errors are float32 (float64 for float64 input),
ignored pixels sort last without a boolean selection (no host sync, ``torch.compile`` and
``torch.func`` work), and each weight is formed in closed form from exact cumulative counts rather
than as a difference of two nearby Jaccard values, so it keeps float32 precision at millions of
pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from stableloss import _checks
from stableloss._activation import activate, saturate
from stableloss._module import OptionsModule
from stableloss._options import OptionSpec
from stableloss._smp_options import LovaszOptions
from stableloss._typing import ValidateArgsKwargs

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from stableloss._typing import LovaszAttributes as _LovaszAttributes
else:
    _LovaszAttributes = object

LOVASZ = OptionSpec("lovasz_loss()", LovaszOptions)

EXACT_COUNT_LIMIT = 2**24
"""Longest sorted row whose cumulative counts stay in float32: its partial sums of 0/1 labels are
integers below 2**24, which float32 holds exactly. Longer rows count in float64."""


def lovasz_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    per_image: bool = False,
    ignore_index: Optional[int] = None,
    from_logits: bool = True,
    validate_args: bool = True,
) -> Tensor:
    """Lovasz loss: the Lovasz hinge (binary, multilabel) or Lovasz-softmax (multiclass), FP16-safe.

    With the errors :math:`e_i` sorted in decreasing order and :math:`t` the (sorted) labels, the
    loss is the Lovasz extension of the Jaccard loss :math:`\\Delta_J`:

    .. math::

        \\mathcal{L}(e) = \\sum_i \\max(e_{(i)}, 0)\\, g_i, \\qquad
        g_i = \\Delta_J(\\{1..i\\}) - \\Delta_J(\\{1..i-1\\}), \\qquad
        \\Delta_J(A) = 1 - \\frac{|\\mathrm{fg} \\setminus A|}{|\\mathrm{fg} \\cup A|}

    Binary and multilabel (the Lovasz hinge): the errors are the hinge errors ``1 - x (2 t - 1)`` of
    the logits ``x``, over every element of the batch at once (multilabel: all channels together,
    as segmentation-models-pytorch does; not one extension per channel). Multiclass
    (Lovasz-softmax): per class ``c``, the errors ``|[y = c] - p_c|`` of the softmax probabilities,
    one extension per class **present** in the target (over the batch, or the image with
    ``per_image``), then the mean over those classes (0 when none is present).

    Args:
        input: Logits ``(N, C, *S)`` with 0 to 3 spatial dims, or ``(N,)`` in binary mode
            (probabilities if ``from_logits=False``), any float dtype.
        target: Binary ``(N, 1, *S)`` or ``(N, *S)`` of 0/1; multiclass ``(N, *S)`` class indices;
            multilabel ``(N, C, *S)`` of 0/1.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        per_image: One loss per image, then their mean (an image whose pixels are all ignored
            counts 0); default: one loss over the whole batch.
        ignore_index: Target value whose pixels are left out (sorted last with weight 0).
        from_logits: ``input`` holds logits. With False it holds probabilities: multiclass uses them
            directly; binary and multilabel use the errors ``|t - p|`` with the same extension
            (Berman's Lovasz-softmax for sigmoid outputs) instead of the hinge.
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.

    Shape:
        - input: ``(N, C, *S)``; target: as above; output: scalar.

    Returns:
        The loss, float32 (float64 for a float64 input); >= 0, at most 1 for Lovasz-softmax.

    Example:
        >>> logits = torch.tensor([[[[3.0, -1.0], [0.5, -2.0]]]])
        >>> target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
        >>> round(lovasz_loss(logits, target, mode="binary").item(), 4)  # sorted errors 3, 1.5: 3/2 + 1.5/6
        1.75
        >>> half = torch.tensor([[[[float("inf"), -60000.0]]]], dtype=torch.float16)
        >>> lovasz_loss(half, torch.tensor([[[[0.0, 1.0]]]]), mode="binary").item()  # inf is 65504: (65505 + 60001) / 2
        62753.0

    References:
        Berman, Rannen Triki, Blaschko. The Lovasz-softmax loss: a tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks. CVPR 2018.

    Note:
        Logits are clamped to +-65504 (straight-through gradient), so a float16 logit of +-inf is a
        saturated prediction with a finite loss. The errors are sorted in float32 (float64 for a
        float64 input: segmentation-models-pytorch 0.6 raises "dot : expected both vectors to have
        same dtype" there; this loss computes in float64). The cumulative counts are float32 up to
        ``EXACT_COUNT_LIMIT`` elements per sorted row (where they are exact integers) and
        float64 beyond, and each weight ``g_i`` is computed as
        ``(I_{i-1} + k_{i-1} t_i) / (U_{i-1} U_i)`` (``I``, ``U``: intersection and union after
        ``i`` pixels, ``k`` the pixels so far) rather than as a difference of Jaccard values.
        Ties: the Lovasz extension is continuous, so its value does not depend on how equal errors
        are ordered, but its gradient does (it is a subgradient there). The sort is **stable**: equal
        errors keep their order in the flattened input, so the gradient at ties is the one of that
        order, the same on every run and device. segmentation-models-pytorch 0.6 accepts
        ``from_logits`` but ignores it (always logits); here ``from_logits=False`` takes
        probabilities. A NaN input (anywhere, ignored pixels included) gives NaN.
    """
    options = LOVASZ.build(dict(mode=mode, per_image=per_image, ignore_index=ignore_index, from_logits=from_logits,
                                validate_args=validate_args))
    return lovasz_from_options(input, target, options)


def lovasz_from_options(input: Tensor, target: Tensor, options: LovaszOptions) -> Tensor:
    """The Lovasz pipeline: validate the pair, the errors per sorted row, the extension, the mean."""
    input, target = _checks.check_pair(input, target, mode=options.mode, from_logits=options.from_logits,
                                       ignore_index=options.ignore_index, validate_args=options.validate_args)
    if options.mode == "multiclass":
        return _lovasz_softmax(input, target, options)
    return _lovasz_hinge(input, target, options)


def _lovasz_hinge(input: Tensor, target: Tensor, options: LovaszOptions) -> Tensor:
    rows = input.shape[0] if options.per_image else 1
    labels = target.reshape(rows, -1)
    valid = None if options.ignore_index is None else labels != options.ignore_index
    if options.from_logits:
        logits = saturate(input).reshape(rows, -1)
        labels = labels.to(logits.dtype)
        if valid is not None:
            labels = torch.where(valid, labels, 0.0)
        errors = 1.0 - logits * (2.0 * labels - 1.0)
    else:
        probs, _ = activate(input, "identity")
        probs = probs.reshape(rows, -1)
        labels = labels.to(probs.dtype)
        if valid is not None:
            labels = torch.where(valid, labels, 0.0)
        errors = (labels - probs).abs()
    return lovasz_extension(errors, labels, valid).mean()


def _lovasz_softmax(input: Tensor, target: Tensor, options: LovaszOptions) -> Tensor:
    probs, complement = activate(input, "softmax" if options.from_logits else "identity")
    batch, classes = probs.shape[:2]
    probs, complement = probs.reshape(batch, classes, -1), complement.reshape(batch, classes, -1)
    labels = target.reshape(batch, 1, -1)
    valid = None if options.ignore_index is None else labels.expand(batch, classes, -1) != options.ignore_index
    foreground = labels == torch.arange(classes, device=labels.device).view(1, classes, 1)
    if valid is not None:
        foreground = foreground & valid
    errors = torch.where(foreground, complement, probs)  # |[y = c] - p_c|, with 1 - p exact
    if not options.per_image:  # one row per class over the whole batch: (1, C, N * S)
        errors, foreground = (v.transpose(0, 1).reshape(1, classes, -1) for v in (errors, foreground))
        valid = None if valid is None else valid.transpose(0, 1).reshape(1, classes, -1)
    losses = lovasz_extension(errors, foreground.to(errors.dtype), valid)  # (rows, C)
    present = foreground.any(dim=-1).to(losses.dtype)
    # a product, not a selection: a NaN error of an absent class still reaches the loss
    per_row = (losses * present).sum(dim=-1) / present.sum(dim=-1).clamp_min(1.0)
    return per_row.mean()


def lovasz_extension(errors: Tensor, labels: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """The Lovasz extension of the Jaccard loss along the last dim: ``sum_i relu(e_(i)) g_i``.

    Args:
        errors: ``(..., P)`` float errors (hinge errors or ``|t - p|``).
        labels: ``(..., P)`` labels in [0, 1] of the errors' dtype (0 at ignored elements).
        valid: ``(..., P)`` bool mask of the elements that count, or None for all.

    Returns:
        ``(...)``: the loss of each row. Ignored elements sort last (their key is ``-inf``, or NaN
        for a NaN error, which then reaches the loss) and get weight 0.
    """
    keys = errors if valid is None else torch.where(valid, errors, errors * 0.0 - float("inf"))
    sorted_errors, order = torch.sort(keys, dim=-1, descending=True, stable=True)
    sorted_labels = labels.gather(-1, order)
    sorted_valid = None if valid is None else valid.gather(-1, order)
    weights = lovasz_weights(sorted_labels.detach(), sorted_valid)
    return (torch.relu(sorted_errors) * weights).sum(dim=-1)


def lovasz_weights(labels: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """The weights ``g_i = J_i - J_{i-1}`` of sorted labels, without subtracting Jaccard values.

    With ``c1``, ``c0`` the cumulative counts of positives and negatives before element ``i``,
    ``k = c1 + c0``, ``G`` the number of positives, ``I = G - c1`` and ``U = G + c0``:
    ``g_i = (I + k t_i) / (U (U + 1 - t_i))`` after the first counted element and
    ``1 / (G + 1 - t_i)`` at it (soft labels: ``t_i`` in [0, 1]). Every term is a non-negative count,
    exact for hard labels, so ``g_i`` has a relative error of a few ulps even where ``J_i`` and
    ``J_{i-1}`` agree to seven digits. Rows of more than ``EXACT_COUNT_LIMIT`` elements count in
    float64. Not differentiable (the weights depend on the labels and the order only).

    Args:
        labels: ``(..., P)`` labels in the sorted order, 0 at ignored elements.
        valid: ``(..., P)`` bool mask in the sorted order, or None.

    Returns:
        ``(..., P)`` weights in the labels' dtype, 0 at ignored elements.
    """
    dtype = labels.dtype if labels.shape[-1] <= EXACT_COUNT_LIMIT else torch.float64
    t = labels.to(dtype)
    counted = torch.ones_like(t) if valid is None else valid.to(dtype)
    positives = F.pad(t.cumsum(-1)[..., :-1], (1, 0))  # c1, exclusive
    negatives = F.pad((counted - t).cumsum(-1)[..., :-1], (1, 0))  # c0, exclusive
    total = positives[..., -1:] + t[..., -1:]  # G
    seen = positives + negatives  # k, exclusive
    union_before = total + negatives
    union = union_before + counted - t
    later = seen > 0
    numerator = torch.where(later, total - positives + seen * t, 1.0) * counted
    denominator = torch.where(later, union_before * union, union)
    denominator = torch.where(counted > 0, denominator, 1.0)  # ignored: weight 0, and no 0 / 0
    return (numerator / denominator).to(labels.dtype)


class LovaszLoss(OptionsModule, _LovaszAttributes):
    """Lovasz loss; a thin shell over :func:`lovasz_loss`.

    ``LovaszLoss(mode, per_image=False, ignore_index=None, from_logits=True, *,
    validate_args=True)``: the arguments, their order and defaults are
    ``segmentation_models_pytorch.losses.LovaszLoss``'s, and so are the values in float32
    (binary and multilabel: the hinge over the whole batch; multiclass: Lovasz-softmax over the
    classes present). Differences: float64 inputs work (smp raises), ``from_logits=False`` takes
    probabilities (smp ignores it), ties are broken by a stable sort. Every option is an attribute,
    validated when set.

    Example:
        >>> criterion = LovaszLoss("multiclass", per_image=True, ignore_index=255)
        >>> logits = torch.randn(2, 3, 16, 16, dtype=torch.float16, requires_grad=True)
        >>> target = torch.randint(0, 3, (2, 16, 16))
        >>> loss = criterion(logits, target)
        >>> loss.backward()
        >>> loss.dtype, bool(torch.isfinite(logits.grad).all())
        (torch.float32, True)
    """

    spec = LOVASZ
    positional = ("mode", "per_image", "ignore_index", "from_logits")

    if TYPE_CHECKING:  # the signature type checkers see; at run time OptionsModule makes it from spec and positional
        def __init__(self, mode: str, per_image: bool = False, ignore_index: Optional[int] = None, from_logits: bool = True,
                     **options: Unpack[ValidateArgsKwargs]) -> None: ...

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return lovasz_from_options(input, target, self.options)
