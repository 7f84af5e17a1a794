"""Weighted combinations of losses, and the boundary-aware Dice + Focal hybrid."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Dict, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from stableloss import _checks
from stableloss.dice import DiceLoss, dice_loss
from stableloss.focal import FocalLoss, focal_loss

LossFn = Callable[[Tensor, Tensor], Tensor]


def _check_terms(terms: object, weights: object) -> tuple:
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(f"terms must be a non-empty mapping of name -> loss; received {type(terms).__name__} {terms!r}")
    for name, term in terms.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"terms must be keyed by identifier names; received key {name!r}")
        if not callable(term):
            raise TypeError(f"terms[{name!r}] must be callable (input, target) -> loss; received {type(term).__name__}")
    if isinstance(weights, Mapping):
        if set(weights) != set(terms):
            raise ValueError(f"weights must name the same terms as terms {sorted(terms)}; received {sorted(weights)}")
        values = [weights[name] for name in terms]
    else:
        values = list(_checks.as_number_tuple("weights", weights))
        if len(values) != len(terms):
            raise ValueError(f"weights must have one entry per term ({len(terms)}); received {len(values)}")
    checked = [_checks.check_number(f"weights[{name!r}]", w, low=0.0) for name, w in zip(terms, values)]
    if not math.fsum(checked) > 0:
        raise ValueError(f"weights must not all be 0; received {checked}")
    return dict(terms), dict(zip(terms, checked))


class CombinedLoss(nn.Module):
    """A weighted sum of losses: ``sum_k w_k * loss_k(input, target)``.

    Any callables ``(input, target) -> scalar`` can be combined: stableloss losses, torch losses,
    losses of other libraries. Terms are named so that a training loop can see each one:
    :meth:`components` returns them unweighted, :meth:`combine` weights and adds them (the forward
    is the two together).

    Args:
        terms: Mapping of name to loss module or function. Modules are registered as submodules,
            so ``.to()`` and ``state_dict()`` reach them.
        weights: Mapping of the same names to weights >= 0, or a sequence in the order of
            ``terms`` (default: 1 each).

    Shape:
        - input, target: whatever every term accepts; output: a float32 scalar.

    Example:
        >>> import torch.nn.functional as F
        >>> from stableloss import DiceLoss
        >>> bce = lambda x, t: F.binary_cross_entropy_with_logits(x.float(), t.float())
        >>> loss = CombinedLoss({"dice": DiceLoss("binary"), "bce": bce}, weights={"dice": 0.5, "bce": 0.5})
        >>> sorted(loss.components(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)))
        ['bce', 'dice']
    """

    def __init__(self, terms: Mapping[str, LossFn], weights: Union[None, Mapping[str, float], Sequence[float]] = None) -> None:
        super().__init__()
        if weights is None and isinstance(terms, Mapping):
            weights = [1.0] * len(terms)
        self._terms, self.weights = _check_terms(terms, weights)
        self.losses = nn.ModuleDict({name: t for name, t in self._terms.items() if isinstance(t, nn.Module)})

    def components(self, input: Tensor, target: Tensor) -> Dict[str, Tensor]:
        """Each term's loss, unweighted, as float32 scalars keyed by name."""
        out = {}
        for name, term in self._terms.items():
            fn = self.losses[name] if name in self.losses else term
            value = fn(input, target)
            if not isinstance(value, Tensor):  # a term that returns a Python number
                value = torch.as_tensor(value, dtype=torch.float32, device=input.device)
            out[name] = value if value.dtype == torch.float64 else value.float()
        return out

    def combine(self, components: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of :meth:`components`' output."""
        values = [self.weights[name] * value for name, value in components.items()]
        if not values:
            raise ValueError("components must hold at least one term's value; received an empty mapping")
        return torch.stack(torch.broadcast_tensors(*values)).sum(0) if len(values) > 1 else values[0]

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return self.combine(self.components(input, target))

    def extra_repr(self) -> str:
        return "weights=" + ", ".join(f"{k}={v}" for k, v in self.weights.items())


class BoundaryAwareLoss(CombinedLoss):
    """The hybrid of the liver CT experiment: ``0.7 * Dice + 0.3 * Focal(gamma=2)``, FP16-safe.

    .. math::

        \\mathcal{L} = w_d \\, \\mathcal{L}_{Dice} + w_f \\, \\mathcal{L}_{Focal}, \\qquad
        w_d = 0.7, \\; w_f = 0.3

    Built by composing :class:`~stableloss.DiceLoss` and :class:`~stableloss.FocalLoss`: pass your
    own instances to change their options, rather than options of this class.

    What Focal does and does not do for boundaries: the focal factor ``(1 - p_t)^gamma`` shrinks
    the loss and gradient of pixels that are already classified confidently, which in a trained
    segmentation model are mostly interior pixels, so the gradient that remains comes from
    uncertain pixels, and those cluster near the boundary. That makes Focal a proxy for boundary
    emphasis *only to the extent that the hard pixels are the boundary pixels*; it has no notion of
    distance to a contour. It does not measure or penalise boundary displacement (as Hausdorff or
    boundary losses do), it gives equal weight to an uncertain pixel far from any edge, and early in
    training, when every pixel is uncertain, it emphasises nothing in particular.
    ``bench/grad_norms.py`` measures the boundary-to-interior gradient ratio for each loss.

    Args:
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        dice: The region term; default ``DiceLoss(mode)``.
        focal: The pixel term; default ``FocalLoss(mode, gamma=2.0)``.
        dice_weight: Weight of the region term (default 0.7).
        focal_weight: Weight of the pixel term (default 0.3).

    Shape:
        - As for :class:`~stableloss.DiceLoss`; output: a float32 scalar.

    Example:
        >>> criterion = BoundaryAwareLoss("binary")
        >>> criterion.weights
        {'dice': 0.7, 'focal': 0.3}
    """

    def __init__(
        self,
        mode: str,
        dice: Optional[nn.Module] = None,
        focal: Optional[nn.Module] = None,
        *,
        dice_weight: float = 0.7,
        focal_weight: float = 0.3,
    ) -> None:
        mode = _checks.check_mode(mode)
        dice = DiceLoss(mode) if dice is None else dice
        focal = FocalLoss(mode, gamma=2.0) if focal is None else focal
        super().__init__({"dice": dice, "focal": focal}, {"dice": dice_weight, "focal": focal_weight})
        self.mode = mode


def boundary_aware_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    dice_weight: float = 0.7,
    focal_weight: float = 0.3,
    dice_options: Optional[Mapping[str, object]] = None,
    focal_options: Optional[Mapping[str, object]] = None,
) -> Tensor:
    """Functional twin of :class:`BoundaryAwareLoss`: ``dice_weight * Dice + focal_weight * Focal``.

    Args:
        input, target: As for :func:`~stableloss.dice_loss`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        dice_weight: Weight of the Dice term (default 0.7).
        focal_weight: Weight of the Focal term (default 0.3).
        dice_options: Keyword arguments for :func:`~stableloss.dice_loss`.
        focal_options: Keyword arguments for :func:`~stableloss.focal_loss` (default ``gamma=2``).

    Returns:
        A float32 scalar.

    Example:
        >>> round(boundary_aware_loss(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), mode="binary").item(), 4)
        0.2853
    """
    dice_weight = _checks.check_number("dice_weight", dice_weight, low=0.0)
    focal_weight = _checks.check_number("focal_weight", focal_weight, low=0.0)
    focal_kwargs = {"gamma": 2.0, **dict(focal_options or {})}
    dice = dice_loss(input, target, mode=mode, **dict(dice_options or {}))
    focal = focal_loss(input, target, mode=mode, **focal_kwargs)
    return dice_weight * dice + focal_weight * focal
