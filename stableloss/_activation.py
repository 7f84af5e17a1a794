"""From network output to float32 probabilities and log-probabilities, safely.

Two rules make every loss in this package finite for every finite or infinite input:

1. The output is first *saturated*: cast to float32 (float64 stays float64) and clamped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]``
   (``LOGIT_LIMIT`` = 65504, the float16 maximum). A float16 logit that overflowed to ``+-inf`` is a
   saturated prediction, and becomes the largest logit float16 can hold. The clamp passes the gradient
   straight through, so a confidently wrong saturated pixel still gets the limit gradient that the
   loss has as the logit grows (for cross-entropy, 1), not a silent zero.
2. Everything after that runs in float32, in log space where a probability can round to 0 or 1.

A NaN input stays NaN: it is the caller's bug, and hiding it would hide the bug.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOGIT_LIMIT = 65504.0
"""Logits are clamped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]`` (the float16 maximum) before any math."""

TINY_LOSS = 1e-30
"""Per-element cross-entropy below this is treated as 0 by the focal modulation (see ``focal.py``)."""


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the math runs in: float32 for half and float32 inputs, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


class _StraightThroughClamp(torch.autograd.Function):
    """``x.to(compute_dtype).clamp(low, high)`` whose backward is the identity."""

    @staticmethod
    def forward(ctx, x: Tensor, low: float, high: float) -> Tensor:  # type: ignore[override]
        dtype = compute_dtype(x.dtype)
        if x.dtype == dtype:
            return x.clamp(low, high)
        return x.to(dtype).clamp_(low, high)  # the cast made a fresh copy: clamp it in place

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None, None


def saturate(x: Tensor, low: float = -LOGIT_LIMIT, high: float = LOGIT_LIMIT) -> Tensor:
    """Cast to float32 and clamp to ``[low, high]``, passing the gradient straight through.

    Args:
        x: Any floating tensor (float16, bfloat16 and float32 give float32; float64 stays float64).
        low: Lower bound.
        high: Upper bound.

    Returns:
        A float32 (or float64) tensor of the shape of ``x``; NaN stays NaN.
    """
    return _StraightThroughClamp.apply(x, low, high)


def logits_from_probabilities(input: Tensor, *, mode: str, eps: float) -> Tensor:
    """Logits equivalent to given probabilities, for losses that work in logit space.

    Probabilities are clamped to ``[eps, 1 - eps]`` first (as segmentation-models-pytorch does), so
    a probability of exactly 0 or 1 maps to a large finite logit.
    """
    probs = saturate(input, 0.0, 1.0).clamp(eps, 1.0 - eps)
    if mode == "multiclass":
        return probs.log()
    return probs.log() - torch.log1p(-probs)
