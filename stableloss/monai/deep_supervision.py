"""MONAI's ``DeepSupervisionLoss`` and nnU-Net's deep-supervision weights."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stableloss import _checks

WEIGHT_MODES = ("same", "exp", "two")


def deep_supervision_weights(levels: int, weight_mode: str = "exp", weights: Optional[Sequence[float]] = None) -> List[float]:
    """MONAI's weights of ``levels`` outputs, highest resolution first.

    ``weights`` when it has at least ``levels`` entries (the first ``levels``); else ``"same"``: 1
    each; ``"exp"``: ``max(0.5 ** l, 0.0625)``; ``"two"``: 1 for the first, 0.5 for the others.
    """
    levels = max(1, levels)
    if weights is not None and len(weights) >= levels:
        return [float(w) for w in weights[:levels]]
    if weight_mode == "exp":
        return [max(0.5**level, 0.0625) for level in range(levels)]
    if weight_mode == "two":
        return [1.0 if level == 0 else 0.5 for level in range(levels)]
    return [1.0] * levels


def nnunet_deep_supervision_weights(levels: int) -> List[float]:
    """nnU-Net's weights: ``1 / 2^l`` per level, 0 for the lowest resolution, normalised to sum 1.

    Example:
        >>> nnunet_deep_supervision_weights(4)
        [0.5714285714285714, 0.2857142857142857, 0.14285714285714285, 0.0]
    """
    levels = _checks.check_int("levels", levels, low=1)
    raw = [0.5**level for level in range(levels)]
    if levels > 1:
        raw[-1] = 0.0
    total = sum(raw)
    return [w / total for w in raw]


class DeepSupervisionLoss(nn.Module):
    """MONAI's ``DeepSupervisionLoss``: a weighted sum of one loss over the outputs of several scales.

    .. math::

        \\mathcal{L} = \\sum_l w_l \\, \\ell(x_l, \\operatorname{resize}(t, x_l))

    The target is resized to each output's spatial size by ``nearest-exact`` interpolation (as
    MONAI does), each output is cast to float32 first. For nnU-Net's recipe pass
    ``weights=nnunet_deep_supervision_weights(levels)`` and ``loss=nnunet_dice_ce()``.

    Args:
        loss: The loss of one scale, e.g. :class:`~stableloss.monai.DiceCELoss`.
        weight_mode: ``"exp"`` (default), ``"same"`` or ``"two"`` (see :func:`deep_supervision_weights`).
        weights: Explicit weights, highest resolution first (used when they cover every output).

    Shape:
        - input: one ``(B, C, *S)`` tensor, or a list of them (highest resolution first).
        - target: ``(B, 1 or C, *S)`` at the highest resolution.
    """

    def __init__(self, loss: Callable[[Tensor, Tensor], Tensor], weight_mode: str = "exp",
                 weights: Optional[List[float]] = None) -> None:
        super().__init__()
        if not callable(loss):
            raise TypeError(f"loss must be a callable loss (input, target) -> Tensor; received {type(loss).__name__}")
        self.loss = loss
        self.weight_mode = _checks.check_choice("weight_mode", weight_mode, WEIGHT_MODES)
        self.weights = None if weights is None else list(_checks.as_number_tuple("weights", weights))
        self.interp_mode = "nearest-exact"

    def get_weights(self, levels: int = 1) -> List[float]:
        """The weights of ``levels`` outputs (MONAI's method name)."""
        return deep_supervision_weights(levels, self.weight_mode, self.weights)

    def get_loss(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss of one output, the target resized to its spatial size."""
        if input.shape[2:] != target.shape[2:]:
            target = F.interpolate(target, size=input.shape[2:], mode=self.interp_mode)
        return self.loss(input, target)

    def forward(self, input: Union[None, Tensor, List[Tensor]], target: Tensor) -> Tensor:
        if isinstance(input, (list, tuple)):
            if not input:
                raise ValueError("input must hold at least one output; received an empty sequence")
            weights = self.get_weights(levels=len(input))
            total = torch.zeros((), dtype=torch.float32, device=target.device)
            for weight, output in zip(weights, input, strict=True):
                total = total + weight * self.get_loss(output.float(), target)
            return total
        if input is None:
            raise ValueError("input must be a tensor or a list of tensors; received None")
        return self.loss(input.float(), target)
