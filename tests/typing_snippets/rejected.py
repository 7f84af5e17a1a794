"""User-side code that type checkers must refuse: every line ending in ``# rejects: NAME`` gets NAME wrong.

``tests/test_typing.py`` runs ``mypy --strict`` and pyright on this file: each marked line must get
an error that names the option (a misspelled or unknown one, or one of the wrong type), and no other
line may get one. For an attribute set of the wrong type mypy's message names the types, not the
attribute, so there the error on the line is enough for mypy. The test also runs each marked line
and expects the run-time check to raise naming the same option. Every public loss class and function
has at least one line of each kind (unknown option, wrong type).
"""

import torch

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

x = torch.zeros(2, 1, 8, 8)
t = torch.zeros(2, 1, 8, 8)

DiceLoss("binary", smoth=1.0)  # rejects: smoth
DiceLoss("binary", smooth="1")  # rejects: smooth
dice_loss(x, t, mode="binary", per_imag=True)  # rejects: per_imag
dice_loss(x, t, mode="binary", per_image=3)  # rejects: per_image
dice_loss(x, t, mode="binary", alpha=0.3)  # rejects: alpha
TverskyLoss("binary", alpah=0.3)  # rejects: alpah
TverskyLoss("binary", alpha="0.3")  # rejects: alpha
tversky_loss(x, t, mode="binary", gama=0.75)  # rejects: gama
tversky_loss(x, t, mode="binary", beta=None)  # rejects: beta
JaccardLoss("binary", log_los=True)  # rejects: log_los
JaccardLoss("binary", log_loss="yes")  # rejects: log_loss
jaccard_loss(x, t, mode="binary", from_logit=False)  # rejects: from_logit
jaccard_loss(x, t, mode="binary", eps="1e-7")  # rejects: eps
LogCoshDiceLoss("binary", log_loss=True)  # rejects: log_loss
LogCoshDiceLoss("binary", from_logits=1)  # rejects: from_logits
log_cosh_dice_loss(x, t, mode="binary", smoth=1.0)  # rejects: smoth
log_cosh_dice_loss(x, t, mode="binary", ignore_index="255")  # rejects: ignore_index
FocalLoss("binary", gama=2.0)  # rejects: gama
FocalLoss("binary", gamma="2")  # rejects: gamma
focal_loss(x, t, mode="binary", class_weight=[1.0])  # rejects: class_weight
focal_loss(x, t, mode="binary", classes=[1])  # rejects: classes
focal_loss(x, t, mode="binary", reduced_threshold="0.5")  # rejects: reduced_threshold
BoundaryLoss("binary", spacng=(0.8, 0.8))  # rejects: spacng
BoundaryLoss("binary", spacing="1mm")  # rejects: spacing
boundary_loss(x, t, mode="binary", inside_shfit=1.0)  # rejects: inside_shfit
boundary_loss(x, t, mode="binary", normalize="yes")  # rejects: normalize
HausdorffDTLoss("binary", treshold=0.5)  # rejects: treshold
HausdorffDTLoss("binary", alpha="2")  # rejects: alpha
hausdorff_dt_loss(x, t, mode="binary", alpha_max=0.8)  # rejects: alpha_max
hausdorff_dt_loss(x, t, mode="binary", threshold="0.5")  # rejects: threshold
BoundaryDoULoss("binary", spacing=(0.8, 0.8))  # rejects: spacing
BoundaryDoULoss("binary", alpha_max="0.8")  # rejects: alpha_max
boundary_dou_loss(x, t, mode="binary", alpha_mx=0.8)  # rejects: alpha_mx
boundary_dou_loss(x, t, mode="binary", smooth="1e-5")  # rejects: smooth
BoundaryAwareLoss("binary", bondary="dou")  # rejects: bondary
BoundaryAwareLoss("binary", normalize="yes")  # rejects: normalize
BoundaryAwareLoss("binary", dice_weight="0.5")  # rejects: dice_weight
boundary_aware_loss(x, t, mode="binary", bondary="dou")  # rejects: bondary
boundary_aware_loss(x, t, mode="binary", dice_weight="0.5")  # rejects: dice_weight
CombinedLoss({"dice": DiceLoss("binary")}, weigths=[1.0])  # rejects: weigths
CombinedLoss({"dice": DiceLoss("binary")}, weights="1")  # rejects: weights
LovaszLoss("binary", per_imag=True)  # rejects: per_imag
LovaszLoss("binary", per_image="yes")  # rejects: per_image
lovasz_loss(x, t, mode="binary", ignore_indx=255)  # rejects: ignore_indx
lovasz_loss(x, t, mode="binary", from_logits="no")  # rejects: from_logits
SoftBCEWithLogitsLoss(smoth_factor=0.1)  # rejects: smoth_factor
SoftBCEWithLogitsLoss(smooth_factor="0.1")  # rejects: smooth_factor
soft_bce_with_logits_loss(x, t, pos_weigth=2.0)  # rejects: pos_weigth
soft_bce_with_logits_loss(x, t, reduction=None)  # rejects: reduction
SoftCrossEntropyLoss(dimension=1)  # rejects: dimension
SoftCrossEntropyLoss(dim="1")  # rejects: dim
soft_cross_entropy_loss(x, t, ignore_idx=255)  # rejects: ignore_idx
soft_cross_entropy_loss(x, t, smooth_factor="0.1")  # rejects: smooth_factor
MCCLoss(epsilon=1e-5)  # rejects: epsilon
MCCLoss(eps="1e-5")  # rejects: eps
mcc_loss(x, t, esp=1e-5)  # rejects: esp
mcc_loss(x, t, validate_args="no")  # rejects: validate_args

DiceLoss("binary").smooth = "1"  # rejects: smooth
DiceLoss("binary").alpha = 0.3  # rejects: alpha
TverskyLoss("binary").gamma = "2"  # rejects: gamma
JaccardLoss("binary").log_loss = "yes"  # rejects: log_loss
LogCoshDiceLoss("binary").eps = "1e-7"  # rejects: eps
FocalLoss("multiclass").class_weights = "1"  # rejects: class_weights
BoundaryLoss("binary").spacing = "1mm"  # rejects: spacing
HausdorffDTLoss("binary").threshold = "0.5"  # rejects: threshold
BoundaryDoULoss("binary").ignore_empty = 1  # rejects: ignore_empty
BoundaryAwareLoss("binary").ignore_index = "255"  # rejects: ignore_index
LovaszLoss("binary").per_image = "yes"  # rejects: per_image
SoftBCEWithLogitsLoss().smooth_factor = "0.1"  # rejects: smooth_factor
SoftCrossEntropyLoss().dim = "1"  # rejects: dim
MCCLoss().eps = "1e-5"  # rejects: eps
