"""stableloss: segmentation losses that stay finite under mixed precision.

Every loss is a function and a thin class over it, for ``"binary"``, ``"multiclass"`` and
``"multilabel"`` targets in 2D and 3D. The eight losses and three mode constants of
``segmentation_models_pytorch.losses`` are all here, their classes with smp's arguments, so
``import stableloss as smp_losses`` switches a training script. Loss and gradient are finite for every finite or infinite
input in float32, float16/bfloat16 autocast and plain half tensors; the loss is returned in
float32 (float64 for float64 inputs, so ``gradcheck`` works). Exact distance maps, distance- and
contour-based losses and surface metrics (HD95, ASSD, surface Dice) come with them.
"""

from stableloss._activation import LOGIT_LIMIT
from stableloss._options import BoundaryOptions, FocalOptions, RegionOptions
from stableloss.boundary import BoundaryLoss, boundary_loss
from stableloss.boundary_dou import BoundaryDoULoss, boundary_dou_loss
from stableloss.combined import CombinedLoss
from stableloss.constants import BINARY_MODE, MULTICLASS_MODE, MULTILABEL_MODE
from stableloss.dice import DiceLoss, dice_loss
from stableloss.distance import (
    SignedDistanceTransform,
    distance_transform_edt,
    sample_signed_distance_map,
    signed_distance_map,
)
from stableloss.focal import FocalLoss, focal_loss
from stableloss.hausdorff import HausdorffDTLoss, hausdorff_dt_loss
from stableloss.hybrid import BoundaryAwareLoss, boundary_aware_loss
from stableloss.log_cosh import LogCoshDiceLoss, log_cosh_dice_loss
from stableloss.lovasz import LovaszLoss, lovasz_loss
from stableloss.mcc import MCCLoss, mcc_loss
from stableloss.schedule import ConstantSchedule, RebalanceSchedule
from stableloss.soft_ce import SoftBCEWithLogitsLoss, SoftCrossEntropyLoss, soft_bce_with_logits_loss, soft_cross_entropy_loss
from stableloss.surface import (
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
    surface_metrics,
)
from stableloss.tversky import JaccardLoss, TverskyLoss, jaccard_loss, tversky_loss

__version__ = "0.3.0"

__all__ = [
    "BINARY_MODE",
    "BoundaryAwareLoss",
    "BoundaryDoULoss",
    "BoundaryLoss",
    "BoundaryOptions",
    "CombinedLoss",
    "ConstantSchedule",
    "DiceLoss",
    "FocalLoss",
    "FocalOptions",
    "HausdorffDTLoss",
    "JaccardLoss",
    "LOGIT_LIMIT",
    "LogCoshDiceLoss",
    "LovaszLoss",
    "MCCLoss",
    "MULTICLASS_MODE",
    "MULTILABEL_MODE",
    "RebalanceSchedule",
    "RegionOptions",
    "SignedDistanceTransform",
    "SoftBCEWithLogitsLoss",
    "SoftCrossEntropyLoss",
    "TverskyLoss",
    "average_surface_distance",
    "boundary_aware_loss",
    "boundary_dou_loss",
    "boundary_loss",
    "dice_loss",
    "distance_transform_edt",
    "focal_loss",
    "hausdorff_distance",
    "hausdorff_dt_loss",
    "jaccard_loss",
    "log_cosh_dice_loss",
    "lovasz_loss",
    "mcc_loss",
    "normalized_surface_dice",
    "sample_signed_distance_map",
    "signed_distance_map",
    "soft_bce_with_logits_loss",
    "soft_cross_entropy_loss",
    "surface_metrics",
    "tversky_loss",
]
