"""Liver example: folds without patient overlap, Dice, HD95 and ASSD against hand computation."""

import numpy as np
import pytest

from liver.folds import patient_folds  # noqa: E402
from liver.metrics import DiceTracker, ValidationTracker, dice_score, surface_distances  # noqa: E402


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


def _square(z):
    """A 4x4 square in slice ``z`` of a (4, 8, 8) volume: all 16 voxels are surface voxels in 3D."""
    mask = np.zeros((4, 8, 8), np.uint8)
    mask[z, 2:6, 2:6] = 1
    return mask


def test_surface_distances_use_the_voxel_size_of_each_axis():
    spacing = (2.5, 0.8, 0.5)  # (Z, Y, X) mm
    # one slice up: every surface voxel's nearest voxel of the other surface is straight below, 2.5 mm away
    assert surface_distances(_square(2), _square(1), (1,), spacing) == pytest.approx((2.5, 2.5))
    # one row down (0.8 mm): 4 of 16 voxels per side are 0.8 mm off, the others on the other surface
    hd, assd = surface_distances(np.roll(_square(1), 1, axis=1), _square(1), (1,), spacing)
    assert hd == pytest.approx(0.8) and assd == pytest.approx(8 * 0.8 / 32)


def test_surface_distances_of_empty_masks():
    spacing = (2.5, 0.8, 0.5)
    empty = np.zeros((4, 8, 8), np.uint8)
    diagonal = np.sqrt((4 * 2.5) ** 2 + (8 * 0.8) ** 2 + (8 * 0.5) ** 2)  # the volume's extent
    assert surface_distances(empty, _square(1), (1,), spacing) == pytest.approx((diagonal, diagonal))  # predicts nothing
    assert surface_distances(_square(1), empty, (1,), spacing) == pytest.approx((diagonal, diagonal))
    assert surface_distances(empty, empty, (1,), spacing) == (0.0, 0.0)  # correctly nothing


def test_surface_distances_average_the_classes():
    true, pred = _square(1), _square(1)  # class 1 right
    true[1, 2:6, 6:8] = 2  # class 2: a 4x2 block beside it, predicted one slice up (2.5 mm)
    pred[2, 2:6, 6:8] = 2
    assert surface_distances(pred, true, (1, 2), (2.5, 0.8, 0.5)) == pytest.approx(((0 + 2.5) / 2, (0 + 2.5) / 2))


def test_validation_tracker_means_over_volumes():
    tracker = ValidationTracker((1,))
    spacing = (2.5, 0.8, 0.5)
    assert tracker.add("a", _square(2), _square(1), spacing=spacing) == 0.0
    assert tracker.add("b", _square(1), _square(1), spacing=spacing) == 1.0
    s = tracker.summary()
    assert s["dice_per_volume"] == 0.5 and s["hd95_mm"] == pytest.approx(1.25) and s["assd_mm"] == pytest.approx(1.25)
    with pytest.raises(ValueError, match=r"same shape; received \(4, 8, 8\) and \(4, 8, 7\)"):
        surface_distances(_square(1), _square(1)[..., :7], (1,), spacing)
