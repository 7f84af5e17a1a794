"""MONAI's segmentation losses with stableloss's numerics: change the import, keep the numbers.

``from stableloss.monai import DiceCELoss`` in place of ``from monai.losses import DiceCELoss``: the
constructors have MONAI 1.6's parameter names, order and defaults, the inputs MONAI's conventions
(``(B, C, *S)`` logits; targets ``(B, 1, *S)`` class indices with ``to_onehot_y=True``, else
``(B, C, *S)``), ``reduction="none"`` MONAI's shapes, and the float32 values agree with MONAI's to
float32 rounding (checked in the test suite against MONAI itself and MONAI's own test vectors).
What differs is what MONAI gets wrong under mixed precision: every sum is float32 (MONAI sums in the
input's dtype, and float16 sums overflow past 65504), logits are clamped to +-65504 before the
softmax (a float16 logit that overflowed to inf is a saturated prediction, not a NaN), the focal and
cross-entropy terms are formed in log space, and the loss is returned in float32. Where MONAI
raises an ``AssertionError`` (a target of the wrong shape) these raise ``ValueError``; bad
constructor arguments are refused when the loss is built, with the argument named.

MONAI stays out of the dependencies: nothing here imports it.
"""

from stableloss.monai.combined import DiceCELoss, DiceFocalLoss, GeneralizedDiceFocalLoss, nnunet_dice_ce
from stableloss.monai.deep_supervision import (
    DeepSupervisionLoss,
    deep_supervision_weights,
    nnunet_deep_supervision_weights,
)
from stableloss.monai.dice import DiceLoss, GeneralizedDiceLoss, TverskyLoss
from stableloss.monai.focal import FocalLoss
from stableloss.monai.hausdorff import HausdorffDTLoss

__all__ = [
    "DeepSupervisionLoss",
    "DiceCELoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalLoss",
    "GeneralizedDiceFocalLoss",
    "GeneralizedDiceLoss",
    "HausdorffDTLoss",
    "TverskyLoss",
    "deep_supervision_weights",
    "nnunet_deep_supervision_weights",
    "nnunet_dice_ce",
]
