"""The documented empty-mask behaviour of each loss (the table of docs/choosing-a-loss.md, docstrings)."""

import pytest
import torch

import stableloss

OVERLAP = [stableloss.dice_loss, stableloss.tversky_loss, stableloss.jaccard_loss, stableloss.log_cosh_dice_loss]


@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
@pytest.mark.parametrize("foreground_logit", [-20.0, 0.0, 20.0])
def test_overlap_losses_give_zero_loss_and_gradient_on_an_empty_mask(fn, foreground_logit):
    logits = torch.full((2, 1, 8, 8), foreground_logit, requires_grad=True)
    loss = fn(logits, torch.zeros(2, 1, 8, 8), mode="binary")
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
def test_empty_class_counts_as_zero_in_the_class_mean(fn):
    logits = torch.zeros(1, 3, 4, 4)
    target = torch.zeros(1, 4, 4, dtype=torch.long)  # only class 0 present
    per_class = fn(logits, target, mode="multiclass", reduction="none")
    assert per_class[1].item() == 0.0 and per_class[2].item() == 0.0 and per_class[0].item() > 0
    torch.testing.assert_close(fn(logits, target, mode="multiclass"), per_class.mean())


def test_per_image_empty_masks_are_zero_per_image():
    logits = torch.zeros(2, 1, 4, 4)
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2] = 1.0  # image 0 has foreground, image 1 is empty
    per_image = stableloss.dice_loss(logits, target, mode="binary", per_image=True, reduction="none")
    assert per_image[1, 0].item() == 0.0 and per_image[0, 0].item() > 0


@pytest.mark.parametrize("smooth", [1.0, 10.0])
def test_ignore_empty_false_penalises_foreground_on_an_empty_mask(smooth):
    target = torch.zeros(1, 1, 8, 8)
    losses = [stableloss.dice_loss(torch.full((1, 1, 8, 8), logit), target, mode="binary", smooth=smooth, ignore_empty=False).item()
              for logit in (-10.0, 0.0, 10.0)]
    assert losses[0] < losses[1] < losses[2]
    fp = torch.sigmoid(torch.tensor(10.0)).item() * 64
    assert losses[2] == pytest.approx(1 - smooth / (0.5 * fp + smooth), rel=1e-5)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_focal_treats_an_empty_mask_as_ordinary_negatives(mode):
    target = torch.zeros(2, 2 if mode == "multilabel" else 1, 8, 8)
    losses = [stableloss.focal_loss(torch.full(target.shape, logit), target, mode=mode).item() for logit in (-10.0, 0.0, 10.0)]
    assert losses[0] < 1e-6
    assert losses[0] < losses[1] < losses[2]


def test_seed_recipe_on_an_empty_mask_is_its_focal_part():
    logits = torch.full((2, 1, 8, 8), 3.0)
    target = torch.zeros(2, 1, 8, 8)
    hybrid = stableloss.BoundaryAwareLoss("binary", boundary=None)(logits, target)
    torch.testing.assert_close(hybrid, 0.3 * stableloss.focal_loss(logits, target, mode="binary", gamma=2.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("classes", [5, 6, 12])
@pytest.mark.parametrize("scale", [10.0, 65504.0])
def test_empty_classes_stay_empty_with_many_softmax_classes(dtype, classes, scale):
    # The softmax complement of a class (the other classes' mass) can round above 1; an empty class
    # then counted a false negative and scored 1 instead of being ignored.
    from tests import reference

    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(1, classes, 4, 4, generator=gen, dtype=torch.float64) * scale).to(dtype)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    from tests.registry import BY_NAME

    names = {stableloss.dice_loss: "dice", stableloss.tversky_loss: "tversky", stableloss.jaccard_loss: "jaccard",
             stableloss.log_cosh_dice_loss: "logcosh"}
    for fn in OVERLAP:
        actual = fn(logits, target, mode="multiclass")
        expected = BY_NAME[names[fn]].reference(logits, target, mode="multiclass")
        assert reference.close(actual, expected, rtol=1e-4, atol=1e-6), (fn.__name__, actual.item(), expected.item())
        assert fn(logits, target, mode="multiclass", classes=[1]).item() == 0.0
