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
