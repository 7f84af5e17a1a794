"""Liver example: folds without patient overlap, Dice against hand computation."""

import numpy as np
import pytest

from liver.folds import patient_folds  # noqa: E402
from liver.metrics import DiceTracker, dice_score  # noqa: E402


def test_folds_partition_patients():
    ids = [f"lits-{i}" for i in range(11)]
    folds = patient_folds(ids, 5, seed=3)
    assert len(folds) == 5
    seen = []
    for train, val in folds:
        assert not set(train) & set(val)
        assert sorted(train + val) == sorted(ids)
        seen += val
    assert sorted(seen) == sorted(ids)  # each patient validated exactly once
    assert folds == patient_folds(ids, 5, seed=3)


@pytest.mark.parametrize("folds", [1, 12, 2.0])
def test_folds_bad_count(folds):
    with pytest.raises(ValueError, match=rf"folds must be an int in \[2, number of cases = 11\]; received {folds!r}"):
        patient_folds([str(i) for i in range(11)], folds)


def test_dice_matches_hand_computation():
    pred = np.zeros((2, 3, 3), np.uint8)
    true = np.zeros((2, 3, 3), np.uint8)
    pred[0, 0, :3] = 1  # 3 voxels
    true[0, 0, 1:3] = 1
    true[1, 2, 1:3] = 1  # 4 voxels, 2 shared with pred
    assert dice_score(pred > 0, true > 0) == pytest.approx(2 * 2 / (3 + 4))
    assert dice_score(np.zeros(4, bool), np.zeros(4, bool)) == 1.0
    with pytest.raises(ValueError, match=r"same shape; received \(4,\) and \(5,\)"):
        dice_score(np.zeros(4, bool), np.zeros(5, bool))


def test_tracker_per_volume_and_global():
    tracker = DiceTracker((1,))
    a_pred, a_true = np.array([1, 1, 1, 0, 0]), np.array([0, 1, 1, 1, 1])  # inter 2, sizes 3 + 4
    b_pred, b_true = np.array([1, 0]), np.array([0, 1])  # inter 0, sizes 1 + 1
    assert tracker.add("a", a_pred, a_true) == pytest.approx(4 / 7)
    assert tracker.add("b", b_pred, b_true) == 0.0
    s = tracker.summary()
    assert s["dice_per_volume"] == pytest.approx((4 / 7 + 0) / 2)
    assert s["dice_global"] == pytest.approx(2 * 2 / (7 + 2))


def test_tracker_multiclass_averages_classes():
    tracker = DiceTracker((1, 2))
    pred, true = np.array([1, 1, 2, 0]), np.array([1, 2, 2, 0])
    # class 1: inter 1, sizes 2 + 1 -> 2/3; class 2: inter 1, sizes 1 + 2 -> 2/3
    assert tracker.add("x", pred, true) == pytest.approx(2 / 3)
