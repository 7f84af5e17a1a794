"""Bad input to the distance maps and surface metrics: a ValueError/TypeError naming the argument,
what was expected and what was received."""

import math

import numpy as np
import pytest
import torch

import stableloss

MASK = torch.zeros(2, 1, 6, 6)
MASK[:, :, 2:4, 2:4] = 1


@pytest.mark.parametrize("spacing, message", [
    ((1.0,), r"spacing must have one value per spatial dim \(2\); received 1 values \[1\.0\]"),
    ((1.0, 2.0, 3.0), r"spacing must have one value per spatial dim \(2\); received 3 values"),
    ((1.0, 0.0), r"spacing must hold finite values > 0; received \[1\.0, 0\.0\]"),
    ((-1.0, 1.0), r"spacing must hold finite values > 0; received \[-1\.0, 1\.0\]"),
    ((1.0, math.nan), r"spacing must hold finite values > 0; received \[1\.0, nan\]"),
    ((math.inf, 1.0), r"spacing must hold finite values > 0; received \[inf, 1\.0\]"),
    (0.0, r"spacing must hold finite values > 0; received \[0\.0, 0\.0\]"),
])
def test_bad_spacing_value(spacing, message):
    for fn in (stableloss.signed_distance_map, stableloss.distance_transform_edt, stableloss.hausdorff_distance):
        args = (MASK, MASK) if fn is stableloss.hausdorff_distance else (MASK,)
        with pytest.raises(ValueError, match=message):
            fn(*args, spacing=spacing)


@pytest.mark.parametrize("spacing", ["1,1", {1: 2}, (1.0, "a"), (True, 1.0)])
def test_bad_spacing_type(spacing):
    with pytest.raises(TypeError, match=r"spacing must (be a sequence, array or 1-D tensor of numbers|hold real numbers); received"):
        stableloss.signed_distance_map(MASK, spacing=spacing)


def test_spacing_as_numpy_array_and_tensor_are_accepted():
    want = stableloss.signed_distance_map(MASK, spacing=(1.0, 2.0))
    torch.testing.assert_close(stableloss.signed_distance_map(MASK, spacing=np.array([1.0, 2.0])), want)
    torch.testing.assert_close(stableloss.signed_distance_map(MASK, spacing=torch.tensor([1.0, 2.0])), want)


@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, math.nan])
def test_non_binary_target(value):
    target = MASK.clone()
    target[0, 0, 0, 0] = value
    with pytest.raises(ValueError, match=r"target must be binary \(values 0 and 1, or bool\); received a value "
                                         rf"{value!r} \(dtype torch.float32\)"):
        stableloss.signed_distance_map(target)
    with pytest.raises(ValueError, match=r"pred must be binary"):
        stableloss.average_surface_distance(target, MASK)


def test_non_binary_integer_target():
    with pytest.raises(ValueError, match=r"target must be binary .*received a value 2 \(dtype torch.int64\)"):
        stableloss.signed_distance_map(MASK.long() * 2)


def test_validate_args_false_treats_nonzero_as_object():
    soft = MASK * 0.7
    torch.testing.assert_close(stableloss.signed_distance_map(soft, validate_args=False),
                               stableloss.signed_distance_map(MASK))


@pytest.mark.parametrize("shape", [(6, 6), (2, 6), (1, 1, 2, 3, 4, 5)])
def test_wrong_number_of_dims(shape):
    message = (r"target must have shape \(N, C, \*spatial\) with 1 to 3 spatial dims \(3 to 5 dims in all\); "
               rf"received shape {re_shape(shape)} \({len(shape)} dims\)")
    with pytest.raises(ValueError, match=message):
        stableloss.signed_distance_map(torch.zeros(shape))


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_not_a_tensor():
    with pytest.raises(TypeError, match=r"target must be a torch.Tensor; received ndarray"):
        stableloss.signed_distance_map(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor; received list"):
        stableloss.distance_transform_edt([[0, 1]])


@pytest.mark.parametrize("name, value, message", [
    ("backend", "cupy", r"backend must be one of \('auto', 'torch', 'scipy'\); received 'cupy'"),
    ("no_surface", "inf", r"no_surface must be one of \('bound', 'zero'\); received 'inf'"),
    ("inside_shift", -1.0, r"inside_shift must be in \[0\.0, inf\]; received -1\.0"),
    ("inside_shift", math.nan, r"inside_shift must be finite; received nan"),
    ("ignore_index", 255, r"ignore_index must be None unless num_classes is given; received 255"),
])
def test_bad_options(name, value, message):
    with pytest.raises(ValueError, match=message):
        stableloss.signed_distance_map(MASK, **{name: value})


def test_bad_class_indices():
    labels = torch.zeros(2, 5, 5, dtype=torch.long)
    labels[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\] for num_classes=3; "
                                         r"received values in \[0, 3\]"):
        stableloss.signed_distance_map(labels, num_classes=3)
    with pytest.raises(TypeError, match=r"target must hold integer class indices when num_classes is given; "
                                        r"received dtype torch.float32"):
        stableloss.signed_distance_map(labels.float(), num_classes=3)
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 1; received 0"):
        stableloss.signed_distance_map(labels, num_classes=0)


def test_sample_form_bad_input():
    with pytest.raises(ValueError, match=r"spatial_dims must be given when spacing is None or a single number"):
        stableloss.sample_signed_distance_map(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"sample must have shape \(C, \*spatial\) or \(\*spatial\) with 2 spatial "
                                         r"dims; received shape \(1, 1, 4, 4\)"):
        stableloss.sample_signed_distance_map(np.zeros((1, 1, 4, 4)), spatial_dims=2)
    with pytest.raises(ValueError, match=r"spatial_dims must be 1, 2 or 3; received 4"):
        stableloss.SignedDistanceTransform(spatial_dims=4)
    with pytest.raises(TypeError, match=r"sample must be a numpy.ndarray or a torch.Tensor; received list"):
        stableloss.sample_signed_distance_map([[0, 1]], spatial_dims=2)
    with pytest.raises(ValueError, match=r"sample must be class indices of shape \(\*spatial\) or \(1, \*spatial\) "
                                         r"when num_classes is given; received shape \(2, 4, 4\)"):
        stableloss.sample_signed_distance_map(np.zeros((2, 4, 4), dtype=np.int64), spatial_dims=2, num_classes=2)


def test_surface_metric_bad_input():
    with pytest.raises(ValueError, match=r"target must have the shape of pred \(2, 1, 6, 6\); received shape \(2, 1, 6, 5\)"):
        stableloss.hausdorff_distance(MASK, MASK[..., :5])
    with pytest.raises(ValueError, match=r"percentile must be in \[0\.0, 100\.0\]; received 101\.0"):
        stableloss.hausdorff_distance(MASK, MASK, percentile=101.0)
    with pytest.raises(ValueError, match=r"tolerance must be in \[0\.0, inf\]; received -1\.0"):
        stableloss.normalized_surface_dice(MASK, MASK, -1.0)
    with pytest.raises(ValueError, match=r"tolerance must be one number or one per channel \(1\); received 2 values"):
        stableloss.normalized_surface_dice(MASK, MASK, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"empty must be one of \('bound', 'nan'\); received 'zero'"):
        stableloss.surface_metrics(MASK, MASK, empty="zero")
    with pytest.raises(TypeError, match=r"symmetric must be a bool; received str 'yes'"):
        stableloss.average_surface_distance(MASK, MASK, symmetric="yes")


def test_transform_settings_are_checked_once_at_construction():
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 1; received 0"):
        stableloss.SignedDistanceTransform(spatial_dims=2, num_classes=0)
    with pytest.raises(ValueError, match=r"no_surface must be one of \('bound', 'zero'\); received 'none'"):
        stableloss.SignedDistanceTransform(spatial_dims=2, no_surface="none")
    with pytest.raises(ValueError, match=r"spacing must hold finite values > 0; received \[1\.0, -2\.0\]"):
        stableloss.SignedDistanceTransform(spacing=(1.0, -2.0))


def test_normalized_surface_dice_without_a_tolerance_names_it():
    with pytest.raises(TypeError, match=r"tolerance must be one number >= 0 or one per channel \(in the units of spacing\); "
                                        r"received None"):
        stableloss.normalized_surface_dice(MASK, MASK, None)


def test_hausdorff_distance_without_a_percentile_names_it():
    with pytest.raises(TypeError, match=r"percentile must be a real number; received NoneType None"):
        stableloss.hausdorff_distance(MASK, MASK, percentile=None)


@pytest.mark.parametrize("tolerance", [np.float32(1.0), torch.tensor(1.0), np.array([1.0]), torch.tensor([1.0])])
def test_tolerance_as_numpy_scalar_or_tensor_is_read_by_value(tolerance):
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    pred = target.roll(1, dims=-1)
    want = stableloss.normalized_surface_dice(pred, target, 1.0)
    torch.testing.assert_close(stableloss.normalized_surface_dice(pred, target, tolerance), want, rtol=0, atol=0)


VALIDATE_ARGS_CALLS = {
    "signed_distance_map": lambda flag: stableloss.signed_distance_map(MASK, validate_args=flag),
    "signed_distance_map-num_classes": lambda flag: stableloss.signed_distance_map(MASK[:, 0].long(), num_classes=2,
                                                                                    validate_args=flag),
    "sample_signed_distance_map": lambda flag: stableloss.sample_signed_distance_map(MASK[0].numpy(), spatial_dims=2,
                                                                                     validate_args=flag),
    "SignedDistanceTransform": lambda flag: stableloss.SignedDistanceTransform(spatial_dims=2, validate_args=flag),
    "hausdorff_distance": lambda flag: stableloss.hausdorff_distance(MASK, MASK, validate_args=flag),
    "average_surface_distance": lambda flag: stableloss.average_surface_distance(MASK, MASK, validate_args=flag),
    "normalized_surface_dice": lambda flag: stableloss.normalized_surface_dice(MASK, MASK, 1.0, validate_args=flag),
    "surface_metrics": lambda flag: stableloss.surface_metrics(MASK, MASK, validate_args=flag),
}


@pytest.mark.parametrize("flag, received", [("yes", "str 'yes'"), (1, "int 1"), (None, "NoneType None")])
@pytest.mark.parametrize("name", list(VALIDATE_ARGS_CALLS))
def test_validate_args_must_be_a_bool_in_every_distance_function(name, flag, received):
    with pytest.raises(TypeError, match=rf"validate_args must be a bool; received {received}"):
        VALIDATE_ARGS_CALLS[name](flag)


SPACING_CALLS = {
    "signed_distance_map": lambda spacing: stableloss.signed_distance_map(MASK, spacing=spacing),
    "signed_distance_map-torch": lambda spacing: stableloss.signed_distance_map(MASK, spacing=spacing, backend="torch"),
    "distance_transform_edt": lambda spacing: stableloss.distance_transform_edt(MASK, spacing=spacing),
    "sample_signed_distance_map": lambda spacing: stableloss.sample_signed_distance_map(MASK[0].numpy(), spacing=spacing,
                                                                                        spatial_dims=2),
    "SignedDistanceTransform": lambda spacing: stableloss.SignedDistanceTransform(spacing=spacing, spatial_dims=2),
    "hausdorff_distance": lambda spacing: stableloss.hausdorff_distance(MASK, MASK, spacing=spacing),
    "surface_metrics": lambda spacing: stableloss.surface_metrics(MASK, MASK, spacing=spacing, tolerance=1.0),
    "BoundaryLoss": lambda spacing: stableloss.BoundaryLoss("binary", spacing=spacing),
    "HausdorffDTLoss": lambda spacing: stableloss.HausdorffDTLoss("binary", spacing=spacing),
    "BoundaryAwareLoss": lambda spacing: stableloss.BoundaryAwareLoss("binary", boundary="boundary", spacing=spacing),
}


@pytest.mark.parametrize("spacing, received", [
    (1e-30, r"\[1e-30, 1e-30\]|\[1e-30\]"),  # float32 squares it to 0: every distance would be 0
    (1e25, r"\[1e\+25, 1e\+25\]|\[1e\+25\]"),  # its square overflows float32: every distance would be inf
    ((1e-10, 1e10), r"\[1e-10, 10000000000\.0\]"),  # the envelope's intersections would overflow
])
@pytest.mark.parametrize("name", list(SPACING_CALLS))
def test_spacing_beyond_float32_squared_distances_is_refused(name, spacing, received):
    with pytest.raises(ValueError, match=r"spacing must keep the squared distances within float32's range: every value in "
                                         r"\[1\.08e-19, 9\.22e\+18\] and the largest at most 9\.22e\+18 times the smallest; "
                                         rf"received ({received})$"):
        SPACING_CALLS[name](spacing)


def test_spacing_whose_image_diagonal_overflows_float32_is_refused_for_that_image():
    # 1e18 is a valid spacing, but a 64 x 64 image's diagonal (9.1e19) squared has no float32.
    image = torch.zeros(1, 1, 64, 64)
    image[..., 10:20, 10:20] = 1
    message = (r"spacing must keep the squared distances of an image of shape \(64, 64\) within float32's range: its "
               r"extent diagonal sqrt\(sum_i \(shape_i \* spacing_i\)\^2\) at most 9\.22e\+18 and at most 9\.22e\+18 times the "
               r"smallest spacing \(for one spacing in every dim: at most 1\.02e\+17\); received \[1e\+18, 1e\+18\] "
               r"\(extent diagonal 9\.05e\+19\)")
    loss = stableloss.BoundaryLoss("binary", spacing=1e18)  # the image shape is known at the first batch
    for call in (lambda: stableloss.signed_distance_map(image, spacing=1e18),
                 lambda: stableloss.distance_transform_edt(image, spacing=1e18),
                 lambda: stableloss.average_surface_distance(image, image, spacing=1e18),
                 lambda: loss(image, image)):
        with pytest.raises(ValueError, match=message):
            call()
    stableloss.signed_distance_map(image[..., :8, :8], spacing=1e17)  # a smaller image fits


def test_spacing_anisotropy_whose_envelope_overflows_float32_is_refused_for_that_image():
    image = torch.zeros(1, 1, 64, 64)
    image[..., 10:20, 10:20] = 1
    with pytest.raises(ValueError, match=r"spacing must keep the squared distances of an image of shape \(64, 64\) .*"
                                         r"received \[1\.0, 2e\+17\] \(extent diagonal 1\.28e\+19\)"):
        stableloss.signed_distance_map(image, spacing=(1.0, 2e17))


@pytest.mark.parametrize("spacing", [1e-3, 1e3, (1e-3, 1e3, 1.0), (1e3, 0.5, 1e-3), (0.7, 0.7, 5.0), (2.5, 0.8, 0.8)])
def test_realistic_spacings_are_accepted(spacing):
    from stableloss import _checks

    for shape in ((1024, 1024, 1024), (4, 5, 6)):  # the check's limits for a large CT volume, and a real call
        assert _checks.check_spacing(spacing, 3, shape=shape) == ((float(spacing),) * 3 if isinstance(spacing, float)
                                                                  else spacing)
    volume = torch.zeros(1, 1, 4, 5, 6)
    volume[..., 1:3, 1:4, 2:5] = 1
    stableloss.signed_distance_map(volume, spacing=spacing, backend="torch")
    stableloss.surface_metrics(volume, volume, spacing=spacing, tolerance=1.0)
    stableloss.BoundaryLoss("binary", spacing=spacing)(volume, volume)
