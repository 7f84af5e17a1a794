"""MONAI's ``HausdorffDTLoss`` (Karimi and Salcudean 2019) on stableloss's exact distance transform."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from stableloss import _checks
from stableloss.distance import distance_transform_edt
from stableloss.monai._options import check_common
from stableloss.monai._prepare import check_activation_options, prepare, reduce_axes, reduce_monai


def distance_field(image: Tensor) -> Tensor:
    """MONAI's ``distance_field``: ``edt(fg) + edt(bg)`` of ``image > 0.5`` per image and channel, no gradient.

    An image (and channel) that is all foreground or all background gets 0 everywhere.

    Shape:
        ``(B, C, *S)`` in and out (float32).
    """
    with torch.no_grad():
        foreground = image.detach() > 0.5
        spatial = list(range(2, image.dim()))
        mixed = foreground.any(dim=spatial, keepdim=True) & ~foreground.all(dim=spatial, keepdim=True)
        field = distance_transform_edt(foreground) + distance_transform_edt(~foreground)
        return torch.where(mixed, field, 0.0)


def hausdorff_dt_loss(input: Tensor, target: Tensor, *, alpha: float = 2.0, include_background: bool = False,
                      to_onehot_y: bool = False, sigmoid: bool = False, softmax: bool = False,
                      other_act: Optional[Callable] = None, reduction: str = "mean", batch: bool = False) -> Tensor:
    """MONAI's Hausdorff distance-transform loss (see :class:`HausdorffDTLoss`), as a function."""
    if isinstance(input, Tensor) and input.dim() not in (4, 5):
        raise ValueError(f"input must be 2-D (B, C, H, W) or 3-D (B, C, H, W, D); received shape {tuple(input.shape)}")
    probs, _, flat_target, _ = prepare(input, target, include_background=include_background, to_onehot_y=to_onehot_y,
                                       sigmoid=sigmoid, softmax=softmax, other_act=other_act,
                                       with_complement=False)  # the loss reads p only: a plain softmax
    distance = distance_field(probs).pow(alpha) + distance_field(flat_target).pow(alpha)
    loss = ((probs - flat_target).square() * distance).mean(dim=reduce_axes(input.dim(), batch), keepdim=True)
    return reduce_monai(loss.flatten(start_dim=1), reduction, input.dim())  # (B, C') or (1, C') with batch


class HausdorffDTLoss(nn.Module):
    """MONAI's ``HausdorffDTLoss``: the squared error weighted by the distance fields of prediction and target.

    .. math::

        \\ell_{b,c} = \\operatorname{mean}_i \\,(p_i - t_i)^2 \\,(d_p(i)^{\\alpha} + d_t(i)^{\\alpha})

    with ``d`` the exact distance to the contour of the mask ``> 0.5`` (0 for an image without
    contour), computed without gradient.

    Args:
        alpha: Exponent of the distances (> 0).
        include_background: Score channel 0 (MONAI's default here is False).
        Others: As for :class:`~stableloss.monai.DiceLoss`.

    Shape:
        - input: ``(B, C, H, W)`` or ``(B, C, H, W, D)``.
        - output: a float32 scalar, or ``(B, C', 1, ...)`` (``(1, C', 1, ...)`` with ``batch``) for ``"none"``.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        include_background: bool = False,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Optional[Callable] = None,
        reduction: str = "mean",
        batch: bool = False,
    ) -> None:
        super().__init__()
        check_activation_options(_checks.check_bool("sigmoid", sigmoid), _checks.check_bool("softmax", softmax),
                                 other_act)
        self.reduction = check_common(include_background=include_background, to_onehot_y=to_onehot_y, batch=batch,
                                      reduction=reduction)
        self.alpha = _checks.check_number("alpha", alpha, low=0.0, low_inclusive=False)
        self.include_background, self.to_onehot_y, self.batch = include_background, to_onehot_y, batch
        self.sigmoid, self.softmax, self.other_act = sigmoid, softmax, other_act

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return hausdorff_dt_loss(input, target, alpha=self.alpha, include_background=self.include_background,
                                 to_onehot_y=self.to_onehot_y, sigmoid=self.sigmoid, softmax=self.softmax,
                                 other_act=self.other_act, reduction=self.reduction, batch=self.batch)
