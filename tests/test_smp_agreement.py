"""Replacing the import of segmentation_models_pytorch.losses gives the same value in float32."""

from typing import Any

import pytest
import torch

import stableloss
from tests.inputs import make_case

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")

TOL = dict(rtol=1e-5, atol=1e-5)


def _inputs(mode, options, seed):
    logits, target = make_case(mode, seed=seed, spatial=(9, 8), batch=4)
    if "ignore_index" in options:
        ignored = torch.rand(target.shape, generator=torch.Generator().manual_seed(seed)) < 0.2
        target = target.masked_fill(ignored, options["ignore_index"])
    if options.get("from_logits") is False:
        logits = torch.softmax(logits, 1) if mode == "multiclass" else torch.sigmoid(logits)
    return logits, target


OVERLAP_OPTIONS = [
    {},
    {"log_loss": True},
    {"smooth": 1.0},
    {"eps": 1e-3, "smooth": 0.1},
    {"from_logits": False},
    {"ignore_index": 255},
]
MULTI_OPTIONS = [{"classes": [0, 2]}, {"class_weights": [0.2, 1.0, 3.0]}, {"classes": [1, 2], "class_weights": [1.0, 2.0, 0.5]}]


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("options", OVERLAP_OPTIONS, ids=str)
@pytest.mark.parametrize("name", ["DiceLoss", "JaccardLoss"])
def test_overlap_losses_match_smp(name, mode, options):
    logits, target = _inputs(mode, options, seed=20)
    theirs = getattr(smp_losses, name)(mode, **options)(logits, target)
    ours = getattr(stableloss, name)(mode, **options)(logits, target)
    torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
@pytest.mark.parametrize("options", MULTI_OPTIONS, ids=str)
@pytest.mark.parametrize("name", ["DiceLoss", "JaccardLoss"])
def test_class_options_match_smp(name, mode, options):
    logits, target = make_case(mode, seed=21, channels=3, spatial=(9, 8), batch=4)
    theirs = getattr(smp_losses, name)(mode, **options)(logits, target)
    ours = getattr(stableloss, name)(mode, **options)(logits, target)
    torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.7, 0.3), (1.0, 1.0), (0.1, 0.9)])
def test_tversky_matches_smp(mode, alpha, beta):
    logits, target = make_case(mode, seed=22, spatial=(9, 8), batch=4)
    theirs = smp_losses.TverskyLoss(mode, alpha=alpha, beta=beta)(logits, target)
    ours = stableloss.TverskyLoss(mode, alpha=alpha, beta=beta)(logits, target)
    torch.testing.assert_close(ours, theirs, **TOL)


def test_focal_tversky_single_class_matches_smp_gamma_on_the_mean():
    # With one class, per-class and on-the-mean exponents coincide.
    logits, target = make_case("binary", seed=23)
    theirs = smp_losses.TverskyLoss("binary", alpha=0.3, beta=0.7, gamma=1.5)(logits, target)
    ours = stableloss.TverskyLoss("binary", alpha=0.3, beta=0.7, gamma=1.5)(logits, target)
    torch.testing.assert_close(ours, theirs, **TOL)


def test_soft_labels_match_smp():
    logits, target = make_case("binary", seed=24, soft=True)
    for name in ("DiceLoss", "JaccardLoss"):
        torch.testing.assert_close(getattr(stableloss, name)("binary")(logits, target),
                                   getattr(smp_losses, name)("binary")(logits, target), **TOL)


FOCAL_OPTIONS: list[dict[str, Any]] = [
    {},
    {"gamma": 0.0},
    {"gamma": 1.5, "alpha": 0.25},
    {"alpha": 0.75, "normalized": True},
    {"reduced_threshold": 0.5},
    {"reduction": "sum"},
    {"from_logits": False},
]


@pytest.mark.parametrize("options", FOCAL_OPTIONS + [{"ignore_index": 255}], ids=str)
def test_binary_focal_matches_smp(options):
    logits, target = _inputs("binary", options, seed=25)
    theirs = smp_losses.FocalLoss("binary", **options)(logits, target)
    ours = stableloss.FocalLoss("binary", **options)(logits, target)
    torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("options", [o for o in FOCAL_OPTIONS if o.get("reduction") != "sum"], ids=str)
@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_multi_channel_focal_matches_smp_per_class_sigmoid(mode, options):
    logits, target = _inputs(mode, options, seed=26)
    theirs = smp_losses.FocalLoss(mode, **options)(logits, target)
    extra = {"multiclass_activation": "sigmoid"} if mode == "multiclass" else {}
    ours = stableloss.FocalLoss(mode, **options, **extra)(logits, target)
    torch.testing.assert_close(ours, theirs, **TOL)


def test_multiclass_focal_ignore_index_and_class_weights_match_smp():
    logits, target = _inputs("multiclass", {"ignore_index": 255}, seed=27)
    weights = [0.5, 1.0, 2.0]
    theirs = smp_losses.FocalLoss("multiclass", ignore_index=255, class_weights=weights)(logits, target)
    ours = stableloss.FocalLoss("multiclass", ignore_index=255, class_weights=weights, multiclass_activation="sigmoid")(logits, target)
    torch.testing.assert_close(ours, theirs, **TOL)


def test_positional_arguments_are_smps():
    logits, target = make_case("multiclass", seed=28)
    args = ("multiclass", [0, 1], True, True, 0.5, None, 1e-6)
    torch.testing.assert_close(stableloss.DiceLoss(*args)(logits, target), smp_losses.DiceLoss(*args)(logits, target), **TOL)
    targs = args + (0.2, 0.8, 1.0)
    torch.testing.assert_close(stableloss.TverskyLoss(*targs)(logits, target), smp_losses.TverskyLoss(*targs)(logits, target), **TOL)
    fargs = ("binary", 0.25, 2.0, None, True, 1e-7, "mean", False, None)
    blog, btarget = make_case("binary", seed=29)
    torch.testing.assert_close(stableloss.FocalLoss(*fargs)(blog, btarget), smp_losses.FocalLoss(*fargs)(blog, btarget), **TOL)
