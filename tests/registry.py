"""A registry describing each loss, driving the generic tests (the way PyTorch's OpInfo does).

Each :class:`LossInfo` says how to build the loss as a class and call it as a function, which
option sets ("variants") to exercise, its float64 reference and its bounds, and which modes and input
convention it takes. The generic tests feed logits: for a loss that takes probabilities (MCC),
:meth:`LossInfo.build`, :meth:`LossInfo.call` and :meth:`LossInfo.expected` apply the sigmoid first,
while the stability tests hand the loss itself (:meth:`LossInfo.native`) the checker's rounded
probabilities (``input="probabilities"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch

import stableloss
from stableloss.hybrid import DEFAULT_BOUNDARY, DEFAULT_BOUNDARY_OPTIONS, default_weights
from stableloss.testing import REFERENCE_FLOOR
from stableloss.testing._conventions import convert_input
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
    modes: Tuple[str, ...] = MODES  # the modes whose targets the loss takes
    input: str = "logits"  # what cls, fn and reference take: "logits" or "probabilities"
    takes_ignore_index: bool = True
    minimum_at_perfect: Callable[[Dict], bool] = lambda options: True  # False: label smoothing moves the minimum

    def reference_floor(self, options: Dict):
        """The stability checks' error floor: 1e-4 times the loss's natural magnitude."""
        if self.scale is None:
            return REFERENCE_FLOOR
        return lambda example: REFERENCE_FLOOR * self.scale(example.shape, options)

    def native(self, mode: str, **options):
        """The loss module as a user builds it; it takes :attr:`input`."""
        return self.cls(mode, **options)

    def build(self, mode: str, **options):
        """The loss module as a function of logits (probabilities through the sigmoid first)."""
        loss = self.native(mode, **options)
        return loss if self.input == "logits" else FromLogits(loss, mode, self.input)

    def call(self, logits, target, mode: str, **options):
        """The functional loss on logits (probabilities through the sigmoid first)."""
        return self.fn(convert_input(logits, mode, self.input), target, mode=mode, **options)

    def expected(self, logits, target, mode: str, **options):
        """The float64 reference on logits; for a probability loss, on the probabilities :meth:`call` passes."""
        return self.reference(convert_input(logits, mode, self.input), target, mode=mode, **options)


class FromLogits(torch.nn.Module):
    """A loss that takes probabilities, fed logits: ``loss(sigmoid(x), t)`` (softmax in multiclass mode)."""

    def __init__(self, loss, mode: str, input: str):
        super().__init__()
        self.loss, self.mode, self.input = loss, mode, input

    def forward(self, logits, target):
        return self.loss(convert_input(logits, self.mode, self.input), target)


def _without_mode(cls):
    """A mode-less loss class (soft BCE, soft CE, MCC) built as ``(mode, **options)``: the mode picks the targets only."""
    return lambda mode, **options: cls(**options)


def _function_without_mode(fn):
    return lambda input, target, *, mode, **options: fn(input, target, **options)


def _reference_without_mode(fn):
    return lambda input, target, *, mode, **options: fn(input, target, **options)


def _not_smoothed(options):
    return not options.get("smooth_factor")


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
             bounds=(0.0, None), overlap=False),
    LossInfo("dou", stableloss.BoundaryDoULoss, stableloss.boundary_dou_loss, reference.boundary_dou_reference,
             variants=[{}, {"alpha_max": 0.5}], overlap=False, perfect_atol=1e-4),  # smooth = 1e-5 over >= 0.2 I
    LossInfo("hybrid", stableloss.BoundaryAwareLoss, stableloss.boundary_aware_loss, _hybrid_reference,
             bounds=(None, None), overlap=False, perfect_value=None,
             scale=lambda shape, options: max(1.0, default_weights(DEFAULT_BOUNDARY)[2] * _map_magnitude(
                 shape, DEFAULT_BOUNDARY_OPTIONS[DEFAULT_BOUNDARY]))),
    # The hinge of binary and multilabel Lovasz grows with the logits (1 + |x|): no upper bound.
    LossInfo("lovasz", stableloss.LovaszLoss, stableloss.lovasz_loss, reference.lovasz_reference,
             variants=[{}, {"per_image": True}], bounds=(0.0, None), overlap=False),
    LossInfo("softbce", _without_mode(stableloss.SoftBCEWithLogitsLoss),
             _function_without_mode(stableloss.soft_bce_with_logits_loss), _reference_without_mode(reference.soft_bce_reference),
             variants=[{}, {"smooth_factor": 0.1}, {"pos_weight": [3.0], "weight": [0.5], "reduction": "sum"}],
             bounds=(0.0, None), overlap=False, modes=("binary", "multilabel"), minimum_at_perfect=_not_smoothed),
    LossInfo("softce", _without_mode(stableloss.SoftCrossEntropyLoss),
             _function_without_mode(stableloss.soft_cross_entropy_loss),
             _reference_without_mode(reference.soft_cross_entropy_reference),
             variants=[{}, {"smooth_factor": 0.1}, {"reduction": "sum"}],
             bounds=(0.0, None), overlap=False, modes=("multiclass",), minimum_at_perfect=_not_smoothed),
    # MCC takes probabilities; the loss of a perfect prediction is 1/2 on an empty (or full) mask.
    LossInfo("mcc", _without_mode(stableloss.MCCLoss), _function_without_mode(stableloss.mcc_loss),
             _reference_without_mode(reference.mcc_reference), variants=[{}, {"eps": 1e-3}], bounds=(0.0, 2.0),
             overlap=False, perfect_value=None, modes=("binary", "multilabel"), input="probabilities",
             takes_ignore_index=False),
]

BY_NAME = {info.name: info for info in LOSSES}


def upper_bound(info: LossInfo, options: Dict) -> Optional[float]:
    """The loss's upper bound for these options (None: unbounded above)."""
    if info.name == "dice":
        return None if options.get("log_loss") else 1.0
    return info.bounds[1]


def cases(mode: Optional[str] = None):
    """(info, variant) pairs for parametrisation, with readable ids; with ``mode``, of the losses that take it."""
    out, ids = [], []
    for info in LOSSES:
        if mode is not None and mode not in info.modes:
            continue
        for index, variant in enumerate(info.variants):
            out.append((info, variant))
            ids.append(f"{info.name}-{index}")
    return out, ids


def mode_cases(modes: Tuple[str, ...] = MODES):
    """(info, variant, mode) triples of the modes each loss takes, with ids such as ``dice-0-binary``."""
    out, ids = [], []
    for (info, variant), name in zip(*cases(), strict=True):
        for mode in modes:
            if mode in info.modes:
                out.append((info, variant, mode))
                ids.append(f"{name}-{mode}")
    return out, ids
