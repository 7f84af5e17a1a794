"""Focal loss semantics a demanding user relies on: probabilities at 0 and 1, the 65504 cap,
classification-shaped inputs, and ``class_weights`` for the softmax focal loss."""

import math

import pytest
import torch
import torch.nn.functional as F

import stableloss
from tests.inputs import make_case


def _focal_from_probabilities_float64(probs, target, eps, gamma=2.0):
    """smp's recipe in float64: clamp to [eps, 1 - eps], logit, sigmoid focal."""
    p = probs.double().clamp(eps, 1 - eps)
    logits = torch.log(p / (1 - p))
    ce = F.binary_cross_entropy_with_logits(logits, target.double(), reduction="none")
    return (1 - torch.exp(-ce)) ** gamma * ce


@pytest.mark.parametrize("eps", [1e-7, 1e-8, 1e-4, 0.3])
def test_probabilities_of_exactly_zero_and_one_match_float64(eps):
    probs = torch.tensor([[[0.0, 1.0, 0.0, 1.0, 0.5, 1e-9, 1 - 2**-24]]])
    target = torch.tensor([[[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]]])
    actual = stableloss.focal_loss(probs, target, mode="binary", from_logits=False, eps=eps, reduction="none")
    expected = _focal_from_probabilities_float64(probs, target, eps)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-4, atol=1e-7)


def test_a_wrong_certain_probability_costs_minus_log_eps():
    probs, target = torch.tensor([[[1.0]]]), torch.tensor([[[0.0]]])
    loss = stableloss.focal_loss(probs, target, mode="binary", from_logits=False, eps=1e-8, gamma=0.0)
    assert loss.item() == pytest.approx(-math.log(1e-8), rel=1e-5)  # 18.42, not 65504


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_softmax_focal_caps_an_infinite_wrong_pixel_at_65504(dtype):
    logits = torch.tensor([[[float("inf")], [float("-inf")], [0.0]]], dtype=dtype, requires_grad=True)
    labels = torch.tensor([[1]])
    loss = stableloss.focal_loss(logits, labels, mode="multiclass", reduction="none")
    assert loss.item() == 65504.0
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    # the limit gradient of cross-entropy: p - onehot, here (1, -1, 0)
    torch.testing.assert_close(logits.grad.float().flatten(), torch.tensor([1.0, -1.0, 0.0]))


@pytest.mark.parametrize("fn,kwargs", [
    (lambda x, t: stableloss.focal_loss(x, t, mode="binary", gamma=2.0, alpha=0.25, reduction="none"), {}),
])
def test_binary_classification_shape_n_matches_torchvision(fn, kwargs):
    torchvision_ops = pytest.importorskip("torchvision.ops")
    logits = torch.randn(11) * 3
    target = (torch.rand(11) > 0.5).float()
    expected = torchvision_ops.sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction="none")
    actual = fn(logits, target)
    assert actual.shape == (11,)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-7)
    loss_n1 = stableloss.focal_loss(logits[:, None], target[:, None], mode="binary", gamma=2.0, alpha=0.25)
    torch.testing.assert_close(stableloss.focal_loss(logits, target, mode="binary", gamma=2.0, alpha=0.25), loss_n1)


def test_multiclass_classification_shape_n_c_is_softmax_focal_per_sample():
    logits = torch.randn(9, 5) * 2
    labels = torch.randint(0, 5, (9,))
    log_pt = torch.log_softmax(logits.double(), 1).gather(1, labels[:, None]).squeeze(1)
    expected = -(1 - log_pt.exp()) ** 2 * log_pt
    actual = stableloss.focal_loss(logits, labels, mode="multiclass", reduction="none")
    assert actual.shape == (9,)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-7)


def test_multilabel_classification_shape_n_c():
    logits, target = torch.randn(6, 4), (torch.rand(6, 4) > 0.5).float()
    actual = stableloss.focal_loss(logits, target, mode="multilabel", gamma=0.0, reduction="none")
    torch.testing.assert_close(actual, F.binary_cross_entropy_with_logits(logits, target, reduction="none"))


@pytest.mark.parametrize("fn", [stableloss.dice_loss, stableloss.tversky_loss, stableloss.log_cosh_dice_loss])
def test_region_losses_accept_classification_shapes(fn):
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    as_pixels = fn(logits[:, :, None], labels[:, None], mode="multiclass")  # one pixel per sample
    torch.testing.assert_close(fn(logits, labels, mode="multiclass"), as_pixels)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_softmax_class_weights_are_cross_entropy_weights(reduction, ignore_index):
    logits, target = make_case("multiclass", seed=80, spatial=(5, 6))
    if ignore_index is not None:
        target[0, :2] = ignore_index
    weights = [0.2, 1.0, 3.0]
    actual = stableloss.focal_loss(logits, target, mode="multiclass", gamma=0.0, class_weights=weights,
                                   reduction=reduction, ignore_index=ignore_index)
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights), reduction=reduction,
                               ignore_index=-100 if ignore_index is None else ignore_index)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_softmax_class_weights_with_focusing_follow_the_documented_formula():
    logits, target = make_case("multiclass", seed=81, spatial=(5, 6))
    weights = torch.tensor([0.5, 2.0, 1.0])
    per_pixel = stableloss.focal_loss(logits, target, mode="multiclass", gamma=2.0, reduction="none")
    pixel_weight = weights[target]
    expected = (pixel_weight * per_pixel).sum() / pixel_weight.sum()
    actual = stableloss.FocalLoss("multiclass", gamma=2.0, class_weights=weights)(logits, target)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("route", ["backward", "create_graph", "func"])
def test_confident_positive_focal_gradient_is_exact_on_every_autograd_route(route):
    # the option-spec property test found it: autograd of max(x, 0) - t x + log1p(exp(-|x|)) rounded
    # 1 - 1 - sigmoid(-x) to 0 for x > 17 on the differentiable routes
    x = torch.tensor([[[17.5, 20.0, 30.0]]], dtype=torch.float32, requires_grad=True)
    t = torch.ones(1, 1, 3)
    x64 = x.detach().double().requires_grad_(True)
    expected, = torch.autograd.grad(stableloss.focal_loss(x64, t.double(), mode="binary", reduction="sum"), x64)
    if route == "func":
        grad = torch.func.grad(lambda v: stableloss.focal_loss(v, t, mode="binary", reduction="sum"))(x.detach())
    else:
        grad, = torch.autograd.grad(stableloss.focal_loss(x, t, mode="binary", reduction="sum"), x,
                                    create_graph=route == "create_graph")
    assert (grad < 0).all()
    torch.testing.assert_close(grad.double(), expected, rtol=1e-3, atol=0)
