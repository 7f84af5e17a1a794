"""Signed distance maps: the no-surface policy, options, per-class maps and the loader-side form."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import stableloss
from stableloss.distance import extent_diagonal

BACKENDS = ["torch", "scipy"]


def _full(like, value):
    return torch.full_like(like, value)


def _blob(shape=(1, 1, 12, 10)):
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[..., 3:7, 2:6] = True
    return mask


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_full_channels_get_the_bound(backend):
    if backend == "scipy":
        pytest.importorskip("scipy.ndimage")
    target = torch.zeros(3, 1, 6, 9)
    target[1] = 1  # full
    target[2, :, 2:4, 3:5] = 1  # an object
    spacing = (2.0, 0.5)
    bound = math.sqrt((6 * 2.0) ** 2 + (9 * 0.5) ** 2)
    phi = stableloss.signed_distance_map(target, spacing=spacing, backend=backend)
    torch.testing.assert_close(phi[0], _full(phi[0], bound))
    torch.testing.assert_close(phi[1], _full(phi[1], -bound))
    assert phi[2].abs().max() < bound and torch.isfinite(phi).all()


@given(arrays(np.bool_, st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 9), st.integers(1, 9))),
       st.tuples(st.floats(0.2, 4.0), st.floats(0.2, 4.0)))
def test_every_map_lies_within_the_bound(mask, spacing):
    phi = stableloss.signed_distance_map(torch.from_numpy(mask), spacing=spacing, backend="torch")
    bound = extent_diagonal(mask.shape[2:], spacing)
    assert torch.isfinite(phi).all()
    assert phi.abs().max() <= bound * (1 + 1e-6)
    assert torch.equal(phi < 0, torch.from_numpy(mask))  # the sign says inside / outside


def test_false_positive_on_an_empty_image_is_penalised():
    # The boundary loss mean(p * phi): a false positive on an empty target must cost something and get
    # a gradient (with a zero map it would be free), at least as much as the farthest one next to an object.
    target = torch.zeros(2, 1, 16, 16)
    target[1, :, 0, 0] = 1  # an object in the corner
    phi = stableloss.signed_distance_map(target)
    probs = torch.zeros(2, 1, 16, 16, requires_grad=True)
    (probs * phi).mean().backward()
    assert probs.grad[0].min() > 0
    assert probs.grad[0].min() > probs.grad[1].max()
    zero = stableloss.signed_distance_map(target, no_surface="zero")
    assert torch.all(zero[0] == 0) and torch.equal(zero[1], phi[1])


def test_full_target_with_no_surface_zero_is_zero():
    phi = stableloss.signed_distance_map(torch.ones(1, 2, 5, 5), no_surface="zero")
    assert torch.equal(phi, torch.zeros(1, 2, 5, 5))


def test_inside_shift_is_kervadec_map():
    # Kervadec et al.'s one_hot2dist: negmask_dist * negmask - (posmask_dist - 1) * posmask.
    mask = _blob()
    plain = stableloss.signed_distance_map(mask)
    shifted = stableloss.signed_distance_map(mask, inside_shift=1.0)
    torch.testing.assert_close(shifted, torch.where(mask, plain + 1, plain))
    assert shifted[mask].max() == 0 and shifted[~mask].min() == 1
    full = stableloss.signed_distance_map(torch.ones(1, 1, 3, 4), inside_shift=1.0)
    torch.testing.assert_close(full, _full(full, 1.0 - 5.0))  # -(B - shift), B = 5


def test_one_hot_maps_from_class_indices():
    labels = torch.zeros(2, 7, 8, dtype=torch.long)
    labels[:, 1:4, 1:4] = 1
    labels[0, 5:, 5:] = 2
    phi = stableloss.signed_distance_map(labels, num_classes=3, spacing=(1.0, 2.0))
    one_hot = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1)
    torch.testing.assert_close(phi, stableloss.signed_distance_map(one_hot, spacing=(1.0, 2.0)))
    assert phi.shape == (2, 3, 7, 8)
    torch.testing.assert_close(phi[1, 2], _full(phi[1, 2], extent_diagonal((7, 8), (1.0, 2.0))))  # class 2 absent


def test_ignore_index_pixels_belong_to_no_class():
    labels = torch.zeros(1, 6, 6, dtype=torch.long)
    labels[:, 2:4, 2:4] = 1
    labels[:, 0, :] = 255
    phi = stableloss.signed_distance_map(labels, num_classes=2, ignore_index=255)
    assert torch.all(phi[0, :, 0] > 0)  # background in both channels
    assert torch.all(phi[0, 0, 1:][labels[0, 1:] == 0] < 0)


def test_empty_batch_and_zero_sized_inputs_do_not_crash():
    for shape in [(0, 1, 8, 8), (2, 0, 8, 8), (2, 1, 0, 8)]:
        phi = stableloss.signed_distance_map(torch.zeros(shape))
        assert phi.shape == shape and phi.dtype == torch.float32
        assert stableloss.distance_transform_edt(torch.zeros(shape)).shape == shape


def test_distance_transform_without_background_is_inf():
    out = stableloss.distance_transform_edt(torch.ones(1, 1, 4, 4), backend="torch")
    assert torch.isinf(out).all()
    pytest.importorskip("scipy.ndimage")
    assert torch.isinf(stableloss.distance_transform_edt(torch.ones(1, 1, 4, 4), backend="scipy")).all()


def test_scipy_forced_without_scipy_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)  # import scipy.ndimage now raises ImportError
    with pytest.raises(ImportError, match=r'backend=.scipy. needs SciPy.*pip install "stableloss\[distance\]"'):
        stableloss.signed_distance_map(_blob(), backend="scipy")
    auto = stableloss.signed_distance_map(_blob(), backend="auto")  # falls back to torch
    torch.testing.assert_close(auto, stableloss.signed_distance_map(_blob(), backend="torch"))


def test_core_import_does_not_import_scipy():
    import subprocess
    import sys

    code = "import sys, stableloss; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the loader-side form ------------------------------------------------------------------------


def test_sample_form_numpy_in_numpy_out():
    mask = np.zeros((2, 9, 7), dtype=np.uint8)
    mask[0, 2:5, 1:4] = 1
    phi = stableloss.sample_signed_distance_map(mask, spacing=(1.5, 0.5))
    assert isinstance(phi, np.ndarray) and phi.dtype == np.float32 and phi.shape == (2, 9, 7)
    want = stableloss.signed_distance_map(torch.from_numpy(mask)[None], spacing=(1.5, 0.5))[0]
    np.testing.assert_array_equal(phi, want.numpy())


def test_sample_form_without_channel_and_tensor_in_tensor_out():
    mask = _blob((1, 1, 12, 10))[0, 0]
    phi = stableloss.sample_signed_distance_map(mask, spatial_dims=2)
    assert isinstance(phi, torch.Tensor) and phi.shape == (12, 10)
    torch.testing.assert_close(phi, stableloss.signed_distance_map(mask[None, None])[0, 0])


def test_sample_form_class_indices_with_or_without_channel():
    labels = np.zeros((5, 6, 7), dtype=np.int64)
    labels[1:3, 2:4, 2:5] = 2
    a = stableloss.sample_signed_distance_map(labels, spacing=(3.0, 1.0, 1.0), num_classes=3)
    b = stableloss.sample_signed_distance_map(labels[None], spacing=(3.0, 1.0, 1.0), num_classes=3)
    assert a.shape == (3, 5, 6, 7)
    np.testing.assert_array_equal(a, b)


def test_transform_class_uses_its_settings_and_a_per_call_spacing():
    to_map = stableloss.SignedDistanceTransform(spatial_dims=2, inside_shift=1.0)
    mask = _blob()[0]
    torch.testing.assert_close(to_map(mask), stableloss.signed_distance_map(mask[None], inside_shift=1.0)[0])
    torch.testing.assert_close(to_map(mask, spacing=(2.0, 3.0)),
                               stableloss.signed_distance_map(mask[None], spacing=(2.0, 3.0), inside_shift=1.0)[0])
    assert "inside_shift=1.0" in repr(to_map)


def test_transform_runs_in_dataloader_workers():
    class Masks(torch.utils.data.Dataset):
        def __init__(self):
            self.to_map = stableloss.SignedDistanceTransform(spacing=(1.0, 1.0))

        def __len__(self):
            return 4

        def __getitem__(self, i):
            mask = np.zeros((1, 8, 8), dtype=bool)
            mask[0, i:i + 3, 2:5] = True
            return mask.astype(np.float32), self.to_map(mask)

    batches = list(torch.utils.data.DataLoader(Masks(), batch_size=2, num_workers=1))
    target, phi = batches[1]
    torch.testing.assert_close(phi, stableloss.signed_distance_map(target))
