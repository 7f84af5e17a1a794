"""MONAI's own unit-test vectors, run against ``stableloss.monai``.

The constructor arguments, inputs, targets and expected values below are MONAI's (Apache-2.0,
repository Project-MONAI/MONAI, ``tests/losses/test_dice_loss.py``, ``test_generalized_dice_loss.py``,
``test_dice_ce_loss.py``, ``test_dice_focal_loss.py``, ``test_generalized_dice_focal_loss.py``,
``test_tversky_loss.py``, ``test_focal_loss.py``, ``test_hausdorff_loss.py`` and ``test_ds_loss.py``,
mirror commit d388d1c6), transcribed here as data; the test code is our own.

Differences from MONAI's tests, on purpose:

* MONAI raises ``AssertionError`` for a target of the wrong shape; ``stableloss.monai`` raises
  ``ValueError`` there, so those checks expect ``ValueError``.
* Where MONAI expects a ``ValueError`` for a bad argument we accept ``ValueError`` or ``TypeError``
  and require the message to name the argument.
* Where MONAI checks only that *a* warning is raised we check the ``UserWarning`` and its message.
* MONAI's random-input tests (the Dice+Focal compositions, focal vs BCE) run here on seeded inputs,
  with fewer repetitions of the focal-vs-BCE comparisons (3 instead of 100 random batches).

Left out: the TorchScript tests (``test_script`` / ``test_script_save``, every file); the CUDA copies
of the focal and Hausdorff vectors (the same vectors on ``device="cuda"``); ``LogHausdorffDTLoss``
(``TesLogtHausdorffDTLoss`` in ``test_hausdorff_loss.py``), which ``stableloss.monai`` does not have;
``MaskedDiceLoss`` and the other loss files of ``tests/losses``. Nothing else was left out.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stableloss.monai import (
    DeepSupervisionLoss,
    DiceCELoss,
    DiceFocalLoss,
    DiceLoss,
    FocalLoss,
    GeneralizedDiceFocalLoss,
    GeneralizedDiceLoss,
    HausdorffDTLoss,
    TverskyLoss,
)

t = torch.tensor


def _log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=1)


def _close(result: torch.Tensor, expected, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    torch.testing.assert_close(result.detach().cpu(), torch.tensor(expected, dtype=result.dtype), rtol=rtol, atol=atol)


# Inputs that recur across MONAI's files (same values, written once).
X_1122 = t([[[[1.0, -1.0], [-1.0, 1.0]]]])  # (1, 1, 2, 2)
Y_1122 = t([[[[1.0, 0.0], [1.0, 1.0]]]])
X_2122 = t([[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]])  # (2, 1, 2, 2)
Y_2122 = t([[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]])
X_2122_Z = t([[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]])  # (2, 1, 2, 2), note the -0.0
SOFT_2122 = t([[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]])  # (2, 1, 2, 2), input == target
X_223_HARD = t([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])  # (2, 2, 3)
Y_213_HARD = t([[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]])  # (2, 1, 3)
X_223 = t([[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])  # (2, 2, 3)
Y_213 = t([[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]])  # (2, 1, 3)

CHN_1 = torch.ones((1, 1, 3))  # single-channel input / target used by the option and warning checks


# ---------------------------------------------------------------------------------------------------
# DiceLoss (tests/losses/test_dice_loss.py); MONAI's tolerance rtol=1e-5.
# ---------------------------------------------------------------------------------------------------

DICE_CASES = [
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
                 X_1122, Y_1122, 0.307576, id="dice-00-sigmoid"),
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_2122, Y_2122, 0.416657, id="dice-01-sigmoid-batch2"),
    pytest.param({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": True},
                 SOFT_2122, SOFT_2122, 0.0, id="dice-02-soft_label"),
    pytest.param({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": False},
                 SOFT_2122, SOFT_2122, 0.307773, id="dice-03-no_soft_label"),
    pytest.param({"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0},
                 X_223_HARD, Y_213_HARD, 0.0, id="dice-04-onehot-nobg-nosmooth"),
    pytest.param({"include_background": True, "to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4,
                  "smooth_dr": 1e-4},
                 X_223, Y_213, 0.435050, id="dice-05-onehot-sigmoid"),
    pytest.param({"include_background": True, "to_onehot_y": True, "sigmoid": True, "reduction": "none",
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, [[[0.296529], [0.415136]], [[0.599976], [0.428559]]], id="dice-06-onehot-sigmoid-none"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4,
                  "smooth_dr": 1e-4},
                 X_223, Y_213, 0.383713, id="dice-07-onehot-softmax"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "sum",
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, 1.534853, id="dice-08-onehot-softmax-sum"),
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
                 X_1122, Y_1122, 0.307576, id="dice-09-sigmoid-repeat"),
    pytest.param({"include_background": True, "sigmoid": True, "squared_pred": True},
                 X_1122, Y_1122, 0.178337, id="dice-10-squared_pred"),
    pytest.param({"include_background": True, "sigmoid": True, "jaccard": True},
                 X_1122, Y_1122, 0.470451, id="dice-11-jaccard"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_2122, Y_2122, 0.999963, id="dice-12-tanh"),
    pytest.param({"include_background": True, "to_onehot_y": True, "other_act": _log_softmax,
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, -8.522593, id="dice-13-log_softmax"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "smooth_nr": 1e-4, "smooth_dr": 1e-4,
                  "batch": True},
                 X_2122_Z, Y_2122, 0.774718, id="dice-14-tanh-batch"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "smooth_nr": 0, "smooth_dr": 1e-4,
                  "batch": True},
                 X_2122_Z, Y_2122, 0.774733, id="dice-15-tanh-batch-nr0"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "smooth_nr": 0, "smooth_dr": 1e-4,
                  "batch": False},
                 X_2122_Z, Y_2122, 0.840058, id="dice-16-tanh-nobatch-nr0"),
    pytest.param({"include_background": True, "to_onehot_y": True, "other_act": _log_softmax,
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4, "weight": (0, 1)},
                 X_223, Y_213, -8.268515, id="dice-17-log_softmax-weight"),
]


@pytest.mark.parametrize(("kwargs", "input", "target", "expected"), DICE_CASES)
def test_dice_loss_vectors(kwargs, input, target, expected):
    _close(DiceLoss(**kwargs)(input, target), expected)


# ---------------------------------------------------------------------------------------------------
# GeneralizedDiceLoss (tests/losses/test_generalized_dice_loss.py); MONAI's tolerance rtol=1e-5.
# ---------------------------------------------------------------------------------------------------

GDL_CASES = [
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
                 X_1122, Y_1122, 0.307576, id="gdl-00-sigmoid"),
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_2122, Y_2122, 0.416597, id="gdl-01-sigmoid-batch2"),
    pytest.param({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": True},
                 SOFT_2122, SOFT_2122, 0.0, id="gdl-02-soft_label"),
    pytest.param({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": False},
                 SOFT_2122, SOFT_2122, 0.307748, id="gdl-03-no_soft_label"),
    pytest.param({"include_background": False, "to_onehot_y": True, "smooth_nr": 0.0, "smooth_dr": 0.0},
                 X_223_HARD, Y_213_HARD, 0.0, id="gdl-04-onehot-nobg-nosmooth"),
    pytest.param({"include_background": True, "to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4,
                  "smooth_dr": 1e-4},
                 X_223, Y_213, 0.469964, id="gdl-05-onehot-sigmoid"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4,
                  "smooth_dr": 1e-4},
                 X_223, Y_213, 0.414507, id="gdl-06-onehot-softmax"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "sum",
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, 0.829015, id="gdl-07-onehot-softmax-sum"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "none",
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, [[[0.273476]], [[0.555539]]], id="gdl-08-onehot-softmax-none"),
    pytest.param({"include_background": False, "to_onehot_y": True, "smooth_nr": 1e-8, "smooth_dr": 1e-8},
                 X_223_HARD, t([[[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]]), 0.0, id="gdl-09-empty-target"),
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
                 X_1122, Y_1122, 0.307576, id="gdl-10-sigmoid-repeat"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "w_type": "simple",
                  "smooth_nr": 0, "smooth_dr": 0},
                 t([[[0.0, 10.0, 10.0, 10.0], [10.0, 0.0, 0.0, 0.0]]]), t([[[1, 1, 0, 0]]]), 0.250023,
                 id="gdl-11-w_type-simple"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_2122, Y_2122, 0.99970, id="gdl-12-tanh"),
    pytest.param({"include_background": True, "to_onehot_y": True, "other_act": _log_softmax,
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, -0.097833, id="gdl-13-log_softmax"),
]


@pytest.mark.parametrize(("kwargs", "input", "target", "expected"), GDL_CASES)
def test_generalized_dice_loss_vectors(kwargs, input, target, expected):
    _close(GeneralizedDiceLoss(**kwargs)(input, target), expected)


def test_generalized_dice_loss_differentiable():
    prediction = torch.ones((1, 1, 1, 3), requires_grad=True)
    target = torch.ones((1, 1, 1, 3), requires_grad=True)
    assert GeneralizedDiceLoss()(prediction, target).grad_fn is not None


def test_generalized_dice_loss_batch_differentiable():
    prediction = torch.zeros(2, 3, 3, 3, requires_grad=True)
    target = torch.zeros(2, 3, 3, 3, requires_grad=True)
    assert GeneralizedDiceLoss(batch=True)(prediction, target).grad_fn is not None


# ---------------------------------------------------------------------------------------------------
# Option, shape and warning checks shared by DiceLoss, GeneralizedDiceLoss, TverskyLoss and
# HausdorffDTLoss (test_ill_shape / test_ill_opts / test_input_warnings of their MONAI files).
# ---------------------------------------------------------------------------------------------------

REGION_LOSSES = [
    pytest.param(DiceLoss, id="dice"),
    pytest.param(GeneralizedDiceLoss, id="gdl"),
    pytest.param(TverskyLoss, id="tversky"),
    pytest.param(HausdorffDTLoss, id="hausdorff"),
]

ILL_SHAPES = {  # MONAI's (input shape, target shape) per loss
    DiceLoss: ((1, 2, 3), (4, 5, 6)),
    GeneralizedDiceLoss: ((1, 2, 3), (4, 5, 6)),
    TverskyLoss: ((2, 2, 3), (4, 5, 6)),
    HausdorffDTLoss: ((1, 1, 2, 3), (1, 4, 5, 6)),
}


@pytest.mark.parametrize("loss_cls", REGION_LOSSES)
def test_region_ill_shape(loss_cls):
    input_shape, target_shape = ILL_SHAPES[loss_cls]
    # MONAI raises AssertionError here; stableloss.monai raises ValueError.
    with pytest.raises(ValueError):
        loss_cls()(torch.ones(input_shape), torch.ones(target_shape))


@pytest.mark.parametrize("loss_cls", [pytest.param(DiceLoss, id="dice"), pytest.param(GeneralizedDiceLoss, id="gdl"),
                                      pytest.param(HausdorffDTLoss, id="hausdorff")])
def test_region_sigmoid_and_softmax_refused(loss_cls):
    with pytest.raises((ValueError, TypeError), match="sigmoid"):
        loss_cls(sigmoid=True, softmax=True)


@pytest.mark.parametrize("loss_cls", REGION_LOSSES)
@pytest.mark.parametrize("reduction", ["unknown", None], ids=["unknown", "None"])
def test_region_bad_reduction_refused(loss_cls, reduction):
    # MONAI raises when called; ours may already refuse in the constructor.
    with pytest.raises((ValueError, TypeError), match="reduction"):
        loss_cls(reduction=reduction)(CHN_1, CHN_1)


WARNING_SETTINGS = [
    pytest.param({"include_background": False}, "`include_background=False`", id="include_background"),
    pytest.param({"include_background": True, "softmax": True}, "`softmax=True`", id="softmax"),
    pytest.param({"include_background": True, "to_onehot_y": True}, "`to_onehot_y=True`", id="to_onehot_y"),
]


@pytest.mark.parametrize("loss_cls", REGION_LOSSES)
@pytest.mark.parametrize(("kwargs", "setting"), WARNING_SETTINGS)
def test_region_single_channel_warnings(loss_cls, kwargs, setting):
    # MONAI's DiceLoss / GeneralizedDiceLoss tests use (1, 1, 3); TverskyLoss's (1, 1, 3) with
    # include_background=False in all three; HausdorffDTLoss's (1, 1, 1, 3), also with include_background=False.
    if loss_cls in (TverskyLoss, HausdorffDTLoss):
        kwargs = {**kwargs, "include_background": False}
    shape = (1, 1, 1, 3) if loss_cls is HausdorffDTLoss else (1, 1, 3)
    chn = torch.ones(shape)
    with pytest.warns(UserWarning, match=f"single channel prediction, {setting} ignored"):
        loss_cls(**kwargs)(chn, chn)


# ---------------------------------------------------------------------------------------------------
# DiceCELoss (tests/losses/test_dice_ce_loss.py); MONAI's tolerance atol=rtol=1e-4 (expected values are
# given to 4 decimals).
# ---------------------------------------------------------------------------------------------------

X_223_BIG = t([[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])

DICE_CE_CASES = [
    pytest.param({"to_onehot_y": True}, X_223_HARD, Y_213_HARD, 0.3133, id="dice_ce-00-onehot"),
    pytest.param({"to_onehot_y": False}, X_223_HARD,
                 t([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]), 0.3133,
                 id="dice_ce-01-onehot_target"),
    pytest.param({"to_onehot_y": False}, X_223_HARD,
                 t([[[1, 1, 0], [0, 0, 1]], [[1, 0, 1], [0, 1, 0]]], dtype=torch.uint8), 0.3133,
                 id="dice_ce-02-onehot_target-uint8"),
    pytest.param({"include_background": False, "to_onehot_y": True, "weight": t([1.0, 1.0])},
                 X_223_BIG, Y_213_HARD, 0.2088, id="dice_ce-03-nobg-weight"),
    pytest.param({"include_background": False, "to_onehot_y": True, "weight": t([1.0, 1.0]),
                  "lambda_dice": 1.0, "lambda_ce": 2.0},
                 X_223_BIG, Y_213_HARD, 0.4176, id="dice_ce-04-lambda_ce2"),
    pytest.param({"include_background": False, "to_onehot_y": True, "weight": t([0.0, 1.0])},
                 X_223_BIG, Y_213_HARD, 0.3133, id="dice_ce-05-weight01"),
    pytest.param({"weight": t([0.5]), "sigmoid": True},
                 t([[[0.8, 0.6, 0.0]], [[0.0, 0.0, 0.9]]]), Y_213_HARD, 1.445239, id="dice_ce-06-bce"),
]


@pytest.mark.parametrize(("kwargs", "input", "target", "expected"), DICE_CE_CASES)
def test_dice_ce_loss_vectors(kwargs, input, target, expected):
    _close(DiceCELoss(**kwargs)(input, target), expected, rtol=1e-4, atol=1e-4)


COMBINED_LOSSES = [
    pytest.param(DiceCELoss, id="dice_ce"),
    pytest.param(DiceFocalLoss, id="dice_focal"),
    pytest.param(GeneralizedDiceFocalLoss, id="gdl_focal"),
]


@pytest.mark.parametrize("loss_cls", COMBINED_LOSSES)
@pytest.mark.parametrize(
    ("input_shape", "target_shape"),
    [
        # MONAI raises AssertionError for this first one; stableloss.monai raises ValueError.
        pytest.param((1, 2, 3), (1, 2, 5), id="spatial"),
        pytest.param((1, 2, 3), (1, 1, 2, 3), id="ndim"),
        pytest.param((1, 3, 4, 4), (1, 2, 4, 4), id="channels"),
    ],
)
def test_combined_ill_shape(loss_cls, input_shape, target_shape):
    with pytest.raises(ValueError):
        loss_cls()(torch.ones(input_shape), torch.ones(target_shape))


def test_dice_focal_negative_lambda_refused():
    with pytest.raises((ValueError, TypeError), match="lambda_dice"):
        DiceFocalLoss(lambda_dice=-1.0)


def test_generalized_dice_focal_negative_lambda_refused():
    with pytest.raises((ValueError, TypeError), match="lambda_gdl"):
        GeneralizedDiceFocalLoss(lambda_gdl=-1.0)


# ---------------------------------------------------------------------------------------------------
# DiceFocalLoss (tests/losses/test_dice_focal_loss.py): MONAI checks on random inputs that the loss is
# DiceLoss + lambda_focal * FocalLoss. Seeded inputs here; MONAI uses numpy's default assert_allclose
# tolerance (rtol=1e-7), looser here (1e-5) since the two sides are summed in a different order.
# ---------------------------------------------------------------------------------------------------

REDUCTIONS = ["sum", "mean", "none"]
WEIGHTS_3 = [pytest.param(None, id="w_none"), pytest.param(t([1.0, 1.0, 2.0]), id="w_tensor"),
             pytest.param((3, 2.0, 1), id="w_tuple")]
LAMBDAS_FOCAL = [0.5, 1.0, 1.5]


def _random_pred_label(size, high, seed=0):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(low=0, high=high, size=size, generator=g)
    pred = torch.randn(size, generator=g)
    return pred, label


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", WEIGHTS_3)
@pytest.mark.parametrize("lambda_focal", LAMBDAS_FOCAL)
def test_dice_focal_onehot_target_include_bg(reduction, weight, lambda_focal):
    pred, label = _random_pred_label([3, 3, 5, 5], high=2)
    common = {"include_background": True, "to_onehot_y": False, "reduction": reduction, "weight": weight}
    result = DiceFocalLoss(gamma=1.0, lambda_focal=lambda_focal, **common)(pred, label)
    expected = DiceLoss(**common)(pred, label) + lambda_focal * FocalLoss(gamma=1.0, **common)(pred, label)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


NO_BG_CASES = [  # (size, to_onehot_y, weight); MONAI: weight 2.0 for 2 channels, per-class weights for 3
    pytest.param([3, 3, 5, 5], True, t([1.0, 2.0]), id="3ch-onehot-w_tensor"),
    pytest.param([3, 3, 5, 5], True, (2.0, 1), id="3ch-onehot-w_tuple"),
    pytest.param([3, 2, 5, 5], False, 2.0, id="2ch-w_scalar"),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("size", "onehot", "weight"), NO_BG_CASES)
@pytest.mark.parametrize("lambda_focal", LAMBDAS_FOCAL)
def test_dice_focal_no_bg(reduction, size, onehot, weight, lambda_focal):
    pred, label = _random_pred_label(size, high=size[1] - 1)
    if onehot:
        label = torch.argmax(label, dim=1, keepdim=True)
    common = {"include_background": False, "to_onehot_y": onehot, "reduction": reduction, "weight": weight}
    result = DiceFocalLoss(softmax=True, lambda_focal=lambda_focal, **common)(pred, label)
    # MONAI's reference: DiceLoss with softmax=True, FocalLoss with its default (sigmoid) activation.
    expected = DiceLoss(softmax=True, **common)(pred, label) + lambda_focal * FocalLoss(**common)(pred, label)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", WEIGHTS_3)
def test_dice_focal_with_alpha(reduction, weight):
    lambda_focal, alpha = 0.5, 0.25
    pred, label = _random_pred_label([3, 3, 5, 5], high=2)
    common = {"include_background": True, "to_onehot_y": False, "reduction": reduction, "weight": weight}
    result = DiceFocalLoss(gamma=1.0, lambda_focal=lambda_focal, alpha=alpha, **common)(pred, label)
    focal = FocalLoss(gamma=1.0, alpha=alpha, **common)(pred, label)
    expected = DiceLoss(**common)(pred, label) + lambda_focal * focal
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# GeneralizedDiceFocalLoss (tests/losses/test_generalized_dice_focal_loss.py): same pattern, with
# GeneralizedDiceLoss (no weight) + lambda_focal * FocalLoss (weighted). Tolerance as for DiceFocalLoss.
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", WEIGHTS_3)
@pytest.mark.parametrize("lambda_focal", LAMBDAS_FOCAL)
def test_generalized_dice_focal_onehot_target_include_bg(reduction, weight, lambda_focal):
    pred, label = _random_pred_label([3, 3, 5, 5], high=2)
    common = {"include_background": True, "to_onehot_y": False, "reduction": reduction}
    result = GeneralizedDiceFocalLoss(weight=weight, gamma=1.0, lambda_focal=lambda_focal, **common)(pred, label)
    focal = FocalLoss(weight=weight, gamma=1.0, **common)(pred, label)
    expected = GeneralizedDiceLoss(**common)(pred, label) + lambda_focal * focal
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [pytest.param(2.0, id="w_scalar"), pytest.param(t([1.0, 2.0]), id="w_tensor"),
                                    pytest.param((2.0, 1), id="w_tuple")])
@pytest.mark.parametrize("lambda_focal", LAMBDAS_FOCAL)
def test_generalized_dice_focal_no_bg(reduction, weight, lambda_focal):
    pred, label = _random_pred_label([3, 3, 5, 5], high=2)
    label = torch.argmax(label, dim=1, keepdim=True)
    common = {"include_background": False, "to_onehot_y": True, "reduction": reduction}
    result = GeneralizedDiceFocalLoss(weight=weight, lambda_focal=lambda_focal, **common)(pred, label)
    focal = FocalLoss(weight=weight, **common)(pred, label)
    expected = GeneralizedDiceLoss(**common)(pred, label) + lambda_focal * focal
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# TverskyLoss (tests/losses/test_tversky_loss.py); MONAI's tolerance rtol=1e-4 (looser than 1e-5 there).
# ---------------------------------------------------------------------------------------------------

TVERSKY_CASES = [
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
                 X_1122, Y_1122, 0.307576, id="tversky-00-sigmoid"),
    pytest.param({"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_2122, Y_2122, 0.416657, id="tversky-01-sigmoid-batch2"),
    pytest.param({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": True},
                 SOFT_2122, SOFT_2122, 0.0, id="tversky-02-soft_label"),
    pytest.param({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": False},
                 SOFT_2122, SOFT_2122, 0.307773, id="tversky-03-no_soft_label"),
    pytest.param({"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0},
                 X_223_HARD, Y_213_HARD, 0.0, id="tversky-04-onehot-nobg-nosmooth"),
    pytest.param({"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 1e-3},
                 X_223_HARD, Y_213_HARD, 0.000999, id="tversky-05-onehot-nobg-dr"),
    pytest.param({"include_background": True, "to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4,
                  "smooth_dr": 1e-4},
                 X_223, Y_213, 0.435050, id="tversky-06-onehot-sigmoid"),
    pytest.param({"include_background": True, "to_onehot_y": True, "sigmoid": True, "batch": True},
                 X_223, Y_213, 0.422979, id="tversky-07-onehot-sigmoid-batch"),
    pytest.param({"include_background": True, "to_onehot_y": True, "sigmoid": True, "reduction": "sum",
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, 1.74013, id="tversky-08-onehot-sigmoid-sum"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4,
                  "smooth_dr": 1e-4},
                 X_223, Y_213, 0.383713, id="tversky-09-onehot-softmax"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "none",
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, [[0.210961, 0.295339], [0.599952, 0.428547]], id="tversky-10-onehot-softmax-none"),
    pytest.param({"include_background": True, "sigmoid": True, "alpha": 0.3, "beta": 0.7, "smooth_nr": 1e-6,
                  "smooth_dr": 1e-6},
                 X_1122, Y_1122, 0.3589, id="tversky-11-alpha0.3"),
    pytest.param({"include_background": True, "sigmoid": True, "alpha": 0.7, "beta": 0.3, "smooth_nr": 1e-6,
                  "smooth_dr": 1e-6},
                 X_1122, Y_1122, 0.247366, id="tversky-12-alpha0.7"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_2122, Y_2122, 0.999963, id="tversky-13-tanh"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "smooth_nr": 0, "smooth_dr": 1e-3,
                  "batch": True},
                 X_2122, Y_2122, 0.999963, id="tversky-14-tanh-batch"),
    pytest.param({"include_background": True, "to_onehot_y": True, "other_act": _log_softmax,
                  "smooth_nr": 1e-4, "smooth_dr": 1e-4},
                 X_223, Y_213, -8.533317, id="tversky-15-log_softmax"),
]


@pytest.mark.parametrize(("kwargs", "input", "target", "expected"), TVERSKY_CASES)
def test_tversky_loss_vectors(kwargs, input, target, expected):
    _close(TverskyLoss(**kwargs)(input, target), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# FocalLoss (tests/losses/test_focal_loss.py); MONAI's tolerance atol=rtol=1e-4 (values to 5 decimals).
# ---------------------------------------------------------------------------------------------------

FOCAL_X = t([[[[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]]]])  # (1, 3, 2, 2)
FOCAL_Y = t([[[[0, 1], [2, 0]]]])  # (1, 1, 2, 2) class indices
FOCAL_Y_ONEHOT = t([[[[1, 0], [0, 1]], [[0, 1], [0, 0]], [[0, 0], [1, 0]]]])  # F.one_hot(FOCAL_Y), (1, 3, 2, 2)

FOCAL_CASES = [
    pytest.param({"to_onehot_y": True}, FOCAL_Y, 0.34959, id="focal-00-onehot"),
    pytest.param({"to_onehot_y": False}, FOCAL_Y_ONEHOT, 0.34959, id="focal-01-onehot_target"),
    pytest.param({"to_onehot_y": True, "include_background": False}, FOCAL_Y, 0.36498, id="focal-02-nobg"),
    pytest.param({"to_onehot_y": True, "alpha": 0.8}, FOCAL_Y, 0.08423, id="focal-03-alpha"),
    pytest.param({"to_onehot_y": True, "reduction": "none"}, FOCAL_Y,
                 [[[[0.02266, 0.70187], [0.37741, 0.17329]],
                   [[0.70187, 0.02266], [0.37741, 0.17329]],
                   [[0.70187, 0.70187], [0.06757, 0.17329]]]],
                 id="focal-04-none"),
    pytest.param({"to_onehot_y": True, "weight": t([0.5, 0.1, 0.2]), "reduction": "none"}, FOCAL_Y,
                 [[[[0.01133, 0.35093], [0.18871, 0.08664]],
                   [[0.07019, 0.00227], [0.03774, 0.01733]],
                   [[0.14037, 0.14037], [0.01352, 0.03466]]]],
                 id="focal-05-weight-none"),
    pytest.param({"to_onehot_y": True, "use_softmax": True}, FOCAL_Y, 0.16276, id="focal-06-softmax"),
    pytest.param({"to_onehot_y": True, "alpha": 0.8, "use_softmax": True},
                 FOCAL_Y, 0.08138, id="focal-07-softmax-alpha"),
]


@pytest.mark.parametrize(("kwargs", "target", "expected"), FOCAL_CASES)
def test_focal_loss_vectors(kwargs, target, expected):
    _close(FocalLoss(**kwargs)(FOCAL_X, target), expected, rtol=1e-4, atol=1e-4)


# MONAI compares max |focal(gamma=0) - BCEWithLogits| over 100 random batches with assertAlmostEqual(places=3),
# i.e. an absolute difference below 5e-4 (atol=1e-6 for the unreduced comparison); 3 seeded batches here.
FOCAL_BCE_CASES = [
    pytest.param({"to_onehot_y": False, "gamma": 0.0, "reduction": "mean", "weight": 1.0}, (128, 10, 8, 4), False,
                 5e-4, id="2d-mean"),
    pytest.param({"to_onehot_y": False, "gamma": 0.0, "reduction": "none", "weight": 1.0}, (128, 10, 8, 4), False,
                 1e-6, id="2d-none"),
    pytest.param({"to_onehot_y": True, "gamma": 0.0, "reduction": "mean"}, (128, 10, 8, 4), True, 5e-4,
                 id="2d-onehot_label"),
    pytest.param({"to_onehot_y": True, "gamma": 0.0, "reduction": "mean"}, (128, 10), True, 5e-4, id="classification"),
]


@pytest.mark.parametrize(("kwargs", "shape", "indices", "atol"), FOCAL_BCE_CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_focal_gamma0_is_bce(kwargs, shape, indices, atol, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, requires_grad=True)
    num_classes = shape[1]
    if indices:
        label = torch.randint(0, num_classes, (shape[0], 1, *shape[2:]), generator=g)
        onehot = F.one_hot(label.squeeze(1), num_classes).movedim(-1, 1).float()
    else:
        label = torch.randint(0, 2, shape, generator=g).float()
        onehot = label
    out = FocalLoss(**kwargs)(x, label)
    ce = torch.nn.BCEWithLogitsLoss(reduction=kwargs["reduction"])(x, onehot)
    torch.testing.assert_close(out.detach(), ce.detach(), rtol=0.0, atol=atol)


def test_focal_gamma01_differs_from_bce():
    # MONAI: assertNotAlmostEqual(max_error, 0, places=3) over 100 batches; one seeded batch here.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(128, 10, generator=g)
    label = torch.randint(0, 10, (128, 1), generator=g)
    out = FocalLoss(to_onehot_y=True, gamma=0.1, reduction="mean")(x, label)
    ce = torch.nn.BCEWithLogitsLoss(reduction="mean")(x, F.one_hot(label.squeeze(1), 10).float())
    assert abs(float(out) - float(ce)) >= 5e-4


def _very_good(target: torch.Tensor, num_classes: int, scale: float, shift: float) -> torch.Tensor:
    # MONAI's construction: scale * one_hot(target) - shift, channels moved to dim 1.
    return scale * F.one_hot(target, num_classes=num_classes).movedim(-1, 1).float() - shift


SEG_2D_BIN = t([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
SEG_2D_EMPTY = t([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
SEG_2D_MULTI = t([[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]])
SEG_3D_BIN = torch.stack([SEG_2D_BIN, SEG_2D_BIN, SEG_2D_BIN])  # MONAI writes the same 4x4 slice three times

GOOD_PRED_CASES = [  # (target without batch dim, num_classes, scale, shift, also check a one-hot target)
    pytest.param(SEG_2D_BIN, 2, 100.0, 50.0, False, id="bin_seg_2d"),
    pytest.param(SEG_2D_EMPTY, 2, 1000.0, 500.0, False, id="empty_class_2d"),
    pytest.param(SEG_2D_MULTI, 6, 1000.0, 500.0, True, id="multi_class_seg_2d"),
    pytest.param(SEG_3D_BIN, 2, 1000.0, 500.0, True, id="bin_seg_3d"),
]


@pytest.mark.parametrize(("target", "num_classes", "scale", "shift", "check_onehot"), GOOD_PRED_CASES)
@pytest.mark.parametrize("use_softmax", [True, False], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("alpha", [None, 0.5], ids=["no_alpha", "alpha0.5"])
def test_focal_very_good_prediction_near_zero(target, num_classes, scale, shift, check_onehot, use_softmax, alpha):
    target = target.unsqueeze(0)
    pred = _very_good(target, num_classes, scale, shift)
    # MONAI: assertAlmostEqual(loss, 0.0, places=3), i.e. |loss| < 5e-4.
    loss = FocalLoss(to_onehot_y=True, alpha=alpha, use_softmax=use_softmax)(pred, target.unsqueeze(1))
    assert abs(float(loss)) < 5e-4
    if check_onehot:
        onehot = F.one_hot(target, num_classes=num_classes).movedim(-1, 1)
        loss = FocalLoss(to_onehot_y=False, alpha=alpha, use_softmax=use_softmax)(pred, onehot)
        assert abs(float(loss)) < 5e-4


def test_focal_foreground():
    background = torch.ones(1, 1, 5, 5)
    foreground = torch.zeros(1, 1, 5, 5)
    target = torch.cat((background, foreground), dim=1)
    input = torch.cat((background, foreground), dim=1)
    target[:, 0, 2, 2] = 0
    target[:, 1, 2, 2] = 1
    fgbg = FocalLoss(to_onehot_y=False, include_background=True)(input, target)
    fg = FocalLoss(to_onehot_y=False, include_background=False)(input, target)
    # MONAI: assertAlmostEqual(..., places=3).
    assert abs(float(fgbg) - 0.1116) < 5e-4
    assert abs(float(fg) - 0.1733) < 5e-4


def test_focal_bad_reduction_refused():
    with pytest.raises((ValueError, TypeError), match="reduction"):
        FocalLoss(reduction="unknown")(torch.ones((1, 2, 3)), torch.ones((1, 2, 3)))


def test_focal_ill_shape():
    with pytest.raises(ValueError):
        FocalLoss(reduction="mean")(torch.ones((1, 2, 3)), torch.ones((1, 3)))


@pytest.mark.parametrize(
    ("include_background", "weight"),
    [
        pytest.param(True, (1.0, 1.0, 2.0), id="too_few"),
        pytest.param(False, (1.0, 1.0, 1.0, 1.0), id="too_many"),
        pytest.param(False, (1.0, 1.0, -1.0), id="negative"),
    ],
)
def test_focal_bad_class_weight_refused(include_background, weight):
    x = torch.ones((1, 4, 3, 3))
    with pytest.raises((ValueError, TypeError), match="weight"):
        FocalLoss(include_background=include_background, weight=weight)(x, x)


@pytest.mark.parametrize(
    ("kwargs", "shape", "message"),
    [
        pytest.param({"to_onehot_y": True}, (1, 1, 3), "single channel prediction, `to_onehot_y=True` ignored",
                     id="to_onehot_y"),
        pytest.param({"include_background": False}, (1, 1, 3),
                     "single channel prediction, `include_background=False` ignored", id="include_background"),
        pytest.param({"include_background": False, "use_softmax": True, "alpha": 0.5}, (1, 3, 3),
                     "`include_background=False`, scalar `alpha` ignored when using softmax", id="softmax_alpha"),
    ],
)
def test_focal_warnings(kwargs, shape, message):
    x = torch.ones(shape)
    with pytest.warns(UserWarning, match=message):
        FocalLoss(**kwargs)(x, x)


# ---------------------------------------------------------------------------------------------------
# HausdorffDTLoss (tests/losses/test_hausdorff_loss.py, CPU vectors); MONAI's tolerance rtol=1e-5.
# ---------------------------------------------------------------------------------------------------

X_2231 = t([[[[-1.0], [0.0], [1.0]], [[1.0], [0.0], [-1.0]]], [[[0.0], [0.0], [0.0]], [[0.0], [0.0], [0.0]]]])
Y_2131 = t([[[[1.0], [0.0], [0.0]]], [[[1.0], [1.0], [0.0]]]])
X_1222 = t([[[[1.0, -1.0], [-1.0, 1.0]], [[1.0, -1.0], [-1.0, 1.0]]]])
Y_1222 = t([[[[1.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]])

HAUSDORFF_CASES = [
    pytest.param({"include_background": True, "sigmoid": True}, X_1122, Y_1122, 0.509329, id="hausdorff-00-2d"),
    pytest.param({"include_background": True, "sigmoid": True},
                 t([[[[[1.0, -1.0], [-1.0, 1.0]]]]]), t([[[[[1.0, 0.0], [1.0, 1.0]]]]]), 0.509329,
                 id="hausdorff-01-3d-depth1"),
    pytest.param({"include_background": True, "sigmoid": True},
                 t([[[[[1.0, -1.0], [1.0, -1.0]], [[-1.0, 1.0], [-1.0, 1.0]]]]]),
                 t([[[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]]]]), 0.375718, id="hausdorff-02-3d"),
    pytest.param({"include_background": True, "sigmoid": True}, X_1222, Y_1222, 0.326994, id="hausdorff-03-2ch"),
    pytest.param({"include_background": True, "sigmoid": True}, X_2122, Y_2122, 0.455082, id="hausdorff-04-batch2"),
    pytest.param({"include_background": False, "sigmoid": True}, X_1222, Y_1222, 0.144659, id="hausdorff-05-2ch-nobg"),
    pytest.param({"include_background": True, "to_onehot_y": True, "sigmoid": True, "reduction": "none"},
                 X_2231, Y_2131, [[[[0.407765]], [[0.407765]]], [[[0.5000]], [[0.5000]]]],
                 id="hausdorff-06-onehot-none"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True},
                 X_2231, Y_2131, 0.357016, id="hausdorff-07-onehot-softmax"),
    pytest.param({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "sum"},
                 X_2231, Y_2131, 1.428062, id="hausdorff-08-onehot-softmax-sum"),
    pytest.param({"include_background": True, "sigmoid": True}, X_1122, Y_1122, 0.509329, id="hausdorff-09-2d-repeat"),
    pytest.param({"include_background": True, "other_act": torch.tanh},
                 X_2122, Y_2122, 1.870039, id="hausdorff-10-tanh"),
    pytest.param({"include_background": True, "to_onehot_y": True, "other_act": _log_softmax},
                 X_2231, Y_2131, 4.366613, id="hausdorff-11-log_softmax"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "batch": True},
                 X_2122_Z, Y_2122, 1.607137, id="hausdorff-12-tanh-batch"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "batch": True},
                 X_2122_Z, Y_2122, 1.607137, id="hausdorff-13-tanh-batch-repeat"),
    pytest.param({"include_background": True, "other_act": torch.tanh, "batch": False},
                 X_2122_Z, Y_2122, 1.607137, id="hausdorff-14-tanh-nobatch"),
]


@pytest.mark.parametrize(("kwargs", "input", "target", "expected"), HAUSDORFF_CASES)
def test_hausdorff_loss_vectors(kwargs, input, target, expected):
    _close(HausdorffDTLoss(**kwargs)(input, target), expected)


# ---------------------------------------------------------------------------------------------------
# DeepSupervisionLoss (tests/losses/test_ds_loss.py); MONAI's tolerance atol=rtol=1e-4.
# ---------------------------------------------------------------------------------------------------

DS_X = t([[[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]])  # (1, 2, 2, 3)
DS_X_LIST = [
    DS_X,
    t([[[[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]]),  # (1, 2, 2, 2)
    t([[[[1.0], [0.0]], [[1.0], [0.0]]]]),  # (1, 2, 2, 1)
]
DS_Y = t([[[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]])  # (1, 1, 2, 3)

DS_CASES = [
    pytest.param(DiceCELoss, {}, DS_X, 0.606557, id="ds-dice_ce-00-single"),
    pytest.param(DiceCELoss, {}, DS_X_LIST, 1.78144, id="ds-dice_ce-01-list-exp"),
    pytest.param(DiceCELoss, {"weight_mode": "same"}, DS_X_LIST, 3.5529, id="ds-dice_ce-02-list-same"),
    pytest.param(DiceCELoss, {"weight_mode": "two"}, DS_X_LIST, 2.07973, id="ds-dice_ce-03-list-two"),
    pytest.param(DiceCELoss, {"weights": [0.1, 0.2, 0.3]}, DS_X_LIST, 0.76924, id="ds-dice_ce-04-list-weights"),
    pytest.param(DiceLoss, {}, DS_X, 0.166666, id="ds-dice-00-single"),
    pytest.param(DiceLoss, {}, DS_X_LIST, 0.666665, id="ds-dice-01-list"),
    pytest.param(DiceFocalLoss, {}, DS_X, 0.32124, id="ds-dice_focal-00-single"),
    pytest.param(DiceFocalLoss, {}, DS_X_LIST, 1.06452, id="ds-dice_focal-01-list"),
]


@pytest.mark.parametrize(("loss_cls", "ds_kwargs", "input", "expected"), DS_CASES)
def test_deep_supervision_vectors(loss_cls, ds_kwargs, input, expected):
    loss = DeepSupervisionLoss(loss_cls(to_onehot_y=True), **ds_kwargs)
    _close(loss(input, DS_Y), expected, rtol=1e-4, atol=1e-4)


def test_deep_supervision_ill_shape():
    loss = DeepSupervisionLoss(DiceCELoss())
    with pytest.raises(ValueError):
        loss(torch.ones((1, 2, 3)), torch.ones((1, 1, 2, 3)))


def test_deep_supervision_none_reduction_refused():
    # DiceCELoss has no reduction="none" (MONAI 1.6.1 refuses it too); ours refuses it in the constructor.
    with pytest.raises((ValueError, TypeError), match="reduction"):
        DeepSupervisionLoss(DiceCELoss(reduction="none"))(torch.ones((1, 2, 3)), torch.ones((1, 1, 2, 3)))


def test_case_counts():
    # Guards the transcription: MONAI's vector counts per file (CPU only).
    counts = {"dice": len(DICE_CASES), "gdl": len(GDL_CASES), "dice_ce": len(DICE_CE_CASES),
              "tversky": len(TVERSKY_CASES), "focal": len(FOCAL_CASES), "hausdorff": len(HAUSDORFF_CASES),
              "ds": len(DS_CASES)}
    assert counts == {"dice": 18, "gdl": 14, "dice_ce": 7, "tversky": 16, "focal": 8, "hausdorff": 15, "ds": 9}
