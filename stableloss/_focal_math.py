"""The focal modulation, once: the factor ``(1 - p_t)^gamma`` and the derivative of ``factor * CE``.

Everything is a function of the per-element cross-entropy ``ce = -log p_t`` (and of
``u = 1 - p_t = -expm1(-ce)``, exact even where ``p_t`` rounds to 1), so the sigmoid and the softmax
focal losses share it.

.. math::

    f(ce) = u^{\\gamma}, \\qquad \\frac{d\\,(f \\cdot ce)}{d\\,ce} = u^{\\gamma - 1}
    \\bigl(u + \\gamma \\, ce \\, (1 - u)\\bigr)

With ``reduced_threshold`` (Sergievskiy and Ponamarev 2019) the factor is
``(u / threshold)^gamma`` where ``p_t >= threshold`` and 1 elsewhere.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

TINY_LOSS = 1e-30
"""Per-element cross-entropy at or below this is treated as 0 by the ``gamma < 1`` factor."""


def one_minus_pt(ce: Tensor) -> Tensor:
    """``u = 1 - p_t = 1 - exp(-ce)``, as ``-expm1(-ce)``: exact where ``p_t`` rounds to 1."""
    return -torch.expm1(-ce)


def focal_factor(u: Tensor, ce: Tensor, gamma: float, threshold: Optional[float]) -> Tensor:
    """The focal factor ``u^gamma`` (or the reduced-focal factor), a fresh tensor; autograd-safe.

    For ``gamma < 1`` the power's derivative is infinite at ``u = 0`` (a saturated correct
    prediction); there the factor is set to 0 with gradient 0 instead of producing ``0 * inf = NaN``.
    NaN in ``ce`` propagates.
    """
    if gamma == 0.0:
        factor = torch.ones_like(u)
    elif gamma >= 1.0:
        factor = u.pow(gamma)
    else:
        positive = ce > TINY_LOSS
        factor = torch.where(positive, torch.where(positive, u, 1.0).pow(gamma), 0.0)
    if threshold is None:
        return factor
    return torch.where(ce > -math.log(threshold), 1.0, factor * threshold**-gamma)


def focal_term_derivative(u: Tensor, ce: Tensor, gamma: float, threshold: Optional[float]) -> Tensor:
    """``d (focal_factor * ce) / d ce`` in a fresh buffer, finite everywhere (no autograd)."""
    if gamma == 0.0:
        derivative = torch.ones_like(ce)
    elif gamma >= 1.0:
        # u^(gamma-1) (u + gamma ce (1 - u)) = u^(gamma-1) (u + gamma ce - gamma ce u)
        derivative = torch.mul(ce, u).mul_(-gamma).add_(ce, alpha=gamma).add_(u)
        if gamma == 2.0:
            derivative.mul_(u)
        elif gamma != 1.0:
            derivative.mul_(u.pow(gamma - 1.0))
    else:
        # u^gamma (1 + gamma (1 - u) r), with r = ce / u -> 1 as u -> 0.
        ratio = torch.div(ce, u).nan_to_num_(nan=1.0, posinf=1.0)
        derivative = ratio.sub_(ratio * u).mul_(gamma).add_(1.0).mul_(u.pow(gamma))
    if threshold is not None:
        derivative.mul_(threshold**-gamma).masked_fill_(ce > -math.log(threshold), 1.0)
    return derivative
