"""The ``--loss`` choices, each as a :class:`stableloss.CombinedLoss` so that its terms are visible.

``boundary`` is the experiment's hybrid, 0.7 Dice + 0.3 Focal (gamma 2), built from stableloss;
``smp-hybrid`` is the same recipe from segmentation-models-pytorch, the experiment's own code and
the baseline to compare against. Single losses are wrapped as one-term combinations so the
trainer's non-finite guard can always name the term.
"""

from __future__ import annotations

import inspect

import stableloss
from stableloss import BoundaryAwareLoss, CombinedLoss

LOSSES = ("dice", "tversky", "focal", "boundary", "logcosh", "smp-hybrid")


def _make(cls, mode: str, global_batch: bool, **kwargs):
    """Instantiate ``cls(mode, ...)``, passing ``global_batch`` where the class supports it."""
    if global_batch and "global_batch" in inspect.signature(cls).parameters:
        kwargs["global_batch"] = True
    return cls(mode, **kwargs)


def build_loss(name: str, mode: str, *, global_batch: bool = False) -> CombinedLoss:
    """The loss ``name`` for ``mode`` ("binary" or "multiclass").

    Args:
        name: One of :data:`LOSSES`.
        mode: Loss mode.
        global_batch: Under DDP, compute Dice-family statistics over the global batch (passed to
            the stableloss classes that accept it).
    """
    if name == "smp-hybrid":
        import segmentation_models_pytorch as smp

        return CombinedLoss({"dice": smp.losses.DiceLoss(mode), "focal": smp.losses.FocalLoss(mode, gamma=2.0)},
                            weights={"dice": 0.7, "focal": 0.3})
    if name == "boundary":
        dice = _make(stableloss.DiceLoss, mode, global_batch)
        return BoundaryAwareLoss(mode, dice=dice, focal=stableloss.FocalLoss(mode, gamma=2.0))
    if name == "dice":
        return CombinedLoss({"dice": _make(stableloss.DiceLoss, mode, global_batch)})
    if name == "tversky":  # the experiment's V3.2 recall-leaning setting: false negatives weigh more
        return CombinedLoss({"tversky": _make(stableloss.TverskyLoss, mode, global_batch, alpha=0.3, beta=0.7)})
    if name == "focal":
        return CombinedLoss({"focal": stableloss.FocalLoss(mode, gamma=2.0)})
    if name == "logcosh":
        return CombinedLoss({"logcosh": _make(stableloss.LogCoshDiceLoss, mode, global_batch)})
    raise ValueError(f"loss must be one of {LOSSES}; received {name!r}")
