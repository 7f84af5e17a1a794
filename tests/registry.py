"""A registry describing each loss, driving the generic tests (the way PyTorch's OpInfo does).

Each :class:`LossInfo` says how to build the loss as a class and call it as a function, which
option sets ("variants") to exercise, its float64 reference and its bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import stableloss
from stableloss.hybrid import DEFAULT_BOUNDARY, DEFAULT_BOUNDARY_OPTIONS, default_weights
from stableloss.testing import REFERENCE_FLOOR
from tests import reference

MODES = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class LossInfo:
    name: str
    cls: Callable
    fn: Callable
    reference: Callable
    variants: List[Dict] = field(default_factory=lambda: [{}])
    bounds: Tuple[Optional[float], Optional[float]] = (0.0, 1.0)
    overlap: bool = True  # a Dice-family loss (scores TP/FP/FN)
    perfect_value: Optional[float] = 0.0  # the loss of a perfect prediction (None: not a constant)
    perfect_atol: float = 1e-6
    vmap: bool = True  # torch.func.vmap over the logits is supported
    scale: Optional[Callable] = None  # (example shape, options) -> the magnitude of the loss's terms

    def reference_floor(self, options: Dict):
        """The stability checks' error floor: 1e-4 times the loss's natural magnitude."""
        if self.scale is None:
            return REFERENCE_FLOOR
        return lambda example: REFERENCE_FLOOR * self.scale(example.shape, options)

    def build(self, mode: str, **options):
        return self.cls(mode, **options)

    def call(self, logits, target, mode: str, **options):
        return self.fn(logits, target, mode=mode, **options)


def _seed_reference(logits, target, *, mode, dice_weight=0.7, focal_weight=0.3):
    return (dice_weight * reference.tversky_reference(logits, target, mode=mode)
            + focal_weight * reference.focal_reference(logits, target, mode=mode, gamma=2.0))


def _seed_class(mode, dice_weight=0.7, focal_weight=0.3):
    return stableloss.BoundaryAwareLoss(mode, boundary=None, dice_weight=dice_weight, focal_weight=focal_weight)


def _seed_function(logits, target, *, mode, **options):
    return stableloss.boundary_aware_loss(logits, target, mode=mode, boundary=None, **options)


def _hybrid_reference(logits, target, *, mode):
    boundary = {"boundary": reference.boundary_reference, "hausdorff": reference.hausdorff_reference,
                "dou": reference.boundary_dou_reference}[DEFAULT_BOUNDARY]
    options = DEFAULT_BOUNDARY_OPTIONS[DEFAULT_BOUNDARY]
    dice_weight, focal_weight, boundary_weight = default_weights(DEFAULT_BOUNDARY)
    return (_seed_reference(logits, target, mode=mode, dice_weight=dice_weight, focal_weight=focal_weight)
            + boundary_weight * boundary(logits, target, mode=mode, **options))


def _map_magnitude(shape, options):
    """Raw distance maps reach the image's extent diagonal: sums of such terms may cancel to 0."""
    if options.get("normalize"):
        return 1.0
    spacing = options.get("spacing", 1.0)
    return max(1.0, math.sqrt(sum((s * spacing) ** 2 for s in shape[2:])))


def _jaccard_reference(logits, target, **kw):
    return reference.tversky_reference(logits, target, alpha=1.0, beta=1.0, **kw)


LOSSES = [
    LossInfo("dice", stableloss.DiceLoss, stableloss.dice_loss, reference.tversky_reference,
             variants=[{}, {"log_loss": True}, {"smooth": 1.0}, {"per_image": True}],
             bounds=(0.0, None)),  # -log(eps) bounds the log loss; checked per variant below
    LossInfo("tversky", stableloss.TverskyLoss, stableloss.tversky_loss, reference.tversky_reference,
             variants=[{"alpha": 0.3, "beta": 0.7}, {"alpha": 0.7, "beta": 0.3, "gamma": 0.75},
                       {"alpha": 0.5, "beta": 0.5, "gamma": 2.0}]),
    LossInfo("jaccard", stableloss.JaccardLoss, stableloss.jaccard_loss, _jaccard_reference),
    LossInfo("focal", stableloss.FocalLoss, stableloss.focal_loss, reference.focal_reference,
             variants=[{}, {"gamma": 0.5}, {"gamma": 0.0, "alpha": 0.25}, {"gamma": 3.0, "alpha": 0.75}],
             bounds=(0.0, None), overlap=False),
    LossInfo("logcosh", stableloss.LogCoshDiceLoss, stableloss.log_cosh_dice_loss, reference.log_cosh_reference,
             bounds=(0.0, reference.LOG_COSH_ONE)),
    LossInfo("seed", _seed_class, _seed_function, _seed_reference,
             variants=[{}, {"dice_weight": 0.5, "focal_weight": 0.5}], bounds=(0.0, None), overlap=False),
    LossInfo("boundary", stableloss.BoundaryLoss, stableloss.boundary_loss, reference.boundary_reference,
             variants=[{}, {"normalize": True, "spacing": 0.7}, {"inside_shift": 1.0, "no_surface": "zero"}],
             bounds=(None, None), overlap=False, perfect_value=None, scale=_map_magnitude),
    LossInfo("hausdorff", stableloss.HausdorffDTLoss, stableloss.hausdorff_dt_loss, reference.hausdorff_reference,
             variants=[{}, {"alpha": 1.0, "normalize": True}, {"no_surface": "zero", "spacing": 1.5}],
             bounds=(0.0, None), overlap=False, vmap=False),  # the predicted mask's EDT branches on its data
    LossInfo("dou", stableloss.BoundaryDoULoss, stableloss.boundary_dou_loss, reference.boundary_dou_reference,
             variants=[{}, {"alpha_max": 0.5}], overlap=False, perfect_atol=1e-4),  # smooth = 1e-5 over >= 0.2 I
    LossInfo("hybrid", stableloss.BoundaryAwareLoss, stableloss.boundary_aware_loss, _hybrid_reference,
             bounds=(None, None), overlap=False, perfect_value=None,
             scale=lambda shape, options: max(1.0, default_weights(DEFAULT_BOUNDARY)[2] * _map_magnitude(
                 shape, DEFAULT_BOUNDARY_OPTIONS[DEFAULT_BOUNDARY]))),
]

BY_NAME = {info.name: info for info in LOSSES}


def upper_bound(info: LossInfo, options: Dict) -> Optional[float]:
    """The loss's upper bound for these options (None: unbounded above)."""
    if info.name == "dice":
        return None if options.get("log_loss") else 1.0
    return info.bounds[1]


def cases():
    """(info, variant) pairs for parametrisation, with readable ids."""
    out, ids = [], []
    for info in LOSSES:
        for index, variant in enumerate(info.variants):
            out.append((info, variant))
            ids.append(f"{info.name}-{index}")
    return out, ids
