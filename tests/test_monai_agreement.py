"""``stableloss.monai`` against MONAI itself: values, ``reduction="none"`` shapes and gradients in float32.

A grid over every constructor argument of each loss (one argument at a time from the defaults, then
seeded random combinations), on 2-D and 3-D inputs, with index targets (``to_onehot_y``), one-hot
targets and soft targets, and ``ignore_index`` inside and outside the class range. MONAI is the
reference: a switch of import must change no number beyond float32 rounding.
"""

from __future__ import annotations

import random
import warnings

import pytest
import torch

import stableloss.monai as ours

monai_losses = pytest.importorskip("monai.losses")

RTOL = 1e-5
"""Relative agreement of values (the issue's bound)."""

REGION_GRID = {
    "include_background": [False],
    "to_onehot_y": [False],
    "sigmoid": [True],
    "softmax": [True],
    "other_act": [torch.tanh],
    "reduction": ["sum", "none"],
    "smooth_nr": [0.0, 1.0],
    "smooth_dr": [0.5],
    "batch": [True],
    "soft_label": [True],
}
GRIDS = {
    "DiceLoss": {**REGION_GRID, "squared_pred": [True], "jaccard": [True], "weight": [2.0, [0.5, 1.0, 3.0]],
                 "ignore_index": [1, 255]},
    "GeneralizedDiceLoss": {**REGION_GRID, "w_type": ["simple", "uniform"]},
    "TverskyLoss": {**REGION_GRID, "alpha": [0.3], "beta": [0.9], "ignore_index": [0, 255]},
    "FocalLoss": {"include_background": [False], "to_onehot_y": [False], "gamma": [0.0, 0.5, 3.0],
                  "alpha": [0.25, [0.2, 0.3, 0.5]], "weight": [2.0, [0.5, 1.0, 3.0]], "reduction": ["sum", "none"],
                  "use_softmax": [True], "ignore_index": [2, 255]},
    "DiceCELoss": {**{k: v for k, v in REGION_GRID.items() if k not in ("soft_label",)}, "reduction": ["sum"],
                   "squared_pred": [True], "jaccard": [True], "weight": [[0.5, 1.0, 3.0]], "lambda_dice": [0.3],
                   "lambda_ce": [2.0], "label_smoothing": [0.1]},
    "DiceFocalLoss": {**{k: v for k, v in REGION_GRID.items() if k not in ("soft_label",)}, "squared_pred": [True],
                      "jaccard": [True], "gamma": [0.5], "weight": [[0.5, 1.0, 3.0]], "lambda_dice": [0.3],
                      "lambda_focal": [2.0], "alpha": [0.25]},
    "GeneralizedDiceFocalLoss": {**{k: v for k, v in REGION_GRID.items() if k not in ("soft_label",)},
                                 "w_type": ["simple"], "gamma": [0.5], "weight": [[0.5, 1.0, 3.0]],
                                 "lambda_gdl": [0.3], "lambda_focal": [2.0]},
    "HausdorffDTLoss": {"alpha": [1.0, 3.0], "include_background": [True], "to_onehot_y": [False],
                        "sigmoid": [True], "softmax": [True], "other_act": [torch.tanh], "reduction": ["sum", "none"],
                        "batch": [True]},
}
BASE = {  # the defaults the grid starts from: a softmax loss on index targets
    "FocalLoss": {"to_onehot_y": True},
    "HausdorffDTLoss": {"softmax": True, "to_onehot_y": True},
}
ACTIVATIONS = ("sigmoid", "softmax", "other_act")
NO_NONE = ("DiceCELoss",)  # MONAI refuses reduction="none" there


def base(name):
    return BASE.get(name, {"softmax": True, "to_onehot_y": True})


def consistent(name, kwargs):
    """Drop combinations MONAI refuses (two activations) and keep an activation for the logits."""
    kwargs = dict(kwargs)
    chosen = [a for a in ACTIVATIONS if kwargs.get(a) not in (None, False)]
    if len(chosen) > 1:
        for extra in chosen[1:]:
            kwargs[extra] = None if extra == "other_act" else False
    if name in NO_NONE and kwargs.get("reduction") == "none":
        kwargs["reduction"] = "mean"
    return kwargs


def one_at_a_time():
    for name, grid in GRIDS.items():
        for argument, values in grid.items():
            for value in values:
                kwargs = dict(base(name))
                if argument in ACTIVATIONS:
                    kwargs = {k: v for k, v in kwargs.items() if k not in ACTIVATIONS}
                kwargs[argument] = value
                yield name, consistent(name, kwargs)


def random_combinations(count=6, seed=0):
    rng = random.Random(seed)
    for name, grid in GRIDS.items():
        for _ in range(count):
            kwargs = dict(base(name))
            for argument, values in grid.items():
                if rng.random() < 0.4:
                    kwargs[argument] = rng.choice(values)
            yield name, consistent(name, kwargs)


CASES = list(one_at_a_time()) + list(random_combinations())
SHAPES = [(2, 3, 7, 6), (2, 3, 5, 4, 3)]


def make_target(kwargs, shape, seed, soft=False):
    """Index targets (B, 1, *S) with to_onehot_y, else one-hot (or soft) (B, C, *S); ignored pixels marked."""
    gen = torch.Generator().manual_seed(seed)
    batch, channels, *spatial = shape
    labels = torch.randint(0, channels, (batch, 1, *spatial), generator=gen)
    ignore_index = kwargs.get("ignore_index")
    if kwargs.get("to_onehot_y", False):
        if ignore_index is not None:
            labels = torch.where(torch.rand(labels.shape, generator=gen) < 0.2, ignore_index, labels)
        return labels.float()
    if soft:
        return torch.rand(shape, generator=gen).softmax(dim=1)
    target = torch.nn.functional.one_hot(labels[:, 0], channels).movedim(-1, 1).float()
    if ignore_index is not None and not 0 <= ignore_index < channels:
        target = torch.where(torch.rand((batch, 1, *spatial), generator=gen) < 0.2, 0.0, target)  # no channel set
    return target


def run(loss, logits, target):
    logits = logits.clone().requires_grad_(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = loss(logits, target)
    value.sum().backward()
    return value.detach(), logits.grad, [str(w.message) for w in caught]


def assert_agree(name, kwargs, shape, seed, soft=False):
    if name == "HausdorffDTLoss" and soft:
        pytest.skip("distance fields of soft targets: the mask > 0.5 is not a soft label")
    gen = torch.Generator().manual_seed(seed + 1)
    logits = 3 * torch.randn(shape, generator=gen)
    if not any(kwargs.get(a) not in (None, False) for a in ACTIVATIONS) and name not in ("FocalLoss",):
        logits = torch.rand(shape, generator=gen)  # no activation: the input holds probabilities
    target = make_target(kwargs, shape, seed, soft=soft)
    their_kwargs = dict(kwargs)
    if name == "DiceCELoss" and isinstance(kwargs.get("weight"), list):
        their_kwargs["weight"] = torch.tensor(kwargs["weight"])  # MONAI's cross-entropy needs a tensor; ours takes both
    try:
        expected, expected_grad, their_warnings = run(getattr(monai_losses, name)(**their_kwargs), logits, target)
    except ValueError as error:  # e.g. 3 weights for the 2 classes scored without background
        with pytest.raises(ValueError, match="weight|alpha"):
            run(getattr(ours, name)(**kwargs), logits, target)
        assert "weight" in str(error) or "class_weight" in str(error) or "alpha" in str(error)
        return
    value, grad, my_warnings = run(getattr(ours, name)(**kwargs), logits, target)
    assert value.shape == expected.shape, f"{name}({kwargs}): shape {tuple(value.shape)} vs MONAI's {tuple(expected.shape)}"
    assert value.dtype == torch.float32
    scale = expected.abs().max().clamp_min(1e-3)
    torch.testing.assert_close(value, expected, rtol=RTOL, atol=RTOL * scale, msg=lambda m: f"{name}({kwargs}): {m}")
    grad_scale = expected_grad.abs().max().clamp_min(1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5 * grad_scale,
                               msg=lambda m: f"{name}({kwargs}) gradient: {m}")
    assert sorted(set(my_warnings)) == sorted(set(their_warnings))


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_values_shapes_and_gradients_agree_with_monai(name, kwargs, shape):
    assert_agree(name, kwargs, shape, seed=len(str(kwargs)))


FOCAL = [(name, kwargs) for name, kwargs in CASES if name == "FocalLoss"]


@pytest.mark.parametrize("name, kwargs", FOCAL, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FOCAL)])
def test_focal_classification_input_agrees_with_monai(name, kwargs):
    """MONAI's FocalLoss also takes (B, C) classification logits with (B, 1) or (B, C) targets."""
    assert_agree(name, kwargs, (5, 3), seed=3)


SOFT = [(name, kwargs) for name, kwargs in CASES if not kwargs.get("to_onehot_y", False)
        and kwargs.get("ignore_index") is None and name != "HausdorffDTLoss"]


@pytest.mark.parametrize("name, kwargs", SOFT, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SOFT)])
def test_soft_targets_agree_with_monai(name, kwargs):
    assert_agree(name, kwargs, SHAPES[0], seed=7, soft=True)


@pytest.mark.parametrize("name", ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "FocalLoss", "DiceCELoss",
                                  "DiceFocalLoss", "GeneralizedDiceFocalLoss", "HausdorffDTLoss"])
def test_single_channel_warnings_agree_with_monai(name):
    kwargs = {"to_onehot_y": True, "include_background": False}
    if name != "FocalLoss":  # the focal loss has no activation argument
        kwargs["softmax"] = True
    shape = (2, 1, 6, 5)
    target = (torch.rand(shape, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    expected, _, their_warnings = run(getattr(monai_losses, name)(**kwargs), logits, target)
    value, _, my_warnings = run(getattr(ours, name)(**kwargs), logits, target)
    torch.testing.assert_close(value, expected, rtol=RTOL, atol=1e-6)
    assert their_warnings and sorted(set(my_warnings)) == sorted(set(their_warnings))


@pytest.mark.parametrize("weights, weight_mode", [(None, "exp"), (None, "same"), (None, "two"), ([0.6, 0.3, 0.1], "exp")])
def test_deep_supervision_agrees_with_monai(weights, weight_mode):
    gen = torch.Generator().manual_seed(5)
    outputs = [3 * torch.randn(2, 3, 16 // 2**i, 12 // 2**i, generator=gen) for i in range(3)]
    target = torch.randint(0, 3, (2, 1, 16, 12), generator=gen).float()
    kwargs = dict(softmax=True, to_onehot_y=True)
    theirs = monai_losses.DeepSupervisionLoss(monai_losses.DiceCELoss(**kwargs), weight_mode=weight_mode, weights=weights)
    mine = ours.DeepSupervisionLoss(ours.DiceCELoss(**kwargs), weight_mode=weight_mode, weights=weights)
    torch.testing.assert_close(mine(outputs, target), theirs(outputs, target), rtol=RTOL, atol=1e-6)
    torch.testing.assert_close(mine(outputs[0], target), theirs(outputs[0], target), rtol=RTOL, atol=1e-6)


def test_constructor_signatures_match_monai():
    import inspect

    for name in ours.__all__:
        if not name[0].isupper():
            continue
        mine = inspect.signature(getattr(ours, name)).parameters
        theirs = inspect.signature(getattr(monai_losses, name)).parameters
        assert list(mine) == list(theirs), name
        for parameter in theirs:
            their_default = theirs[parameter].default
            their_default = getattr(their_default, "value", their_default)  # MONAI's enums
            assert mine[parameter].default == their_default, f"{name}.{parameter}"


def test_grid_names_every_constructor_argument():
    """An argument added to a loss without a grid entry fails here (the grid covers every option)."""
    import inspect

    for name, grid in GRIDS.items():
        parameters = set(inspect.signature(getattr(ours, name)).parameters)
        assert parameters == set(grid), name
