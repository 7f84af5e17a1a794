"""Settings are validated once, when a loss is built, and live on as attributes (the smp drop-in promise).

Covers: every setting checked at construction (tensor, NumPy and list values alike), ``eps > 0``,
smp's attributes readable and settable (validated on set), NumPy scalars and arrays accepted, and
option tensors that stay float32 whatever dtype the module is cast to.
"""

import inspect
from typing import Any

import numpy as np
import pytest
import torch

import stableloss
from tests.inputs import make_case

REGION_CLASSES = [stableloss.DiceLoss, stableloss.TverskyLoss, stableloss.JaccardLoss, stableloss.LogCoshDiceLoss]
ALL_CLASSES = REGION_CLASSES + [stableloss.FocalLoss]
REGION_FUNCTIONS = [stableloss.dice_loss, stableloss.tversky_loss, stableloss.jaccard_loss, stableloss.log_cosh_dice_loss]
ids = lambda xs: [x.__name__ for x in xs]  # noqa: E731

# (option, bad value, error type, message regex): each must fail when the loss is BUILT.
BAD_SETTINGS = [
    ("smooth", -1.0, ValueError, r"smooth must be in \[0.0, inf\]; received -1.0"),
    ("smooth", float("inf"), ValueError, r"smooth must be finite; received inf"),
    ("eps", 0.0, ValueError, r"eps must be in \(0.0, "),
    ("eps", -1e-7, ValueError, r"eps must be in \(0.0, "),
    ("ignore_index", 2.5, TypeError, r"ignore_index must be None or an int; received float 2.5"),
    ("from_logits", "yes", TypeError, r"from_logits must be a bool; received str 'yes'"),
    ("reduction", "avg", ValueError, r"reduction must be one of \('mean', 'sum', 'none'\); received 'avg'"),
    ("validate_args", 1, TypeError, r"validate_args must be a bool; received int 1"),
]


@pytest.mark.parametrize("option,value,error,message", BAD_SETTINGS, ids=[f"{b[0]}={b[1]}" for b in BAD_SETTINGS])
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=ids(ALL_CLASSES))
def test_invalid_setting_fails_when_the_loss_is_built(cls, option, value, error, message):
    if cls is stableloss.FocalLoss and option == "smooth":
        pytest.skip("focal has no smooth")
    with pytest.raises(error, match=message):
        cls("binary", **{option: value})


@pytest.mark.parametrize("fn", REGION_FUNCTIONS + [stableloss.focal_loss], ids=ids(REGION_FUNCTIONS + [stableloss.focal_loss]))
def test_eps_zero_is_refused_by_the_functions_too(fn):
    logits, target = make_case("multiclass")
    with pytest.raises(ValueError, match=r"eps must be in \(0.0, "):
        fn(logits, target, mode="multiclass", eps=0.0)


@pytest.mark.parametrize("cls", REGION_CLASSES[:2] + [stableloss.FocalLoss], ids=ids(REGION_CLASSES[:2] + [stableloss.FocalLoss]))
@pytest.mark.parametrize("name,value,message", [
    ("class_weights", torch.tensor([1.0, -2.0, 1.0]), r"class_weights must be finite, >= 0 and not all zero; received \[1.0, -2.0, 1.0\]"),
    ("class_weights", torch.tensor([1.0, float("nan"), 1.0]), r"class_weights must be finite, >= 0 and not all zero"),
    ("class_weights", torch.ones(1, 3), r"class_weights must be 1-D \(one entry per class\); received Tensor of shape \(1, 3\)"),
    ("class_weights", np.array([1.0, -2.0, 1.0]), r"class_weights must be finite, >= 0 and not all zero"),
])
def test_tensor_and_array_options_are_validated_like_lists(cls, name, value, message):
    with pytest.raises(ValueError, match=message):
        cls("multiclass", **{name: value})


@pytest.mark.parametrize("classes,message", [
    (torch.tensor([-1]), r"classes must be a non-empty sequence of class indices >= 0; received \[-1.0\]"),
    (np.array([0.5]), r"classes must be a non-empty sequence of class indices >= 0"),
    (torch.tensor([[0, 1]]), r"classes must be 1-D"),
    ([1, 1], r"classes must not name a class twice; received \[1, 1\]"),
])
def test_classes_tensor_is_validated_like_a_list(classes, message):
    with pytest.raises(ValueError, match=message):
        stableloss.DiceLoss("multiclass", classes=classes)


@pytest.mark.parametrize("alpha,message", [
    (torch.tensor([0.2, -1.0, 0.3]), r"alpha must be a scalar in \[0, 1\] or per-class weights >= 0; received \[0.2, -1.0, 0.3\]"),
    (torch.tensor([0.2, float("nan"), 0.3]), r"alpha must be a scalar in \[0, 1\] or per-class weights >= 0"),
    (torch.tensor(1.5), r"alpha must be in \[0.0, 1.0\]; received 1.5"),
    (torch.ones(1, 3), r"alpha must be 1-D"),
])
def test_focal_alpha_tensor_is_validated_like_a_list(alpha, message):
    with pytest.raises(ValueError, match=message):
        stableloss.FocalLoss("multiclass", alpha=alpha)


def test_numpy_scalars_and_arrays_are_accepted_and_mean_the_same():
    logits, target = make_case("multiclass", seed=3)
    plain = stableloss.DiceLoss("multiclass", classes=[1, 2], log_loss=True, smooth=1.0, ignore_index=2,
                                class_weights=[1.0, 2.0, 3.0])
    numpy = stableloss.DiceLoss("multiclass", classes=np.array([1, 2]), log_loss=np.bool_(True), smooth=np.float32(1.0),
                                ignore_index=np.int64(2), class_weights=np.array([1.0, 2.0, 3.0]))
    torch.testing.assert_close(numpy(logits, target), plain(logits, target), rtol=0, atol=0)
    focal = stableloss.FocalLoss("multiclass", alpha=np.array([0.2, 0.3, 0.5]), gamma=np.float64(2.0))
    torch.testing.assert_close(focal(logits, target), stableloss.focal_loss(logits, target, mode="multiclass", alpha=[0.2, 0.3, 0.5]))


# smp's attribute names, a valid new value, and an invalid one, per class.
ATTRIBUTES: dict[type, list[tuple[str, Any, Any]]] = {
    stableloss.DiceLoss: [("smooth", 1.0, -1.0), ("eps", 1e-5, 0.0), ("log_loss", True, "x"), ("from_logits", False, 2),
                          ("ignore_index", 2, 2.5), ("classes", [0, 2], [-1]), ("mode", "multilabel", "binray")],
    stableloss.TverskyLoss: [("alpha", 0.3, -0.1), ("beta", 0.7, float("nan")), ("gamma", 0.75, 0.0)],
    stableloss.FocalLoss: [("alpha", 0.25, 1.5), ("gamma", 0.5, -1.0), ("reduction", "sum", "avg"),
                           ("ignore_index", 2, "a"), ("eps", 1e-6, 0.6), ("normalized", True, None)],
}


@pytest.mark.parametrize("cls,name,good,bad", [(c, *a) for c, attrs in ATTRIBUTES.items() for a in attrs],
                         ids=[f"{c.__name__}.{a[0]}" for c, attrs in ATTRIBUTES.items() for a in attrs])
def test_smp_attributes_read_set_validated_and_take_effect(cls, name, good, bad):
    logits, target = make_case("multiclass", seed=4)
    crit = cls("multiclass")
    assert getattr(crit, name) == getattr(crit.options, name) or name == "classes"
    crit_value = crit(logits, target)
    setattr(crit, name, good)
    read = getattr(crit, name)
    assert (read.tolist() if isinstance(read, torch.Tensor) else read) == good
    fn = {stableloss.FocalLoss: stableloss.focal_loss, stableloss.TverskyLoss: stableloss.tversky_loss}.get(cls, stableloss.dice_loss)
    mode = good if name == "mode" else "multiclass"
    if mode == "multilabel":
        target = (torch.rand(logits.shape) > 0.5).float()
    options = {option: getattr(crit.options, option) for option in crit.spec.accepted if option != "mode"}
    torch.testing.assert_close(crit(logits, target), fn(logits, target, mode=mode, **options))
    with pytest.raises((ValueError, TypeError), match=name if name != "mode" else "mode"):
        setattr(crit, name, bad)
    after = getattr(crit, name)  # a refused set leaves the previous value
    assert torch.equal(after, read) if isinstance(read, torch.Tensor) else after == read
    if name != "mode" and mode == "multiclass":
        assert not torch.equal(crit_value, crit(logits, target)) or name in ("eps", "ignore_index", "classes")


def test_setting_an_option_the_loss_fixes_raises():
    crit = stableloss.DiceLoss("binary")
    assert crit.alpha == 0.5
    with pytest.raises(AttributeError, match=r"DiceLoss fixes alpha = 0.5 \(use TverskyLoss or"
                       r" tversky_loss to choose it\); received alpha=0.3"):
        crit.alpha = 0.3


def test_unknown_keyword_names_the_options():
    with pytest.raises(TypeError, match=r"DiceLoss got an unexpected keyword argument 'smoth'; it takes mode, classes, log_loss"):
        stableloss.DiceLoss("binary", smoth=1.0)
    logits, target = make_case("binary")
    with pytest.raises(TypeError, match=r"dice_loss\(\) got an unexpected keyword argument 'smoth'"):
        stableloss.dice_loss(logits, target, mode="binary", smoth=1.0)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=ids(ALL_CLASSES))
def test_positional_arguments_follow_smp_and_the_signature_shows_every_option(cls):
    parameters = inspect.signature(cls).parameters
    assert list(parameters)[0] == "mode"
    options = cls.spec.accepted
    assert set(parameters) == set(options)
    for name in cls.positional:
        assert parameters[name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    keyword_only = [p for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert {p.name for p in keyword_only} == set(options) - set(cls.positional)


def test_smp_positional_order_builds_the_same_options():
    by_position = stableloss.TverskyLoss("multiclass", [1, 2], True, True, 1.0, 255, 1e-6, 0.3, 0.7, 0.75)
    by_name = stableloss.TverskyLoss(mode="multiclass", classes=[1, 2], log_loss=True, from_logits=True, smooth=1.0,
                                     ignore_index=255, eps=1e-6, alpha=0.3, beta=0.7, gamma=0.75)
    assert by_position.options == by_name.options
    focal = stableloss.FocalLoss("binary", 0.25, 3.0, 255, True, 1e-6, "sum", True, 0.5)
    assert (focal.alpha, focal.gamma, focal.ignore_index, focal.eps, focal.reduction, focal.normalized,
            focal.reduced_threshold) == (0.25, 3.0, 255, 1e-6, "sum", True, 0.5)
    with pytest.raises(TypeError, match=r"DiceLoss takes at most 7 positional arguments"):
        stableloss.DiceLoss("binary", None, False, True, 0.0, None, 1e-7, 0.5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_option_tensors_stay_float32_when_the_module_is_cast(dtype):
    logits, target = make_case("multiclass", seed=5)
    focal = stableloss.FocalLoss("multiclass", alpha=[0.3, 0.3, 0.4], class_weights=[0.1, 0.7, 0.2])
    dice = stableloss.DiceLoss("multiclass", class_weights=[0.3, 0.3, 0.4], classes=[0, 2])
    expected = focal(logits, target), dice(logits, target)
    focal.to(dtype)
    dice.to(dtype)
    assert focal.alpha.dtype == torch.float32 and focal.class_weights.dtype == torch.float32
    assert focal.alpha.tolist() == torch.tensor([0.3, 0.3, 0.4]).tolist()
    assert dice.classes.dtype == torch.long
    torch.testing.assert_close((focal(logits, target), dice(logits, target)), expected, rtol=0, atol=0)


def test_option_tensors_follow_the_module_device_on_meta():
    dice = stableloss.DiceLoss("multiclass", class_weights=[1.0, 2.0, 3.0]).to("meta")
    assert dice.class_weights.device.type == "meta"
    assert dice.options.class_weights == (1.0, 2.0, 3.0)
