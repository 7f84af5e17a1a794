"""Validation metrics on hard masks: Dice per volume in 3D and global over all voxels of all volumes;
HD95 and ASSD per volume in 3D, in mm.

Surface distances (:func:`stableloss.surface_metrics`, MONAI's definitions) use each volume's voxel
size. A volume without surface in the prediction or the target has no distance to measure; the
convention (stableloss's ``empty="bound"``): both empty (a correct "nothing here") scores 0 mm; one
empty (e.g. the model predicts nothing where there is liver) scores ``B``, the diagonal of the
volume's extent in mm (larger than any distance inside it), so such a volume is never averaged away.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from stableloss import surface_metrics


def dice_score(pred: np.ndarray, true: np.ndarray) -> float:
    """``2 |P & T| / (|P| + |T|)`` for boolean masks of equal shape; 1.0 when both are empty.

    >>> dice_score(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
    0.6666666666666666
    """
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape; received {pred.shape} and {true.shape}")
    pred, true = pred.astype(bool), true.astype(bool)
    total = int(pred.sum()) + int(true.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & true).sum()) / total


class DiceTracker:
    """Accumulates per-volume Dice and the global counts over foreground classes.

    For a binary target pass ``classes=(1,)``; for multiclass LiTS labels ``classes=(1, 2)``
    (per-volume Dice is the mean over classes; global Dice pools each class's counts).
    """

    def __init__(self, classes: Sequence[int] = (1,)) -> None:
        self.classes = tuple(classes)
        self.per_volume: dict[str, float] = {}
        self._inter = np.zeros(len(self.classes))
        self._total = np.zeros(len(self.classes))

    def add(self, case_id: str, pred: np.ndarray, true: np.ndarray) -> float:
        """Score one volume (integer label arrays); returns its Dice."""
        scores = []
        for k, c in enumerate(self.classes):
            p, t = pred == c, true == c
            self._inter[k] += int((p & t).sum())
            self._total[k] += int(p.sum()) + int(t.sum())
            scores.append(dice_score(p, t))
        self.per_volume[case_id] = float(np.mean(scores))
        return self.per_volume[case_id]

    def summary(self) -> dict[str, float]:
        """``{"dice_per_volume": mean over volumes, "dice_global": pooled Dice}``."""
        pooled = np.where(self._total > 0, 2 * self._inter / np.maximum(self._total, 1), 1.0)
        return {"dice_per_volume": float(np.mean(list(self.per_volume.values()))) if self.per_volume else float("nan"),
                "dice_global": float(np.mean(pooled))}


def surface_distances(pred: np.ndarray, true: np.ndarray, classes: Sequence[int],
                      spacing: Sequence[float]) -> tuple[float, float]:
    """HD95 and ASSD (mm) of one ``(Z, H, W)`` label volume in 3D, each the mean over ``classes``.

    Empty masks: see the module docstring (0 when both are empty, the extent diagonal when one is).

    >>> true = np.zeros((3, 8, 8), np.uint8); true[1, 2:6, 2:6] = 1  # a 4x4 square: 16 surface voxels in 3D
    >>> pred = np.roll(true, 1, axis=2)  # one column to the right: 4 voxels per side are 0.5 mm off
    >>> surface_distances(pred, true, (1,), (2.5, 0.5, 0.5))  # ASSD (4 + 4) x 0.5 / (16 + 16)
    (0.5, 0.125)
    """
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape; received {pred.shape} and {true.shape}")
    p = torch.from_numpy(np.stack([pred == c for c in classes]))[None]
    t = torch.from_numpy(np.stack([true == c for c in classes]))[None]
    out = surface_metrics(p, t, percentile=95.0, spacing=tuple(float(v) for v in spacing))
    return float(out["hausdorff"].mean()), float(out["assd"].mean())


class ValidationTracker(DiceTracker):
    """:class:`DiceTracker` plus each volume's HD95 and ASSD in mm (:func:`surface_distances`)."""

    def __init__(self, classes: Sequence[int] = (1,)) -> None:
        super().__init__(classes)
        self.hd95: dict[str, float] = {}
        self.assd: dict[str, float] = {}

    def add(self, case_id: str, pred: np.ndarray, true: np.ndarray, *, spacing: Sequence[float]) -> float:  # type: ignore[override]
        """Score one volume with its ``(Z, Y, X)`` voxel size in mm; returns its Dice."""
        dice = super().add(case_id, pred, true)
        self.hd95[case_id], self.assd[case_id] = surface_distances(pred, true, self.classes, spacing)
        return dice

    def summary(self) -> dict[str, float]:
        """:meth:`DiceTracker.summary` plus ``"hd95_mm"`` and ``"assd_mm"``, means over volumes."""
        return {**super().summary(), "hd95_mm": _mean(self.hd95), "assd_mm": _mean(self.assd)}


def _mean(per_volume: dict[str, float]) -> float:
    return float(np.mean(list(per_volume.values()))) if per_volume else float("nan")
