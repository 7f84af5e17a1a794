"""A NaN input is the caller's bug: every loss returns NaN, wherever the NaN is (ignored pixels too).

Before, the NaN reached the Dice family's empty-class test (``NaN > 0`` is False), every class
counted as empty and the loss was exactly 0.0; the focal loss dropped NaN at ignored pixels.
"""

import math

import pytest
import torch

from tests.inputs import make_case
from tests.registry import mode_cases

MODE_CASES, MODE_IDS = mode_cases()


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
@pytest.mark.parametrize("where", ["foreground", "background", "first"])
def test_a_nan_logit_gives_a_nan_loss(info, options, mode, where):
    logits, target = make_case(mode, seed=60)
    hard = target if mode != "multiclass" else torch.nn.functional.one_hot(target, logits.shape[1]).movedim(-1, 1)
    if where == "first":
        index = (0,) * logits.dim()
    else:
        index = tuple(int(i) for i in ((hard == 1) if where == "foreground" else (hard == 0)).nonzero()[0])
    logits[index] = float("nan")
    for loss in (info.build(mode, **options)(logits, target), info.call(logits, target, mode, **options)):
        assert math.isnan(loss.item()), (index, loss)


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_a_nan_logit_at_an_ignored_pixel_gives_a_nan_loss(info, options, mode):
    if info.name in ("seed", "hybrid"):
        pytest.skip("the hybrid takes ignore_index through its parts' options")
    if not info.takes_ignore_index:
        pytest.skip(f"{info.name} has no ignore_index (registry)")
    logits, target = make_case(mode, seed=61)
    target = target.clone()
    target[0, ..., 0] = 255  # ignore the first column of the first image (every class)
    logits[0, 0, ..., 0] = float("nan")
    loss = info.call(logits, target, mode, ignore_index=255, **options)
    assert math.isnan(loss.item())
    logits[0, 0, ..., 0] = 3.0  # the same pixels finite: a finite loss (the NaN was the only problem)
    assert math.isfinite(info.call(logits, target, mode, ignore_index=255, **options).item())


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_nan_stays_in_its_class_with_unreduced_dice(reduction):
    import stableloss

    logits, target = make_case("multilabel", seed=62)
    logits[0, 1, 0, 0] = float("nan")
    loss = stableloss.dice_loss(logits, target, mode="multilabel", reduction=reduction)
    if reduction == "none":
        assert math.isfinite(loss[0].item()) and math.isnan(loss[1].item())
    else:
        assert math.isnan(loss.item())
