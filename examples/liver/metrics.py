"""Validation Dice on hard masks: per volume in 3D, and global over all voxels of all volumes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
