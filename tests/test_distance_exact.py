"""Exactness: the torch distance transforms equal SciPy's on random masks, 1D to 3D, with spacing."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import stableloss
from stableloss import _edt

ndimage = pytest.importorskip("scipy.ndimage")

TOL = 1e-4  # in the units of spacing


@st.composite
def masks_and_spacing(draw, max_side=(40, 24, 12)):
    """A bool (N, C, *S) mask with 1 to 3 spatial dims and a random anisotropic spacing."""
    ndim = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, max_side[ndim - 1])) for _ in range(ndim))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    shape = (n, c) + spatial
    if draw(st.booleans()):
        mask = draw(arrays(np.bool_, shape))
    else:  # a random density, from a single pixel to almost everything
        density = draw(st.floats(0.0, 1.0))
        mask = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(shape) < density
    spacing = tuple(draw(st.floats(0.2, 5.0)) for _ in range(ndim))
    return mask, spacing


def _scipy_per_image(mask, fn):
    return np.stack([fn(image) for image in mask.reshape((-1,) + mask.shape[2:])]).reshape(mask.shape)


def _has_zero_everywhere(mask):
    flat = mask.reshape(mask.shape[0] * mask.shape[1], -1)
    return bool((~flat).any(axis=1).all())


def _has_surface_everywhere(mask):
    flat = mask.reshape(mask.shape[0] * mask.shape[1], -1)
    return bool((flat.any(axis=1) & (~flat).any(axis=1)).all())


@given(masks_and_spacing())
def test_distance_transform_edt_torch_matches_scipy(case):
    mask, spacing = case
    assume(_has_zero_everywhere(mask))
    want = _scipy_per_image(mask, lambda m: ndimage.distance_transform_edt(m, sampling=spacing))
    got = stableloss.distance_transform_edt(torch.from_numpy(mask), spacing=spacing, backend="torch")
    assert got.dtype == torch.float32 and got.shape == mask.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=TOL)


@pytest.mark.parametrize("algorithm", _edt.ALGORITHMS)
@given(case=masks_and_spacing())
def test_both_torch_algorithms_match_scipy(case, algorithm):
    # "dense" is the CUDA default: checked here on the CPU.
    mask, spacing = case
    seeds = torch.from_numpy(mask).flatten(0, 1)
    assume(bool(seeds.flatten(1).any(dim=1).all()))
    want = _scipy_per_image(mask, lambda m: ndimage.distance_transform_edt(~m, sampling=spacing))
    got = _edt.squared_distance_to_seeds(seeds, spacing, algorithm=algorithm).sqrt()
    np.testing.assert_allclose(got.reshape(mask.shape).numpy(), want, rtol=0, atol=TOL)


@given(masks_and_spacing())
def test_signed_distance_map_matches_scipy_two_edts(case):
    mask, spacing = case
    assume(_has_surface_everywhere(mask))

    def reference(m):
        return np.where(m, -ndimage.distance_transform_edt(m, sampling=spacing),
                        ndimage.distance_transform_edt(~m, sampling=spacing))

    want = _scipy_per_image(mask, reference)
    for backend in ("torch", "scipy"):
        got = stableloss.signed_distance_map(torch.from_numpy(mask), spacing=spacing, backend=backend)
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=TOL, err_msg=backend)


@given(masks_and_spacing())
def test_signed_distance_map_float_and_int_targets_agree_with_bool(case):
    mask, spacing = case
    as_bool = stableloss.signed_distance_map(torch.from_numpy(mask), spacing=spacing, backend="torch")
    for dtype in (torch.float32, torch.float16, torch.uint8, torch.long):
        other = stableloss.signed_distance_map(torch.from_numpy(mask).to(dtype), spacing=spacing, backend="torch")
        torch.testing.assert_close(other, as_bool, rtol=0, atol=0)


def test_isotropic_spacing_scales_the_map():
    mask = torch.zeros(1, 1, 9, 11, dtype=torch.bool)
    mask[..., 3:6, 2:8] = True
    unit = stableloss.signed_distance_map(mask, backend="torch")
    torch.testing.assert_close(stableloss.signed_distance_map(mask, spacing=2.5, backend="torch"), 2.5 * unit)


def test_anisotropic_spacing_follows_scipy_axis_order():
    # One object pixel: the distance along axis 0 scales with spacing[0], along axis 1 with spacing[1].
    mask = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    mask[0, 0, 2, 2] = True
    phi = stableloss.signed_distance_map(mask, spacing=(3.0, 0.5), backend="torch")[0, 0]
    assert phi[0, 2] == pytest.approx(6.0) and phi[2, 0] == pytest.approx(1.0)
    assert phi[0, 0] == pytest.approx((36.0 + 1.0) ** 0.5)


@pytest.mark.slow
def test_signed_distance_map_real_size_2d_matches_scipy():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:512, :512]
    mask = np.stack([((yy - rng.uniform(100, 400)) ** 2 + (xx - rng.uniform(100, 400)) ** 2 < rng.uniform(20, 90) ** 2)
                     for _ in range(4)])[:, None]
    want = _scipy_per_image(mask, lambda m: np.where(m, -ndimage.distance_transform_edt(m, sampling=(0.7, 0.9)),
                                                     ndimage.distance_transform_edt(~m, sampling=(0.7, 0.9))))
    got = stableloss.signed_distance_map(torch.from_numpy(mask), spacing=(0.7, 0.9), backend="torch")
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=TOL)
