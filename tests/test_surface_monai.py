"""Surface metrics agree with MONAI's on random masks, 2D and 3D, with spacing; empty masks as documented."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import stableloss
from stableloss.distance import extent_diagonal

metrics = pytest.importorskip("monai.metrics")

RTOL, ATOL = 1e-5, 1e-4


@st.composite
def mask_pairs(draw):
    """Prediction and target (N, C, *S) float masks, 2D or 3D, each channel with some foreground."""
    ndim = draw(st.integers(2, 3))
    spatial = tuple(draw(st.integers(2, 20 if ndim == 2 else 9)) for _ in range(ndim))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + spatial
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pair = []
    for _ in range(2):
        noise = rng.random(shape)
        if draw(st.booleans()):  # blobs: thresholded smooth noise
            noise = _smooth(noise, ndim)
        pair.append(torch.from_numpy(noise < draw(st.floats(0.05, 0.95))).float())
    spacing = tuple(draw(st.floats(0.3, 3.0)) for _ in range(ndim))
    return pair[0], pair[1], spacing


def _smooth(noise, ndim):
    """A 3-wide box average along each spatial axis (periodic), twice."""
    for _ in range(2):
        for axis in range(2, 2 + ndim):
            noise = (np.roll(noise, -1, axis) + noise + np.roll(noise, 1, axis)) / 3
    return noise


def _nonempty(mask):
    return bool(mask.flatten(2).any(dim=2).all())


def _monai(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks
        return fn(*args, include_background=True, **kwargs)


@given(mask_pairs(), st.sampled_from([95.0, 100.0, 50.0, 99.0]))
def test_hausdorff_distance_matches_monai(pair, percentile):
    pred, target, spacing = pair
    assume(_nonempty(pred) and _nonempty(target))
    want = _monai(metrics.compute_hausdorff_distance, pred, target, spacing=spacing,
                  percentile=None if percentile == 100.0 else percentile)
    got = stableloss.hausdorff_distance(pred, target, percentile=percentile, spacing=spacing)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


@given(mask_pairs(), st.booleans())
def test_average_surface_distance_matches_monai(pair, symmetric):
    pred, target, spacing = pair
    assume(_nonempty(pred) and _nonempty(target))
    want = _monai(metrics.compute_average_surface_distance, pred, target, spacing=spacing, symmetric=symmetric)
    got = stableloss.average_surface_distance(pred, target, spacing=spacing, symmetric=symmetric)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


@given(mask_pairs(), st.floats(0.0, 6.0))
def test_normalized_surface_dice_matches_monai(pair, tolerance):
    pred, target, spacing = pair
    assume(_nonempty(pred) or _nonempty(target))
    want = _monai(metrics.compute_surface_dice, pred, target, [tolerance] * pred.shape[1], spacing=spacing)
    got = stableloss.normalized_surface_dice(pred, target, tolerance, spacing=spacing)
    both_empty = ~(pred.flatten(2).any(2) | target.flatten(2).any(2))
    torch.testing.assert_close(got[~both_empty], want[~both_empty], rtol=0, atol=1e-6)


@given(mask_pairs())
def test_surface_metrics_equal_the_single_metrics(pair):
    pred, target, spacing = pair
    out = stableloss.surface_metrics(pred, target, spacing=spacing, tolerance=1.0, directed=True)
    torch.testing.assert_close(out["hausdorff"], stableloss.hausdorff_distance(pred, target, spacing=spacing))
    torch.testing.assert_close(out["assd"], stableloss.average_surface_distance(pred, target, spacing=spacing))
    torch.testing.assert_close(out["asd"], stableloss.average_surface_distance(pred, target, spacing=spacing,
                                                                               symmetric=False))
    torch.testing.assert_close(out["nsd"], stableloss.normalized_surface_dice(pred, target, 1.0, spacing=spacing))


def test_per_channel_tolerance():
    target = torch.zeros(1, 2, 10, 10)
    target[:, :, 3:7, 3:7] = 1
    pred = torch.roll(target, 2, dims=3)
    got = stableloss.normalized_surface_dice(pred, target, [1.0, 2.0])
    assert got[0, 0] < 1 and got[0, 1] == 1
    want = _monai(metrics.compute_surface_dice, pred, target, [1.0, 2.0])
    torch.testing.assert_close(got, want)


def _empty_cases():
    target = torch.zeros(1, 1, 8, 10)
    target[..., 2:5, 3:7] = 1
    empty = torch.zeros_like(target)
    return {"pred empty": (empty, target), "target empty": (target, empty), "both empty": (empty, empty)}


@pytest.mark.parametrize("case", ["pred empty", "target empty", "both empty"])
def test_empty_masks_bound_policy(case):
    pred, target = _empty_cases()[case]
    out = stableloss.surface_metrics(pred, target, spacing=(2.0, 0.5), tolerance=1.0)
    bound = extent_diagonal((8, 10), (2.0, 0.5))
    if case == "both empty":
        assert out["hausdorff"].item() == 0 and out["assd"].item() == 0 and out["nsd"].item() == 1
    else:
        assert out["hausdorff"].item() == pytest.approx(bound) and out["assd"].item() == pytest.approx(bound)
        assert out["nsd"].item() == 0
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("case", ["pred empty", "target empty", "both empty"])
def test_empty_masks_nan_policy_is_monai_convention(case):
    pred, target = _empty_cases()[case]
    out = stableloss.surface_metrics(pred, target, tolerance=1.0, percentile=100.0, empty="nan")
    hd = _monai(metrics.compute_hausdorff_distance, pred, target)
    assd = _monai(metrics.compute_average_surface_distance, pred, target, symmetric=True)
    nsd = _monai(metrics.compute_surface_dice, pred, target, [1.0])
    torch.testing.assert_close(out["hausdorff"], hd, equal_nan=True)
    torch.testing.assert_close(out["assd"], assd, equal_nan=True)
    torch.testing.assert_close(out["nsd"], nsd, equal_nan=True)
    hd95 = stableloss.hausdorff_distance(pred, target, empty="nan").item()
    assert math.isnan(hd95) if case == "both empty" else hd95 == math.inf  # MONAI's HD95 is NaN here (inf - inf)


def test_metric_of_a_mask_with_itself_is_perfect():
    mask = torch.zeros(2, 1, 7, 8, 9)
    mask[0, :, 1:5, 2:6, 3:8] = 1
    mask[1, :, 0, 0, 0] = 1
    out = stableloss.surface_metrics(mask, mask, tolerance=0.0)
    assert torch.equal(out["hausdorff"], torch.zeros(2, 1)) and torch.equal(out["nsd"], torch.ones(2, 1))


def test_surface_mask_is_scipy_erosion_edge():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for shape in [(11,), (9, 12), (5, 6, 7), (2, 9), (1, 4, 5)]:
        mask = rng.random((3, 1) + shape) < 0.6
        want = np.stack([m ^ ndimage.binary_erosion(m) for m in mask[:, 0]])[:, None]
        from stableloss.surface import surface_mask
        np.testing.assert_array_equal(surface_mask(torch.from_numpy(mask)).numpy(), want)


def test_empty_batch_and_zero_sized_inputs_do_not_crash():
    for shape in [(0, 1, 4, 4), (2, 0, 4, 4), (2, 1, 0, 4)]:
        out = stableloss.surface_metrics(torch.zeros(shape), torch.zeros(shape), tolerance=1.0)
        assert all(value.shape == shape[:2] for value in out.values())
