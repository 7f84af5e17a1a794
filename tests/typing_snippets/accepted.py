"""User-side code that type checkers must accept: the documented calls of every public loss.

The README's examples and the docstrings' examples, with small tensors. ``tests/test_typing.py``
runs ``mypy --strict`` and pyright on this file (no error allowed) and also runs it, so every
call here is a real one.
"""

from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

import stableloss as sl
from stableloss import (
    BoundaryAwareLoss,
    BoundaryDoULoss,
    BoundaryLoss,
    CombinedLoss,
    DiceLoss,
    FocalLoss,
    HausdorffDTLoss,
    JaccardLoss,
    LogCoshDiceLoss,
    LovaszLoss,
    MCCLoss,
    SoftBCEWithLogitsLoss,
    SoftCrossEntropyLoss,
    TverskyLoss,
    boundary_aware_loss,
    boundary_dou_loss,
    boundary_loss,
    dice_loss,
    focal_loss,
    hausdorff_dt_loss,
    jaccard_loss,
    log_cosh_dice_loss,
    lovasz_loss,
    mcc_loss,
    soft_bce_with_logits_loss,
    soft_cross_entropy_loss,
    tversky_loss,
)

# README, "Use" (smaller tensors)
criterion = DiceLoss("binary")
logits = torch.randn(2, 1, 32, 32, dtype=torch.float16, requires_grad=True)
target = (torch.rand(2, 1, 32, 32) > 0.5).float()
loss = criterion(logits, target)
loss.backward()
hybrid = BoundaryAwareLoss("binary")
parts = hybrid.components(logits, target)
seed = BoundaryAwareLoss("binary", boundary=None)
value = dice_loss(logits, target, mode="binary")
criterion.smooth = 1.0

# README: every class from its mode alone; the keyword-only options
tversky = TverskyLoss("binary")
focal = FocalLoss("multiclass")
per_image = DiceLoss("binary", per_image=True)
weighted = DiceLoss("multiclass", class_weights=[1.0, 2.0, 0.5], reduction="none", ignore_empty=False)
distributed = DiceLoss("multilabel", global_batch=True, validate_args=False, fused=None)
eager = FocalLoss("binary", fused=False)
for reduction in ("mean", "sum", "none"):
    DiceLoss("binary", reduction=reduction)

# README, migrating from smp: the positional arguments are smp's
smp_dice = DiceLoss("multiclass", [1, 2], False, True, 0.0, None, 1e-7)
smp_tversky = TverskyLoss("multiclass", None, False, True, 0.0, None, 1e-7, 0.3, 0.7, 1.0)
smp_focal = FocalLoss("binary", 0.25, 2.0, None, True, 1e-7, "mean", False, None)
sigmoid_focal = FocalLoss("multiclass", multiclass_activation="sigmoid")
pixel_weights = FocalLoss("multiclass", class_weights=torch.tensor([0.2, 1.0, 1.0]))
numpy_weights = DiceLoss("multiclass", classes=np.array([1, 2]), class_weights=np.array([1.0, 2.0, 3.0]))
focal_alpha = FocalLoss("multiclass", alpha=[0.25, 0.5, 0.25])


# README and CombinedLoss's docstring
def my_bce(x: Tensor, t: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(x.float(), t.float())


combined = CombinedLoss({"dice": DiceLoss("binary"), "bce": my_bce}, weights={"dice": 0.5, "bce": 0.5})
combined_in_order = CombinedLoss({"dice": DiceLoss("binary"), "bce": my_bce}, weights=[0.5, 0.5])
names = sorted(combined.components(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)))

# README, boundary-aware training
kervadec = sl.BoundaryAwareLoss("binary", boundary="boundary", normalize=False, dice_weight=1.0,
                                focal_weight=0.0, boundary_weight=1.0, schedule="rebalance")
to_map = kervadec.distance_transform(spatial_dims=2)
mask = np.zeros((1, 16, 16), dtype=np.uint8)
mask[:, 4:10, 4:10] = 1
phi = torch.as_tensor(to_map(mask))[None]
image_logits = torch.randn(1, 1, 16, 16)
mask_tensor = torch.as_tensor(mask, dtype=torch.float32)[None]
hybrid_loss = kervadec(image_logits, mask_tensor, distance_map=phi)
kervadec.step()
ignoring = BoundaryAwareLoss("multiclass", ignore_index=255)
hausdorff_hybrid = BoundaryAwareLoss("binary", boundary="hausdorff", spacing=(0.8, 0.8), dice_weight=0.7)
dou_hybrid = BoundaryAwareLoss("multiclass", class_weights=[1.0, 2.0, 2.0], alpha_max=0.8, validate_args=True)
scheduled = BoundaryAwareLoss("binary", boundary="boundary", schedule="constant", from_logits=True)

# Docstring examples
x = torch.tensor([[[[4.0, -4.0], [4.0, -4.0]]]])
t = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
tversky_value = tversky_loss(x, t, mode="binary", alpha=0.3, beta=0.7)
focal_tversky = tversky_loss(x, t, mode="binary", alpha=0.7, beta=0.3, gamma=0.75)
jaccard_value = jaccard_loss(x, t, mode="binary")
loss_tversky = TverskyLoss("binary", alpha=0.3, beta=0.7)
jaccard = JaccardLoss("binary")(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
log_cosh = log_cosh_dice_loss(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), mode="binary")
log_cosh_module = LogCoshDiceLoss("binary")(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
half = torch.tensor([[[float("-inf"), 0.0, float("inf")]]], dtype=torch.float16)
focal_none = focal_loss(half, torch.tensor([[[1.0, 1.0, 1.0]]]), mode="binary", reduction="none")
focal_module = FocalLoss("binary", gamma=2.0)
line = torch.tensor([[[-9.0, 9.0, 9.0, -9.0, -9.0, 9.0]]])
line_target = torch.tensor([[[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]]])
boundary_value = boundary_loss(line, line_target, mode="binary")
hausdorff_value = hausdorff_dt_loss(line, line_target, mode="binary")
square = torch.full((1, 1, 8, 8), -9.0)
square[..., 2:6, 2:6] = 9.0
dou_value = boundary_dou_loss(square, (square > 0).float(), mode="binary")
boundary_module = BoundaryLoss("binary", spacing=(0.8, 0.8))
multiclass_map = BoundaryLoss("multiclass", spacing=(0.8, 0.8), ignore_index=255).distance_transform(num_classes=3)
hausdorff_module = HausdorffDTLoss("multiclass", alpha=2.0)
hausdorff_map = HausdorffDTLoss("multiclass", spacing=(0.8, 0.8), ignore_index=255).distance_transform(num_classes=3)
dou_module = BoundaryDoULoss("binary")
weights = BoundaryAwareLoss("binary", boundary="boundary").weights
seed_value = boundary_aware_loss(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), mode="binary", boundary=None)

# The functions take every option of their class by keyword
dice_value = dice_loss(x, t, mode="binary", smooth=1.0, log_loss=True, eps=1e-6, from_logits=True, per_image=True)
focal_value = focal_loss(x, t, mode="binary", alpha=0.25, gamma=0.5, normalized=True, reduced_threshold=0.5)
kervadec_value = boundary_loss(line, line_target, mode="binary", inside_shift=1.0, normalize=True, no_surface="zero",
                               backend="torch", distance_map=None)
hausdorff_alpha = hausdorff_dt_loss(line, line_target, mode="binary", alpha=1.0, threshold=0.4, spacing=0.5)
dou_smooth = boundary_dou_loss(square, (square > 0).float(), mode="binary", smooth=1e-3, ignore_empty=False)
shared = boundary_aware_loss(square, (square > 0).float(), mode="binary", validate_args=False, dice_options={"smooth": 1.0})

# Options are attributes, validated when set (README; DiceLoss's and TverskyLoss's docstrings)
tversky.alpha = 0.3
tversky.classes = None
weighted.class_weights = [1.0, 1.0, 1.0]
weights_read: Optional[Tensor] = weighted.class_weights
classes_read: Optional[Tensor] = smp_dice.classes
dice_alpha: float = criterion.alpha
jaccard_module = JaccardLoss("binary")
jaccard_module.log_loss = True
log_cosh_loss = LogCoshDiceLoss("binary")
log_cosh_loss.smooth = 0.5
focal.gamma = 1.0
focal.alpha = [0.2, 0.3, 0.5]
focal_alpha_read: Union[None, float, Tensor] = focal.alpha
boundary_module.spacing = 0.5
spacing_read: Union[None, float, Tuple[float, ...]] = boundary_module.spacing
hausdorff_module.threshold = 0.4
dou_module.alpha_max = 0.5
hybrid.ignore_index = 0
ignoring.classes = [1, 2]
mode: str = dou_module.mode

# The rest of smp's losses: smp's positional arguments, the functions, the attributes (their docstrings)
smp_lovasz = LovaszLoss("multiclass", True, 255, True)
lovasz_value = lovasz_loss(x, t, mode="binary", per_image=False, ignore_index=None, from_logits=True, validate_args=True)
soft_bce = SoftBCEWithLogitsLoss(torch.tensor([0.5]), -100, "mean", 0.1, torch.tensor([2.0]))
soft_bce_listed = SoftBCEWithLogitsLoss(weight=[[[0.2]], [[2.0]]], pos_weight=2.0, validate_args=False)
soft_bce_value = soft_bce_with_logits_loss(x, t, weight=np.array([0.5]), smooth_factor=0.1, reduction="sum")
soft_ce = SoftCrossEntropyLoss("mean", 0.1, -100, 1)
soft_ce_value = soft_cross_entropy_loss(torch.zeros(2, 3), torch.tensor([0, 2]), smooth_factor=None, dim=-1)
mcc = MCCLoss(1e-5)
mcc_value = mcc_loss(torch.sigmoid(x), t, eps=1e-3)
smp_lovasz.per_image = False
soft_bce.pos_weight = [3.0]
pos_weight_read: Optional[Tensor] = soft_bce.pos_weight
soft_ce.smooth_factor = None
mcc.eps = 1e-4
binary_mode: str = sl.BINARY_MODE
