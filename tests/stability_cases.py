"""The stableloss losses under stability test, each with a float64 textbook reference.

The references are written from the papers' formulas, independently of the library code: plain
``sigmoid``/``softmax`` probabilities, ``TP = sum p t`` etc., in float64. Logits are first clamped to
+-65504, the documented meaning of an overflowed (``+-inf``) float16 logit. They follow the
library's documented defaults: batch statistics, an empty class contributes 0 (``ignore_empty``),
focal mean over pixels then classes, focal-Tversky exponent per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

import stableloss

LIMIT = 65504.0


def _probabilities(x, t, mode):
    """Float64 clamped logits, probabilities and one-hot targets, all ``(N, C, S)``."""
    n, c = x.shape[:2]
    x = x.double().clamp(-LIMIT, LIMIT).reshape(n, c, -1)
    if mode == "multiclass":
        y = F.one_hot(t.reshape(n, -1).long(), c).permute(0, 2, 1).double()
        return x, x.softmax(1), y
    return x, x.sigmoid(), t.double().reshape(n, c, -1)


def tversky_reference(alpha: float, beta: float, gamma: float = 1.0):
    def reference(x, t, mode):
        _, p, y = _probabilities(x, t, mode)
        tp, fp, fn = (p * y).sum((0, 2)), (p * (1 - y)).sum((0, 2)), ((1 - p) * y).sum((0, 2))
        score = tp / (tp + alpha * fp + beta * fn).clamp_min(1e-7)
        loss = (1 - score).clamp_min(0) ** gamma
        return torch.where(y.sum((0, 2)) > 0, loss, 0.0).mean()

    return reference


def focal_reference(gamma: float):
    def reference(x, t, mode):
        x, p, y = _probabilities(x, t, mode)
        if mode == "multiclass":
            ce = -(x.log_softmax(1) * y).sum(1)
        else:
            ce = F.softplus(x) - x * y  # -log p_t for hard labels
        return (ce * (-torch.expm1(-ce)) ** gamma).mean()

    return reference


def log_cosh_dice_reference(x, t, mode):
    _, p, y = _probabilities(x, t, mode)
    tp, total = (p * y).sum((0, 2)), (p + y).sum((0, 2))
    dice_loss = 1 - 2 * tp / total.clamp_min(1e-7)
    return torch.where(y.sum((0, 2)) > 0, torch.log(torch.cosh(dice_loss)), 0.0).mean()


def boundary_aware_reference(x, t, mode):
    return 0.7 * tversky_reference(0.5, 0.5)(x, t, mode) + 0.3 * focal_reference(2.0)(x, t, mode)


@dataclass(frozen=True)
class Case:
    """A loss configuration: ``build(mode)`` makes it, ``reference(x, t, mode)`` is its float64 formula."""

    name: str
    build: Callable[[str], torch.nn.Module]
    reference: Callable

    def reference_for(self, mode: str):
        return lambda x, t: self.reference(x, t, mode)


CASES = [
    Case("DiceLoss", stableloss.DiceLoss, tversky_reference(0.5, 0.5)),
    Case("TverskyLoss", stableloss.TverskyLoss, tversky_reference(0.5, 0.5)),
    Case("TverskyLoss-a0.3-b0.7-g0.75", lambda m: stableloss.TverskyLoss(m, alpha=0.3, beta=0.7, gamma=0.75),
         tversky_reference(0.3, 0.7, 0.75)),
    Case("TverskyLoss-a0.3-b0.7-g2", lambda m: stableloss.TverskyLoss(m, alpha=0.3, beta=0.7, gamma=2.0),
         tversky_reference(0.3, 0.7, 2.0)),
    Case("JaccardLoss", stableloss.JaccardLoss, tversky_reference(1.0, 1.0)),
    Case("FocalLoss", stableloss.FocalLoss, focal_reference(2.0)),
    Case("FocalLoss-g0.5", lambda m: stableloss.FocalLoss(m, gamma=0.5), focal_reference(0.5)),
    Case("LogCoshDiceLoss", stableloss.LogCoshDiceLoss, log_cosh_dice_reference),
    Case("BoundaryAwareLoss", stableloss.BoundaryAwareLoss, boundary_aware_reference),
]
