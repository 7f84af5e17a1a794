"""Targets and samples as label files hold them: uint16/uint32/uint64 tensors and big-endian NumPy arrays.

NIfTI label volumes are often uint16 (sometimes uint32), and nibabel's ``dataobj`` can return big-endian
arrays (``'>i2'``, ``'>u2'``, ``'>f4'``). torch implements few ops for the wide unsigned dtypes and
``torch.from_numpy`` refuses big-endian data, so the library converts both once, at the checks.
"""

import re
import warnings

import numpy as np
import pytest
import torch

import stableloss
from tests.inputs import make_case

UNSIGNED = [dtype for dtype in (getattr(torch, name, None) for name in ("uint16", "uint32", "uint64")) if dtype is not None]
UNSIGNED_IDS = [str(dtype).removeprefix("torch.") for dtype in UNSIGNED]

LOSSES = {
    "dice": stableloss.DiceLoss,
    "jaccard": stableloss.JaccardLoss,
    "tversky": stableloss.TverskyLoss,
    "focal": stableloss.FocalLoss,
    "logcosh": stableloss.LogCoshDiceLoss,
    "boundary": stableloss.BoundaryLoss,
    "hausdorff": stableloss.HausdorffDTLoss,
    "dou": stableloss.BoundaryDoULoss,
    "hybrid": stableloss.BoundaryAwareLoss,
    "hybrid-hausdorff": lambda mode, **options: stableloss.BoundaryAwareLoss(mode, boundary="hausdorff", **options),
}


def _value_and_grad(loss, logits, target):
    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    value.backward()
    return value.detach(), x.grad


def _with_ignored_pixels(target, ignore_index):
    target = target.long().clone()
    target.view(-1)[::7] = ignore_index
    return target


@pytest.mark.parametrize("dtype", UNSIGNED, ids=UNSIGNED_IDS)
@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_unsigned_target_gives_the_int64_value(name, mode, dtype):
    logits, target = make_case(mode, seed=11)
    loss = LOSSES[name](mode)
    want_value, want_grad = _value_and_grad(loss, logits, target.long())
    value, grad = _value_and_grad(loss, logits, target.to(dtype))
    torch.testing.assert_close(value, want_value, rtol=0, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", UNSIGNED, ids=UNSIGNED_IDS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_unsigned_target_with_ignore_index_255_gives_the_int64_value(name, dtype):
    # 255 is the usual ignore label; the range check then takes its masked second pass.
    logits, target = make_case("multiclass", seed=12)
    target = _with_ignored_pixels(target, 255)
    loss = LOSSES[name]("multiclass", ignore_index=255)
    want_value, want_grad = _value_and_grad(loss, logits, target)
    value, grad = _value_and_grad(loss, logits, target.to(dtype))
    torch.testing.assert_close(value, want_value, rtol=0, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["boundary", "hausdorff"])
def test_unsigned_target_with_a_loader_map_gives_the_int64_value(name):
    logits, target = make_case("multiclass", seed=18)
    phi = stableloss.signed_distance_map(target.to(torch.uint16), num_classes=3)
    loss = LOSSES[name]("multiclass")
    want = loss(logits, target, distance_map=phi)
    torch.testing.assert_close(loss(logits, target.to(torch.uint16), distance_map=phi), want, rtol=0, atol=0)


def test_unsigned_target_through_the_function_gives_the_int64_value():
    logits, target = make_case("multiclass", seed=13)
    want = stableloss.dice_loss(logits, target, mode="multiclass")
    got = stableloss.dice_loss(logits, target.to(torch.uint16), mode="multiclass")
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", UNSIGNED, ids=UNSIGNED_IDS)
def test_unsigned_target_gives_the_int64_signed_distance_map(dtype):
    labels = _with_ignored_pixels(make_case("multiclass", spatial=(7, 9), seed=14)[1], 255)
    want = stableloss.signed_distance_map(labels, num_classes=3, ignore_index=255, spacing=(0.5, 2.0))
    got = stableloss.signed_distance_map(labels.to(dtype), num_classes=3, ignore_index=255, spacing=(0.5, 2.0))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    binary = (labels == 1)[:, None]
    want = stableloss.signed_distance_map(binary.long())
    torch.testing.assert_close(stableloss.signed_distance_map(binary.to(dtype)), want, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", UNSIGNED, ids=UNSIGNED_IDS)
def test_unsigned_masks_give_the_int64_surface_metrics(dtype):
    target = torch.zeros(2, 1, 9, 9, dtype=torch.long)
    target[..., 2:6, 3:7] = 1
    pred = target.roll(1, dims=-1)
    want = stableloss.surface_metrics(pred, target, tolerance=1.0)
    got = stableloss.surface_metrics(pred.to(dtype), target.to(dtype), tolerance=1.0)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", UNSIGNED, ids=UNSIGNED_IDS)
def test_unsigned_target_beyond_the_class_count_is_refused(dtype):
    logits, target = make_case("multiclass", seed=15)
    target = target.clone()
    target[0, 0, 0] = 65535
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\] for an input with 3 channels; "
                                         r"received values in \[0, 65535\]"):
        stableloss.DiceLoss("multiclass")(logits, target.to(dtype))
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\] for num_classes=3; "
                                         r"received values in \[0, 65535\]"):
        stableloss.signed_distance_map(target.to(dtype), num_classes=3)


@pytest.mark.skipif(not hasattr(torch, "uint64"), reason="torch has no uint64")
def test_uint64_target_beyond_int64_is_refused():
    logits, target = make_case("multiclass", seed=16)
    big = target.to(torch.uint64)
    big[0, 0, 0] = 2**64 - 1  # no int64 holds it: read as int64 it would be -1
    received = r"received values in \[0, 18446744073709551615\] \(dtype torch.uint64\)"
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\] or ignore_index=255 for an input "
                                         r"with 3 channels; " + received):
        stableloss.FocalLoss("multiclass", ignore_index=255)(logits, big)
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\] for num_classes=3; " + received):
        stableloss.signed_distance_map(big, num_classes=3)
    binary_logits, binary = make_case("binary", seed=16)
    binary = binary.to(torch.uint64)
    binary[0, 0, 0, 0] = 2**63
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\] with mode='binary'; "
                                         r"received values in \[0, 9223372036854775808\] \(dtype torch.uint64\)"):
        stableloss.DiceLoss("binary")(binary_logits, binary)


def _labels():
    labels = np.zeros((6, 8), dtype=np.int64)
    labels[1:4, 2:6] = 1
    labels[4:, 5:] = 2
    return labels


@pytest.mark.parametrize("dtype", [">i2", ">u2", ">i4", ">u4", ">i8", ">u8", "<u2", "<u4", "<u8", "|u1", "|i1"])
def test_big_endian_and_unsigned_label_arrays_give_the_native_map(dtype):
    labels = _labels()
    want = stableloss.sample_signed_distance_map(labels, spacing=(0.8, 1.5), num_classes=3)
    got = stableloss.sample_signed_distance_map(labels.astype(dtype), spacing=(0.8, 1.5), num_classes=3)
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, want)
    transform = stableloss.SignedDistanceTransform(spatial_dims=2, num_classes=3)
    np.testing.assert_array_equal(transform(labels.astype(dtype), spacing=(0.8, 1.5)), want)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">f2", ">i2", ">u2", "?"])
def test_big_endian_binary_arrays_give_the_native_map(dtype):
    mask = _labels() == 1
    want = stableloss.sample_signed_distance_map(mask, spatial_dims=2)
    got = stableloss.sample_signed_distance_map(mask.astype(dtype), spatial_dims=2)
    np.testing.assert_array_equal(got, want)


def test_big_endian_spacing_and_class_weights_are_read_by_value():
    labels = _labels()
    want = stableloss.sample_signed_distance_map(labels, spacing=(0.8, 1.5), num_classes=3)
    got = stableloss.sample_signed_distance_map(labels, spacing=np.array([0.8, 1.5], dtype=">f8"), num_classes=3)
    np.testing.assert_array_equal(got, want)
    logits, target = make_case("multiclass", seed=17)
    weights = [0.2, 0.3, 0.5]
    torch.testing.assert_close(stableloss.DiceLoss("multiclass", class_weights=np.array(weights, dtype=">f4"))(logits, target),
                               stableloss.DiceLoss("multiclass", class_weights=np.array(weights, dtype="<f4"))(logits, target))


def test_read_only_array_is_read_without_a_warning():
    labels = _labels()
    want = stableloss.sample_signed_distance_map(labels, spatial_dims=2, num_classes=3)
    frozen = labels.astype(">i2")
    frozen.flags.writeable = False  # a memory-mapped label file
    native = labels.copy()
    native.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it wraps a read-only array
        np.testing.assert_array_equal(stableloss.sample_signed_distance_map(frozen, spatial_dims=2, num_classes=3), want)
        np.testing.assert_array_equal(stableloss.sample_signed_distance_map(native, spatial_dims=2, num_classes=3), want)


def test_sample_map_does_not_write_to_the_array():
    labels = _labels().astype(">u2")
    before = labels.copy()
    stableloss.sample_signed_distance_map(labels, spatial_dims=2, num_classes=3)
    np.testing.assert_array_equal(labels, before)
    assert labels.dtype == np.dtype(">u2")


@pytest.mark.parametrize("dtype", ["O", "c8", "U1", "M8[s]"])
def test_array_of_unsupported_dtype_is_refused(dtype):
    with pytest.raises(TypeError, match=r"sample must be an array of bools, integers or real numbers; received dtype "
                                        + re.escape(str(np.dtype(dtype)))):
        stableloss.sample_signed_distance_map(np.zeros((4, 4), dtype=dtype), spatial_dims=2)


def test_uint64_array_beyond_int64_is_refused():
    labels = _labels().astype(np.uint64)
    labels[0, 0] = 2**64 - 1
    with pytest.raises(ValueError, match=r"sample must hold values below 2\*\*63 \(int64's range\); received values in "
                                         r"\[0, 18446744073709551615\] \(dtype uint64\)"):
        stableloss.sample_signed_distance_map(labels, spatial_dims=2, num_classes=3)
