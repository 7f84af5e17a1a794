"""Bad input fails with a ValueError/TypeError naming the argument, what was expected and received."""

import re

import pytest
import torch

import stableloss

X_BIN = torch.zeros(2, 1, 4, 4)
T_BIN = torch.ones(2, 1, 4, 4)
X_MC = torch.zeros(2, 3, 4, 4)
T_MC = torch.zeros(2, 4, 4, dtype=torch.long)

FUNCTIONS = [stableloss.dice_loss, stableloss.tversky_loss, stableloss.jaccard_loss, stableloss.focal_loss,
             stableloss.log_cosh_dice_loss, stableloss.boundary_aware_loss]
CLASSES = [stableloss.DiceLoss, stableloss.TverskyLoss, stableloss.JaccardLoss, stableloss.FocalLoss,
           stableloss.LogCoshDiceLoss, stableloss.BoundaryAwareLoss]
fn_ids = [f.__name__ for f in FUNCTIONS]
cls_ids = [c.__name__ for c in CLASSES]


@pytest.mark.parametrize("cls", CLASSES, ids=cls_ids)
def test_unknown_mode_string(cls):
    with pytest.raises(ValueError, match=r"mode must be one of \('binary', 'multiclass', 'multilabel'\); received 'binray'"):
        cls("binray")


@pytest.mark.parametrize("cls", CLASSES, ids=cls_ids)
def test_mode_of_wrong_type(cls):
    with pytest.raises(TypeError, match=r"mode must be a str.*received int 1"):
        cls(1)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_mismatched_binary_shapes(fn):
    with pytest.raises(ValueError, match=r"target must have shape \(2, 1, 4, 4\) or \(2, 4, 4\) with"
                       r" mode='binary' .*received shape \(2, 1, 4, 5\)"):
        fn(X_BIN, torch.ones(2, 1, 4, 5), mode="binary")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_binary_with_several_channels(fn):
    with pytest.raises(ValueError, match=r"input must have 1 channel with mode='binary'.*received shape \(2, 3, 4, 4\)"):
        fn(X_MC, T_BIN, mode="binary")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_multiclass_target_out_of_range(fn):
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\] for an input"
                       r" with 3 channels; received values in \[0, 3\]"):
        fn(X_MC, T_MC.clone().fill_(3).index_fill_(0, torch.tensor([0]), 0), mode="multiclass")


@pytest.mark.parametrize("fn", FUNCTIONS[:-1], ids=fn_ids[:-1])
def test_multiclass_negative_target_names_ignore_index(fn):
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\] or ignore_index=255 .*received values in \[-1, 0\]"):
        fn(X_MC, T_MC.clone().fill_(-1).index_fill_(0, torch.tensor([0]), 0), mode="multiclass", ignore_index=255)


def test_multiclass_negative_target_message_without_ignore_index():
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\] for an input"
                       r" with 3 channels; received values in \[-1, 0\]"):
        stableloss.boundary_aware_loss(X_MC, T_MC.clone().fill_(-1).index_fill_(0, torch.tensor([0]), 0), mode="multiclass")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_multiclass_float_target(fn):
    with pytest.raises(TypeError, match=r"target must hold integer class indices .* mode='multiclass'; received dtype torch.float32"):
        fn(X_MC, T_MC.float(), mode="multiclass")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_multiclass_target_with_channel_dim(fn):
    with pytest.raises(ValueError, match=r"target must have shape \(2, 4, 4\) \(N, \*spatial\) of"
                       r" class indices.*received shape \(2, 3, 4, 4\)"):
        fn(X_MC, torch.zeros(2, 3, 4, 4, dtype=torch.long), mode="multiclass")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
@pytest.mark.parametrize("shape,mode", [((2, 1, 2, 2, 2, 2), "binary"), ((), "binary"), ((4,), "multiclass")])
def test_wrong_number_of_dims(fn, shape, mode):
    expected = (re.escape("input must have shape (N, C, *spatial) with 0 to 3 spatial dims (2 to 5 dims in all), or (N,) "
                          "with mode='binary'") + ".*" + re.escape(f"received shape {shape}"))
    with pytest.raises(ValueError, match=expected):
        fn(torch.zeros(shape), torch.zeros(shape, dtype=torch.long if mode == "multiclass" else torch.float), mode=mode)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_integer_input(fn):
    with pytest.raises(TypeError, match=r"input must be a floating-point tensor .*received dtype torch.int64"):
        fn(X_BIN.long(), T_BIN, mode="binary")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_binary_target_outside_unit_interval(fn):
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\] with mode='binary'; received values in \[0.0, 2.0\]"):
        target = torch.zeros_like(T_BIN)
        target[0, 0, 0, 0] = 2.0
        fn(X_BIN, target, mode="binary")


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_target_not_a_tensor(fn):
    with pytest.raises(TypeError, match=r"target must be a torch.Tensor; received list"):
        fn(X_BIN, [[1.0]], mode="binary")


@pytest.mark.parametrize("kwargs,error,message", [
    ({"alpha": -0.1}, ValueError, r"alpha must be in \[0.0, inf\]; received -0.1"),
    ({"beta": float("nan")}, ValueError, r"beta must be finite; received nan"),
    ({"gamma": 0.0}, ValueError, r"gamma must be in \(0.0, inf\]; received 0.0"),
    ({"alpha": 0.0, "beta": 0.0}, ValueError, r"alpha \+ beta must be > 0 .*received alpha=0.0, beta=0.0"),
    ({"alpha": "0.3"}, TypeError, r"alpha must be a real number; received str '0.3'"),
    ({"smooth": -1.0}, ValueError, r"smooth must be in \[0.0, inf\]; received -1.0"),
    ({"reduction": "avg"}, ValueError, r"reduction must be one of \('mean', 'sum', 'none'\); received 'avg'"),
    ({"per_image": 1}, TypeError, r"per_image must be a bool; received int 1"),
    ({"ignore_index": 1.5}, TypeError, r"ignore_index must be None or an int; received float 1.5"),
])
def test_bad_tversky_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        stableloss.tversky_loss(X_BIN, T_BIN, mode="binary", **kwargs)
    with pytest.raises(error, match=message):
        stableloss.TverskyLoss("binary", **kwargs)(X_BIN, T_BIN)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"alpha": 1.5}, ValueError, r"alpha must be in \[0.0, 1.0\]; received 1.5"),
    ({"alpha": [1.0, -1.0, 2.0]}, ValueError, r"alpha must be a scalar in \[0, 1\] or per-class weights >= 0; received \[1.0, -1.0, 2.0\]"),
    ({"gamma": -1.0}, ValueError, r"gamma must be in \[0.0, inf\]; received -1.0"),
    ({"reduction": "batchwise_mean"}, ValueError, r"reduction must be one of \('mean', 'sum', 'none'\); received 'batchwise_mean'"),
    ({"reduced_threshold": 0.0}, ValueError, r"reduced_threshold must be in \(0.0, 1.0\]; received 0.0"),
    ({"multiclass_activation": "relu"}, ValueError, r"multiclass_activation must be one of \('softmax', 'sigmoid'\); received 'relu'"),
])
def test_bad_focal_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        stableloss.FocalLoss("multiclass", **kwargs)(X_MC, T_MC)
    with pytest.raises(error, match=message):
        stableloss.focal_loss(X_MC, T_MC, mode="multiclass", **kwargs)


def test_per_class_alpha_of_wrong_length():
    with pytest.raises(ValueError, match=r"alpha must have one entry per class \(3, the input's channel count\); received 2 entries"):
        stableloss.focal_loss(X_MC, T_MC, mode="multiclass", alpha=[1.0, 2.0])


def test_class_weights_of_wrong_length():
    with pytest.raises(ValueError, match=r"class_weights must have one entry per class \(3, the"
                       r" input's channel count\); received 2 entries"):
        stableloss.DiceLoss("multiclass", class_weights=[1.0, 2.0])(X_MC, T_MC)


def test_class_weights_in_binary_mode():
    with pytest.raises(ValueError, match=r"class_weights must be None with mode='binary' .*received list \[1.0\]"):
        stableloss.DiceLoss("binary", class_weights=[1.0])


def test_classes_index_out_of_range():
    with pytest.raises(ValueError, match=r"classes must be indices below 3 \(the input's channels\); received \[0, 5\]"):
        stableloss.DiceLoss("multiclass", classes=[0, 5])(X_MC, T_MC)


def test_classes_in_binary_mode():
    with pytest.raises(ValueError, match=r"classes must be None with mode='binary'"):
        stableloss.DiceLoss("binary", classes=[0])


def test_target_on_other_device_is_named():
    meta_target = torch.ones(2, 1, 4, 4, device="meta")
    with pytest.raises(ValueError, match=r"target must be on the input's device \(cpu\); received device meta"):
        stableloss.dice_loss(X_BIN, meta_target, mode="binary")


def test_combined_loss_bad_terms_and_weights():
    dice = stableloss.DiceLoss("binary")
    with pytest.raises(TypeError, match=r"terms must be a non-empty mapping of name -> loss; received list"):
        stableloss.CombinedLoss([dice])
    with pytest.raises(ValueError, match=r"weights must have one entry per term \(1\); received 2"):
        stableloss.CombinedLoss({"dice": dice}, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"weights\['dice'\] must be in \[0.0, inf\]; received -1.0"):
        stableloss.CombinedLoss({"dice": dice}, weights={"dice": -1.0})
    with pytest.raises(TypeError, match=r"terms\['x'\] must be callable \(input, target\) -> loss; received int"):
        stableloss.CombinedLoss({"x": 3})


def test_jaccard_rejects_alpha():
    with pytest.raises(TypeError, match=r"JaccardLoss fixes alpha = 1.0 \(use TverskyLoss or"
                       r" tversky_loss to choose it\); received alpha=0.3"):
        stableloss.JaccardLoss("binary", alpha=0.3)
    with pytest.raises(TypeError, match=r"jaccard_loss\(\) fixes beta"):
        stableloss.jaccard_loss(X_BIN, T_BIN, mode="binary", beta=0.3)


def test_validate_args_false_skips_value_checks_only():
    out_of_range = T_MC.clone().fill_(1)
    assert torch.isfinite(stableloss.dice_loss(X_MC, out_of_range, mode="multiclass", validate_args=False))
    with pytest.raises(TypeError, match="integer class indices"):
        stableloss.dice_loss(X_MC, out_of_range.float(), mode="multiclass", validate_args=False)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=fn_ids)
def test_nan_in_target_is_named(fn):
    target = T_BIN.clone()
    target[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"target must not contain NaN with mode='binary'"):
        fn(X_BIN, target, mode="binary")
