"""The ``--loss`` choices, in one table: :data:`RECIPES` maps each name to a description and a builder.

Every recipe is a :class:`stableloss.CombinedLoss`, so the trainer's non-finite guard can name the
term that went wrong; a recipe with a ``step()`` advances its weight schedule once per epoch, and a
recipe with a term that takes ``distance_map=`` (:func:`uses_distance_maps`) gets the target's signed
distance maps from the slice cache (in mm, from each volume's pixel size).

Where the weights come from (change them here, in :data:`RECIPES`):

- ``seed``: the liver experiment's recipe, 0.7 Dice + 0.3 Focal (gamma 2), built from stableloss;
  ``smp-hybrid`` is the same recipe from segmentation-models-pytorch (the experiment's own code).
- ``boundary``: :class:`stableloss.BoundaryAwareLoss` with the library's defaults (boundary term,
  weights, schedule); the trainer only passes the pixel size and the ignore settings. Since the
  three-seed comparison (docs/liver-example.md) the library's default is 0.5 Dice + 0.5 boundary
  DoU, the same loss as ``boundary-dou``; before, it was 0.7 Dice + 0.3 Focal + 100 x Kervadec's
  boundary loss on normalised maps, the ``boundary`` row of that table, which
  ``BoundaryAwareLoss(mode, boundary="boundary")`` still gives.
- ``boundary-loss``: Kervadec et al. (MIDL 2019 / MedIA 2021): a region term (Dice here) and the
  boundary loss ``mean(p * phi)`` on raw distances, with their rebalancing schedule
  (:class:`stableloss.RebalanceSchedule`: region 1 and boundary 0.01 at the start, 0.01 moved from
  region to boundary each epoch, region floored at 0.1). Their distances are in pixels; the cache's
  maps are in mm, so the boundary weight is 1 / pixel size (mm), which turns them back into pixels.
- ``hausdorff``: Karimi and Salcudean (IEEE TMI 2020) add a Dice term to their Hausdorff-DT loss
  (alpha 2) and weight the two so that they contribute equally. Here the weights are constant (they
  cannot keep the terms equal as the errors shrink), the distances normalised by the slice's extent
  diagonal (the term's scale then depends neither on the image size nor on the pixel size) and the
  Hausdorff weight is :data:`HAUSDORFF_WEIGHT` (how it was chosen: see there).
- ``boundary-dou``: Sun et al. (MICCAI 2023) train with their boundary DoU loss alone; here it is
  averaged with Dice (0.5 each: both are ratios in [0, 1]).
- ``nnunet``: nnU-Net's Dice + cross-entropy (:func:`stableloss.monai.nnunet_dice_ce`: batch Dice
  without background, smooth 1e-5, weights 1 and 1). For the binary target, whose network has one
  output channel, the same loss in sigmoid form: a two-class softmax with the background logit 0 is
  ``sigmoid(x)``, its cross-entropy is the binary one and its foreground Dice is the sigmoid Dice, so
  ``DiceCELoss(sigmoid=True, batch=True, smooth 1e-5)`` is nnU-Net's loss for that network (deep
  supervision is not used: the example's U-Net has one output).
- ``monai-dicece``: what a MONAI user writes, ``DiceCELoss(sigmoid=True)`` for the binary target and
  ``DiceCELoss(softmax=True, to_onehot_y=True)`` for the multiclass one, from :mod:`stableloss.monai`
  (same numbers as MONAI's in float32, finite in float16).

Short runs leave a schedule little room: with the default 8 epochs, Kervadec's boundary weight
goes from 0.01 to 0.08 (of 1, in pixels) and the region weight from 1 to 0.93; the region weight
reaches its 0.1 floor after 90 epochs.

Under DDP (``global_batch=True``) the Dice-family terms compute their statistics over the global
batch. Boundary and Hausdorff-DT terms are pixel means, which DDP's gradient averaging already makes
global (equal batches per process); the boundary DoU term and the :mod:`stableloss.monai` recipes
(``nnunet``, ``monai-dicece``, as in MONAI and nnU-Net) have no ``global_batch`` and use each
process's batch.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from stableloss import (
    BoundaryAwareLoss,
    BoundaryDoULoss,
    BoundaryLoss,
    CombinedLoss,
    DiceLoss,
    FocalLoss,
    HausdorffDTLoss,
    LogCoshDiceLoss,
    RebalanceSchedule,
    TverskyLoss,
)
from stableloss.hybrid import BOUNDARY_TERMS, DEFAULT_BOUNDARY, default_weights
from stableloss.monai import DiceCELoss as MonaiDiceCELoss
from stableloss.monai import nnunet_dice_ce

HAUSDORFF_WEIGHT = 10.0
"""Weight of the normalised Hausdorff-DT term next to Dice (weight 1) in ``--loss hausdorff``.

Karimi and Salcudean weight the two terms so that they contribute equally; a constant weight cannot
keep them equal as the errors shrink. Measured on the default phantom (96 training slices of epoch 1,
batches of 16, the network in eval mode), the Dice term over this Hausdorff term was 14 for an
untrained network and 730 for one trained 8 epochs with ``--loss dice``: 10 balances the two at
the start, and the Dice term dominates as the errors shrink."""


@dataclass(frozen=True)
class LossSettings:
    """What a recipe may depend on besides its name.

    Args:
        mode: ``"binary"`` or ``"multiclass"``.
        global_batch: Under DDP, Dice-family statistics over the global batch.
        spacing: In-plane pixel size ``(row, column)`` in mm of the training slices (the distance
            terms' own maps and their normalisation use it), or None for pixel units.
        ignore_index: Label value left out of every term, or None.
        check_maps: Let the distance terms check that the loader's maps were made with ``spacing``
            (``validate_args``). False when the training volumes' pixel sizes differ: the cached maps
            then carry each volume's own spacing, which one loss spacing cannot match.
    """

    mode: str = "binary"
    global_batch: bool = False
    spacing: tuple[float, float] | None = None
    ignore_index: int | None = None
    check_maps: bool = True


def _make(cls, s: LossSettings, **kwargs: Any):
    """``cls(mode, **kwargs)`` plus the settings ``cls`` takes: ``global_batch``, ``spacing``, ``ignore_index``."""
    takes = inspect.signature(cls).parameters
    if s.global_batch and "global_batch" in takes:
        kwargs["global_batch"] = True
    if s.spacing is not None and "spacing" in takes:
        kwargs["spacing"] = s.spacing
    if s.ignore_index is not None and "ignore_index" in takes:
        kwargs["ignore_index"] = s.ignore_index
    if not s.check_maps and "distance_map" in inspect.signature(cls.forward).parameters:
        kwargs["validate_args"] = False
    return cls(s.mode, **kwargs)


def _dice(s: LossSettings) -> DiceLoss:
    return _make(DiceLoss, s)


def _focal(s: LossSettings) -> FocalLoss:
    return _make(FocalLoss, s, gamma=2.0)


def _pixel_mm(s: LossSettings) -> float:
    """The pixel size in mm (geometric mean of the two axes); 1 without a spacing."""
    return 1.0 if s.spacing is None else math.sqrt(s.spacing[0] * s.spacing[1])


def _smp_hybrid(s: LossSettings) -> CombinedLoss:
    import segmentation_models_pytorch as smp

    return CombinedLoss({"dice": smp.losses.DiceLoss(s.mode), "focal": smp.losses.FocalLoss(s.mode, gamma=2.0)},
                        weights={"dice": 0.7, "focal": 0.3})


def _library_boundary_aware(s: LossSettings) -> BoundaryAwareLoss:
    """``BoundaryAwareLoss(mode)`` with the library's defaults; pixel size and ignore settings passed to
    the terms that take them."""
    term = BOUNDARY_TERMS[DEFAULT_BOUNDARY][0]
    takes = inspect.signature(term).parameters
    options: dict[str, Any] = {}
    if s.spacing is not None and "spacing" in takes:
        options["spacing"] = s.spacing
    if s.ignore_index is not None and "ignore_index" in takes:
        options["ignore_index"] = s.ignore_index
    if not s.check_maps and "distance_map" in inspect.signature(term.forward).parameters:
        options["validate_args"] = False
    if default_weights(DEFAULT_BOUNDARY)[1] > 0:  # the library's default has a Focal term
        options["focal"] = _focal(s)
    return BoundaryAwareLoss(s.mode, dice=_dice(s), **options)


def _kervadec(s: LossSettings) -> BoundaryAwareLoss:
    # focal_weight 0: no Focal term
    return BoundaryAwareLoss(s.mode, boundary=_make(BoundaryLoss, s), dice=_dice(s),
                             dice_weight=1.0, focal_weight=0.0, boundary_weight=1.0 / _pixel_mm(s),
                             schedule=RebalanceSchedule())


class MonaiTarget(torch.nn.Module):
    """A :mod:`stableloss.monai` loss fed the trainer's targets in MONAI's layout.

    The trainer's binary target is already ``(N, 1, H, W)``; its multiclass target ``(N, H, W)``
    class indices (smp's layout) becomes ``(N, 1, H, W)``.
    """

    def __init__(self, loss: torch.nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() == input.dim() - 1:
            target = target.unsqueeze(1)
        return self.loss(input, target)


def _monai_recipe(s: LossSettings, binary: Callable[[], torch.nn.Module],
                  multiclass: Callable[[], torch.nn.Module]) -> CombinedLoss:
    """A :mod:`stableloss.monai` loss as the one term of a recipe: ``binary()`` for the one-channel
    network, ``multiclass()`` for the softmax one."""
    if s.ignore_index is not None:
        raise ValueError(f"ignore_index: MONAI's DiceCELoss has none, so the nnunet and monai-dicece recipes take "
                         f"None; received {s.ignore_index!r}")
    return CombinedLoss({"dice_ce": MonaiTarget(binary() if s.mode == "binary" else multiclass())})


def _nnunet(s: LossSettings) -> CombinedLoss:
    # one output channel: nnU-Net's settings in sigmoid form, the background kept (it is the only channel)
    return _monai_recipe(s, lambda: nnunet_dice_ce(include_background=True, to_onehot_y=False, softmax=False,
                                                    sigmoid=True), nnunet_dice_ce)


def _monai_dice_ce(s: LossSettings) -> CombinedLoss:
    return _monai_recipe(s, lambda: MonaiDiceCELoss(sigmoid=True),
                         lambda: MonaiDiceCELoss(softmax=True, to_onehot_y=True))


@dataclass(frozen=True)
class Recipe:
    """One ``--loss`` choice: a one-line description and ``build(settings) -> CombinedLoss``."""

    description: str
    build: Callable[[LossSettings], CombinedLoss]


RECIPES: dict[str, Recipe] = {
    "dice": Recipe("Dice alone", lambda s: CombinedLoss({"dice": _dice(s)})),
    "tversky": Recipe("Tversky, alpha 0.3 on false positives, beta 0.7 on false negatives (the experiment's V3.2)",
                      lambda s: CombinedLoss({"tversky": _make(TverskyLoss, s, alpha=0.3, beta=0.7)})),
    "focal": Recipe("Focal alone, gamma 2", lambda s: CombinedLoss({"focal": _focal(s)})),
    "logcosh": Recipe("log-cosh Dice (the experiment's V5 fix)",
                      lambda s: CombinedLoss({"logcosh": _make(LogCoshDiceLoss, s)})),
    "seed": Recipe("the seed experiment's 0.7 Dice + 0.3 Focal (gamma 2), from stableloss",
                   lambda s: BoundaryAwareLoss(s.mode, boundary=None, dice=_dice(s), focal=_focal(s))),
    "boundary": Recipe("stableloss's boundary-aware hybrid: BoundaryAwareLoss with the library's default terms and weights",
                       _library_boundary_aware),
    "boundary-loss": Recipe("Kervadec et al.: Dice + boundary loss on raw pixel distances, rebalanced each epoch",
                            _kervadec),
    "hausdorff": Recipe(f"Karimi and Salcudean: Dice + {HAUSDORFF_WEIGHT:g} x Hausdorff-DT loss (alpha 2, normalised)",
                        lambda s: CombinedLoss({"dice": _dice(s), "hausdorff": _make(HausdorffDTLoss, s, alpha=2.0,
                                                                                      normalize=True)},
                                               weights={"dice": 1.0, "hausdorff": HAUSDORFF_WEIGHT})),
    "boundary-dou": Recipe("Sun et al.: 0.5 Dice + 0.5 boundary DoU loss",
                           lambda s: CombinedLoss({"dice": _dice(s), "dou": _make(BoundaryDoULoss, s)},
                                                  weights={"dice": 0.5, "dou": 0.5})),
    "nnunet": Recipe("nnU-Net's Dice + cross-entropy (batch Dice without background, smooth 1e-5), from stableloss.monai",
                     _nnunet),
    "monai-dicece": Recipe("MONAI's DiceCELoss as its users set it (sigmoid, or softmax with one-hot targets), "
                           "from stableloss.monai", _monai_dice_ce),
    "smp-hybrid": Recipe("the experiment's own 0.7 smp DiceLoss + 0.3 smp FocalLoss (gamma 2), for comparison",
                         _smp_hybrid),
}

LOSSES = tuple(RECIPES)


def build_loss(name: str, mode: str, *, global_batch: bool = False, spacing: tuple[float, float] | None = None,
               ignore_index: int | None = None, check_maps: bool = True) -> CombinedLoss:
    """The loss ``name`` for ``mode`` ("binary" or "multiclass"); see :data:`RECIPES` and :class:`LossSettings`."""
    if name not in RECIPES:
        raise ValueError(f"loss must be one of {LOSSES}; received {name!r}")
    return RECIPES[name].build(LossSettings(mode, global_batch, spacing, ignore_index, check_maps))


def uses_distance_maps(criterion: CombinedLoss) -> bool:
    """True when a term of ``criterion`` takes the target's distance maps (``distance_map=``)."""
    return any("distance_map" in inspect.signature(term.forward).parameters for term in criterion.losses.values())


def has_schedule(criterion: object) -> bool:
    """True when ``criterion`` has a per-epoch ``step()`` (a loss-weight schedule)."""
    return callable(getattr(criterion, "step", None))

