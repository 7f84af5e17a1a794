"""Surface metrics agree with MONAI's on random masks, 2D and 3D, with spacing; empty masks as documented."""

import contextlib
import math
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import stableloss
import stableloss.surface as surface_module
from stableloss import _surface_stats
from stableloss.distance import extent_diagonal

metrics = pytest.importorskip("monai.metrics")

RTOL, ATOL = 1e-5, 1e-4
# The three ways to the same statistics: CPU crops with SciPy's or the torch transform, and the batched
# torch transform of the whole batch (what CUDA tensors and traced calls take; forced here on the CPU).
ROUTES = ("scipy", "torch", "batched")


@contextlib.contextmanager
def route(name):
    """The keyword arguments that select ``name``, with the batched route patched in for the CPU."""
    if name != "batched":
        yield {"backend": name}
        return
    def batched(pred, target, spacing, q, tau, backend):
        return _surface_stats.batched_stats(pred, target, spacing, q, tau)
    with mock.patch.object(surface_module, "cropped_stats", batched):
        yield {}


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
@pytest.mark.parametrize("route_name", ROUTES)
def test_hausdorff_distance_matches_monai(route_name, pair, percentile):
    pred, target, spacing = pair
    assume(_nonempty(pred) and _nonempty(target))
    want = _monai(metrics.compute_hausdorff_distance, pred, target, spacing=spacing,
                  percentile=None if percentile == 100.0 else percentile)
    with route(route_name) as kw:
        got = stableloss.hausdorff_distance(pred, target, percentile=percentile, spacing=spacing, **kw)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


@given(mask_pairs(), st.booleans())
@pytest.mark.parametrize("route_name", ROUTES)
def test_average_surface_distance_matches_monai(route_name, pair, symmetric):
    pred, target, spacing = pair
    assume(_nonempty(pred) and _nonempty(target))
    want = _monai(metrics.compute_average_surface_distance, pred, target, spacing=spacing, symmetric=symmetric)
    with route(route_name) as kw:
        got = stableloss.average_surface_distance(pred, target, spacing=spacing, symmetric=symmetric, **kw)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


@given(mask_pairs(), st.floats(0.0, 6.0))
@pytest.mark.parametrize("route_name", ROUTES)
def test_normalized_surface_dice_matches_monai(route_name, pair, tolerance):
    pred, target, spacing = pair
    assume(_nonempty(pred) or _nonempty(target))
    want = _monai(metrics.compute_surface_dice, pred, target, [tolerance] * pred.shape[1], spacing=spacing)
    with route(route_name) as kw:
        got = stableloss.normalized_surface_dice(pred, target, tolerance, spacing=spacing, **kw)
    both_empty = ~(pred.flatten(2).any(2) | target.flatten(2).any(2))
    torch.testing.assert_close(got[~both_empty], want[~both_empty], rtol=0, atol=1e-6)


@given(mask_pairs())
@pytest.mark.parametrize("route_name", ROUTES)
def test_surface_metrics_equal_the_single_metrics(route_name, pair):
    pred, target, spacing = pair
    with route(route_name) as kw:
        out = stableloss.surface_metrics(pred, target, spacing=spacing, tolerance=1.0, directed=True, **kw)
        hd = stableloss.hausdorff_distance(pred, target, spacing=spacing, **kw)
        assd = stableloss.average_surface_distance(pred, target, spacing=spacing, **kw)
        asd = stableloss.average_surface_distance(pred, target, spacing=spacing, symmetric=False, **kw)
        nsd = stableloss.normalized_surface_dice(pred, target, 1.0, spacing=spacing, **kw)
    torch.testing.assert_close(out["hausdorff"], hd)
    torch.testing.assert_close(out["assd"], assd)
    torch.testing.assert_close(out["asd"], asd)
    torch.testing.assert_close(out["nsd"], nsd)


@pytest.mark.parametrize("route_name", ROUTES)
def test_per_channel_tolerance(route_name):
    target = torch.zeros(2, 2, 10, 10)
    target[:, :, 3:7, 3:7] = 1
    pred = torch.roll(target, 2, dims=3)
    pred[1] = torch.roll(target[1], 1, dims=2)  # the second image: one pixel off, within both tolerances
    with route(route_name) as kw:
        got = stableloss.normalized_surface_dice(pred, target, [1.0, 2.0], **kw)
    assert got[0, 0] < 1 and got[0, 1] == 1 and bool((got[1] == 1).all())
    want = _monai(metrics.compute_surface_dice, pred, target, [1.0, 2.0])
    torch.testing.assert_close(got, want)


def _empty_cases():
    target = torch.zeros(1, 1, 8, 10)
    target[..., 2:5, 3:7] = 1
    empty = torch.zeros_like(target)
    return {"pred empty": (empty, target), "target empty": (target, empty), "both empty": (empty, empty)}


@pytest.mark.parametrize("route_name", ROUTES)
@pytest.mark.parametrize("case", ["pred empty", "target empty", "both empty"])
def test_empty_masks_bound_policy(case, route_name):
    pred, target = _empty_cases()[case]
    with route(route_name) as kw:
        out = stableloss.surface_metrics(pred, target, spacing=(2.0, 0.5), tolerance=1.0, **kw)
    bound = extent_diagonal((8, 10), (2.0, 0.5))
    if case == "both empty":
        assert out["hausdorff"].item() == 0 and out["assd"].item() == 0 and out["nsd"].item() == 1
    else:
        assert out["hausdorff"].item() == pytest.approx(bound) and out["assd"].item() == pytest.approx(bound)
        assert out["nsd"].item() == 0
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("route_name", ROUTES)
@pytest.mark.parametrize("case", ["pred empty", "target empty", "both empty"])
def test_empty_masks_nan_policy_is_monai_convention(case, route_name):
    pred, target = _empty_cases()[case]
    with route(route_name) as kw:
        out = stableloss.surface_metrics(pred, target, tolerance=1.0, percentile=100.0, empty="nan", **kw)
    hd = _monai(metrics.compute_hausdorff_distance, pred, target)
    assd = _monai(metrics.compute_average_surface_distance, pred, target, symmetric=True)
    nsd = _monai(metrics.compute_surface_dice, pred, target, [1.0])
    torch.testing.assert_close(out["hausdorff"], hd, equal_nan=True)
    torch.testing.assert_close(out["assd"], assd, equal_nan=True)
    torch.testing.assert_close(out["nsd"], nsd, equal_nan=True)
    hd95 = stableloss.hausdorff_distance(pred, target, empty="nan").item()
    assert math.isnan(hd95) if case == "both empty" else hd95 == math.inf  # MONAI's HD95 is NaN here (inf - inf)


@pytest.mark.parametrize("route_name", ROUTES)
def test_metric_of_a_mask_with_itself_is_perfect(route_name):
    mask = torch.zeros(2, 1, 7, 8, 9)
    mask[0, :, 1:5, 2:6, 3:8] = 1
    mask[1, :, 0, 0, 0] = 1
    with route(route_name) as kw:
        out = stableloss.surface_metrics(mask, mask, tolerance=0.0, **kw)
    assert torch.equal(out["hausdorff"], torch.zeros(2, 1)) and torch.equal(out["nsd"], torch.ones(2, 1))


def test_surface_mask_is_scipy_erosion_edge():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for shape in [(11,), (9, 12), (5, 6, 7), (2, 9), (1, 4, 5)]:
        mask = rng.random((3, 1) + shape) < 0.6
        want = np.stack([m ^ ndimage.binary_erosion(m) for m in mask[:, 0]])[:, None]
        from stableloss.surface import surface_mask
        np.testing.assert_array_equal(surface_mask(torch.from_numpy(mask)).numpy(), want)
        np.testing.assert_array_equal(np.stack([_surface_stats._surface_np(m) for m in mask[:, 0]])[:, None], want)


@pytest.mark.parametrize("route_name", ROUTES)
def test_empty_batch_and_zero_sized_inputs_do_not_crash(route_name):
    for shape in [(0, 1, 4, 4), (2, 0, 4, 4), (2, 1, 0, 4)]:
        with route(route_name) as kw:
            out = stableloss.surface_metrics(torch.zeros(shape), torch.zeros(shape), tolerance=1.0, **kw)
        assert all(value.shape == shape[:2] for value in out.values())


def _far_apart_and_on_the_border():
    """Masks whose bounding box is most of the image, touching its border, one pixel, 1-D to 3-D."""
    cases = []
    target = torch.zeros(2, 2, 40, 33)
    target[0, 0, 0:5, 0:4] = 1  # in a corner: border pixels are surface
    target[0, 1, 20, 10] = 1  # one pixel
    target[1, :, 10:30, 28:33] = 1
    pred = torch.zeros_like(target)
    pred[0, 0, 35:40, 25:33] = 1  # the far corner: the box spans the image
    pred[0, 1, 21:23, 10:12] = 1
    pred[1, 0, 12:29, 27:33] = 1
    pred[1, 1, 0:3, 0:3] = 1
    cases.append((pred, target, (0.8, 1.3)))
    line_t = torch.zeros(1, 1, 50)
    line_t[..., 3:9] = 1
    line_p = torch.zeros(1, 1, 50)
    line_p[..., 40:49] = 1
    cases.append((line_p, line_t, (0.5,)))
    vol_t = torch.zeros(1, 1, 12, 14, 16)
    vol_t[..., 2:7, 3:9, 0:5] = 1
    vol_p = torch.zeros_like(vol_t)
    vol_p[..., 8:12, 10:14, 11:16] = 1
    cases.append((vol_p, vol_t, (2.5, 0.7, 0.7)))
    return cases


@pytest.mark.parametrize("index", range(3))
@pytest.mark.parametrize("route_name", ROUTES)
def test_masks_far_apart_and_on_the_border_match_monai(index, route_name):
    pred, target, spacing = _far_apart_and_on_the_border()[index]
    if pred.dim() == 3:  # a line (MONAI takes 2-D and 3-D only): surfaces {3, 8} and {40, 48}, spacing 0.5
        to_target, to_pred = [16.0, 20.0], [18.5, 16.0]  # 40->8, 48->8; 3->40, 8->40, times 0.5
        want_hd = torch.tensor([[max(16.0 + 0.95 * 4.0, 16.0 + 0.95 * 2.5)]])  # torch.quantile of two values
        want_assd = torch.tensor([[sum(to_target + to_pred) / 4]])
    else:
        want_hd = _monai(metrics.compute_hausdorff_distance, pred, target, spacing=spacing, percentile=95)
        want_assd = _monai(metrics.compute_average_surface_distance, pred, target, spacing=spacing, symmetric=True)
    with route(route_name) as kw:
        out = stableloss.surface_metrics(pred, target, spacing=spacing, **kw)
    torch.testing.assert_close(out["hausdorff"], want_hd, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(out["assd"], want_assd, rtol=RTOL, atol=ATOL)
