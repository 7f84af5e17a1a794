"""From network output to float32 probabilities, safely: the clamp and the activations.

Two rules make every loss in this package finite for every finite or infinite input:

1. The output is first *saturated*: cast to float32 (float64 stays float64) and clamped to
   ``[-LOGIT_LIMIT, LOGIT_LIMIT]`` (``LOGIT_LIMIT`` = 65504, the float16 maximum). A float16 logit that
   overflowed to ``+-inf`` is a saturated prediction, and becomes the largest logit float16 can hold.
   The clamp passes the gradient straight through, so a confidently wrong saturated pixel still gets
   the limit gradient that the loss has as the logit grows (for cross-entropy, 1), not a silent zero.
2. Everything after that runs in float32, in log space where a probability can round to 0 or 1.

A NaN input stays NaN: it is the caller's bug, and hiding it would hide the bug.
"""

from __future__ import annotations

import math
from typing import Any, Tuple

import torch
from torch import Tensor

from stableloss._checks import is_compiling

LOGIT_LIMIT = 65504.0
"""Logits are clamped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]`` (the float16 maximum) before any math."""

ACTIVATIONS = ("sigmoid", "softmax", "identity")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the math runs in: float32 for half and float32 inputs, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


class _StraightThroughClamp(torch.autograd.Function):
    """``x.to(compute_dtype).clamp(low, high)`` whose backward is the identity (linear: any order)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, low: float, high: float) -> Tensor:  # type: ignore[override]
        dtype = compute_dtype(x.dtype)
        if x.dtype == dtype or is_compiling():  # out of place under dynamo (see _sigmoid_focal._SigmoidFocal)
            return x.to(dtype).clamp(low, high)
        return x.to(dtype).clamp_(low, high)  # the cast made a fresh copy: clamp it in place

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
        ctx.input_dtype = inputs[0].dtype

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[Tensor, None, None]:  # type: ignore[override]
        return grad.to(ctx.input_dtype), None, None


class _StraightThroughClampForwardMode(_StraightThroughClamp):
    """With forward-mode AD; dynamo cannot trace a custom ``jvp``, so eager only."""

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor, *unused: Any) -> Tensor:
        return tangent.to(compute_dtype(tangent.dtype))


def saturate(x: Tensor, low: float = -LOGIT_LIMIT, high: float = LOGIT_LIMIT) -> Tensor:
    """Cast to float32 and clamp to ``[low, high]``, passing the gradient straight through.

    Args:
        x: Any floating tensor (float16, bfloat16 and float32 give float32; float64 stays float64).
        low: Lower bound.
        high: Upper bound.

    Returns:
        A float32 (or float64) tensor of the shape of ``x``; NaN stays NaN.
    """
    function = _StraightThroughClamp if is_compiling() else _StraightThroughClampForwardMode
    return function.apply(x, low, high)


def logits_from_probabilities(probs: Tensor, *, mode: str, eps: float) -> Tensor:
    """Logits equivalent to given probabilities clamped to ``[eps, 1 - eps]``, for losses in logit space.

    The clamp is symmetric without forming ``1 - eps`` (which float32 rounds: ``1 - 1e-8`` is 1):
    below 1/2 the logit is ``log p - log1p(-p)`` with ``p >= eps``; above, it is
    ``log1p(-q) - log q`` with ``q = 1 - p`` (exact there) and ``q >= eps``. In multiclass mode
    the result is ``log p`` with ``p`` in ``[eps, 1 - eps]`` (``log(1 - eps)`` as ``log1p(-eps)``).
    The clamp passes no gradient outside ``[eps, 1 - eps]``, as segmentation-models-pytorch's does.
    """
    p = saturate(probs, 0.0, 1.0)
    if mode == "multiclass":
        return p.clamp_min(eps).log().clamp_max(math.log1p(-eps))
    low = p < 0.5
    small = torch.where(low, p, 1.0 - p).clamp_min(eps)  # min(p, 1 - p), exact, at least eps
    magnitude = torch.log1p(-small) - torch.log(small)  # log((1 - s) / s) >= 0
    return torch.where(low, -magnitude, magnitude)


def activate(input: Tensor, activation: str) -> Tuple[Tensor, Tensor]:
    """Fresh float32 (float64 for float64 input) probabilities ``p`` and complements ``q = 1 - p``.

    ``"sigmoid"``: ``p = sigmoid(x)``, ``q = sigmoid(-x)``; no clamp needed (``sigmoid(+-inf)`` is
    1 or 0 with gradient 0). ``"softmax"`` (over dim 1): logits clamped to +-``LOGIT_LIMIT``
    (``inf - inf`` would be NaN), ``q`` summed from the other classes' exponentials through exclusive
    cumulative sums (no subtraction). ``"identity"``: given probabilities clamped to [0, 1],
    ``q = 1 - p``. Autograd can differentiate every branch (any order).
    """
    dtype = compute_dtype(input.dtype)
    if activation == "identity":
        probs = input.to(dtype).clamp(0.0, 1.0)
        return probs, 1.0 - probs
    if activation == "softmax":
        return _softmax_with_complement(saturate(input))
    logits = input if input.dtype == dtype else input.to(dtype)
    return torch.sigmoid(logits), torch.sigmoid(-logits)


def _softmax_with_complement(logits: Tensor) -> Tuple[Tensor, Tensor]:
    """Softmax over dim 1 and, per class, the probability mass of all the other classes."""
    exps = (logits - logits.amax(dim=1, keepdim=True)).exp()
    total = exps.sum(dim=1, keepdim=True)
    before = exps.cumsum(dim=1).narrow(1, 0, exps.shape[1] - 1)  # sum of classes < c, for c >= 1
    after = exps.flip(1).cumsum(dim=1).flip(1).narrow(1, 1, exps.shape[1] - 1)  # classes > c, c < C-1
    zero = torch.zeros_like(exps.narrow(1, 0, 1))
    others = torch.cat([zero, before], dim=1) + torch.cat([after, zero], dim=1)
    # The two partial sums can round above total - exp: q may not exceed 1, or a class with no
    # target pixel would count a false negative of max(q - 1, 0) > 0 and stop being empty.
    return exps / total, (others / total).clamp_max(1.0)


def activation_backward(grad_probs: Tensor, probs: Tensor, complement: Tensor, activation: str) -> Tensor:
    """Gradient with respect to the logits from the gradient with respect to :func:`activate`'s ``p``.

    ``grad_probs`` may be overwritten (it is a fresh buffer of the caller's).
    """
    if activation == "identity":
        return grad_probs
    if activation == "softmax":
        return torch.ops.aten._softmax_backward_data(grad_probs, probs, 1, probs.dtype)
    return grad_probs.mul_(probs).mul_(complement)
