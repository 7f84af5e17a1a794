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


def _scipy_to_seeds(seeds, spacing):
    """SciPy's float64 distance to the nearest seed of each image (``seeds``: bool ``(B, *S)``)."""
    return np.stack([ndimage.distance_transform_edt(~image, sampling=spacing) for image in seeds])


def _count_slabs(monkeypatch):
    """Record the number of lines of every envelope call (one call per slab)."""
    calls = []
    envelope = _edt._lower_envelope

    def counting(f, c):
        calls.append(f.shape[1])
        return envelope(f, c)

    monkeypatch.setattr(_edt, "_lower_envelope", counting)
    return calls


@pytest.mark.parametrize("lines, shape", [
    (7, (3, 10, 13)),  # slabs of 2 of the 13 columns: 7 slabs, the last one narrower
    (1, (2, 9, 5)),  # one line per slab
    (40, (2, 6, 9, 11)),  # 3-D: slabs of the largest other dim, for each of the two envelope axes
    (5, (1, 7, 3, 12)),
])
def test_envelope_slab_split_matches_scipy(monkeypatch, lines, shape):
    # Above _ENVELOPE_LINES lines per pass the envelope works in slabs (16,384 lines: real sizes only);
    # a smaller limit sends a small image through the same split.
    monkeypatch.setattr(_edt, "_ENVELOPE_LINES", lines)
    calls = _count_slabs(monkeypatch)
    rng = np.random.default_rng(sum(shape) + lines)
    seeds = rng.random(shape) < 0.08
    seeds[:, (0,) * (len(shape) - 1)] = True  # a seed in every image
    spacing = (0.7, 1.3, 0.9)[: len(shape) - 1]
    got = _edt.squared_distance_to_seeds(torch.from_numpy(seeds), spacing, algorithm="envelope").sqrt()
    np.testing.assert_allclose(got.numpy(), _scipy_to_seeds(seeds, spacing), rtol=1e-4, atol=0)
    assert len(calls) > len(shape) - 2  # more envelope calls than envelope axes: the work was split


@pytest.mark.slow
def test_envelope_slab_split_real_size_matches_scipy(monkeypatch):
    # 2 x 1 x 128^3 on the CPU: each envelope pass holds 2 * 128^2 = 32,768 lines, two slabs of
    # _ENVELOPE_LINES = 16,384 (about 6 s on two cores).
    calls = _count_slabs(monkeypatch)
    rng = np.random.default_rng(5)
    zz, yy, xx = np.mgrid[:128, :128, :128]
    balls = []
    for _ in range(2):
        centre, radius = rng.uniform(30, 98, 3), rng.uniform(10, 40)
        balls.append((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 < radius**2)
    mask = ~np.stack(balls)[:, None] | (rng.random((2, 1, 128, 128, 128)) < 1e-5)  # zero inside the balls
    spacing = (1.5, 0.8, 0.7)
    got = stableloss.distance_transform_edt(torch.from_numpy(mask), spacing=spacing, backend="torch")
    want = _scipy_per_image(mask, lambda m: ndimage.distance_transform_edt(m, sampling=spacing))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=0)
    assert len(calls) == 4 and set(calls) == {_edt._ENVELOPE_LINES}  # two axes, two slabs each


LIMIT = 2.0**63  # stableloss._checks.SPACING_LIMIT


def _limit_cases():
    """Spacings at the edges of what float32 squared distances hold, per image shape."""
    for shape in ((50,), (20, 30), (9, 10, 11)):
        n = len(shape)
        pixels = float(np.sqrt(sum(s * s for s in shape)))
        yield shape, (1 / LIMIT,) * n  # the smallest spacing
        yield shape, (0.999 * LIMIT / pixels,) * n  # the largest for this shape
        yield shape, tuple(10.0 ** (3 * i) / LIMIT for i in range(n))
        for small in range(1, n):  # the largest anisotropy: the diagonal just below LIMIT times the smallest
            others = float(np.sqrt(sum(s * s for i, s in enumerate(shape) if i != small)))
            spacing = tuple(1.0 if i == small else 0.999 * LIMIT / others for i in range(n))
            yield shape, spacing
            yield shape, tuple(h / LIMIT for h in spacing)


@pytest.mark.parametrize("algorithm", _edt.ALGORITHMS)
@pytest.mark.parametrize("shape, spacing", list(_limit_cases()))
def test_spacing_at_the_float32_limits_matches_scipy(shape, spacing, algorithm):
    # The accepted range (stableloss._checks.check_spacing) is exact at its edges: no square is subnormal
    # or overflows. (Beyond them float32 gave zeros, inf, or an envelope index error.)
    from stableloss import _checks

    _checks.check_spacing(spacing, len(shape), shape=shape)  # accepted
    rng = np.random.default_rng(len(shape))
    seeds = rng.random((3,) + shape) < 0.1
    seeds[:, (0,) * len(shape)] = True
    got = _edt.squared_distance_to_seeds(torch.from_numpy(seeds), spacing, algorithm=algorithm).sqrt()
    np.testing.assert_allclose(got.double().numpy(), _scipy_to_seeds(seeds, spacing), rtol=1e-6, atol=0)
