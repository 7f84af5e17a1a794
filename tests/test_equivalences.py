"""Identities between the losses, and function/compiled/eager agreement."""

import pytest
import torch
import torch.nn.functional as F

import stableloss
from tests.inputs import make_case
from tests.registry import MODES, mode_cases

COMPILE_CASES, COMPILE_IDS = mode_cases(("binary", "multiclass"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("options", [{}, {"per_image": True}, {"log_loss": True, "smooth": 0.5}, {"ignore_index": 1}])
def test_tversky_half_half_is_dice(mode, options):
    logits, target = make_case(mode, seed=10)
    tversky = stableloss.tversky_loss(logits, target, mode=mode, alpha=0.5, beta=0.5, **options)
    dice = stableloss.dice_loss(logits, target, mode=mode, **options)
    torch.testing.assert_close(tversky, dice, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_tversky_one_one_is_jaccard_and_matches_iou(mode):
    logits, target = make_case(mode, seed=11)
    jaccard = stableloss.jaccard_loss(logits, target, mode=mode, reduction="none")
    dice = stableloss.dice_loss(logits, target, mode=mode, reduction="none")
    torch.testing.assert_close(jaccard, stableloss.tversky_loss(logits, target, mode=mode, alpha=1.0, beta=1.0, reduction="none"))
    # Per class, IoU = D / (2 - D), i.e. 1 - J = 2 (1 - D) / (2 - (1 - (1 - D))) = 2 l / (1 + l).
    torch.testing.assert_close(jaccard, 2 * dice / (1 + dice), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_focal_gamma_zero_is_binary_cross_entropy(mode):
    logits, target = make_case(mode, seed=12, soft=True)
    focal = stableloss.focal_loss(logits, target, mode=mode, gamma=0.0)
    torch.testing.assert_close(focal, F.binary_cross_entropy_with_logits(logits, target), rtol=1e-6, atol=1e-7)


def test_focal_gamma_zero_is_cross_entropy_in_multiclass_softmax():
    logits, target = make_case("multiclass", seed=13)
    target[0, 0, 0] = 255
    focal = stableloss.focal_loss(logits, target, mode="multiclass", gamma=0.0, ignore_index=255)
    torch.testing.assert_close(focal, F.cross_entropy(logits, target, ignore_index=255), rtol=1e-6, atol=1e-7)


def test_focal_per_class_alpha_is_cross_entropy_weight_pattern():
    logits, target = make_case("multiclass", seed=14)
    alpha = [0.2, 1.0, 3.0]
    focal = stableloss.focal_loss(logits, target, mode="multiclass", gamma=0.0, alpha=alpha, reduction="sum")
    expected = F.cross_entropy(logits, target, weight=torch.tensor(alpha), reduction="sum")
    torch.testing.assert_close(focal, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_log_cosh_is_log_of_cosh_of_dice_in_float64(mode):
    logits, target = make_case(mode, seed=15, dtype=torch.float64)
    dice = stableloss.dice_loss(logits, target, mode=mode, reduction="none").double()
    log_cosh = stableloss.log_cosh_dice_loss(logits, target, mode=mode, reduction="none").double()
    torch.testing.assert_close(log_cosh, torch.log(torch.cosh(dice)), rtol=1e-6, atol=1e-8)


def test_log_cosh_unit_gradient_is_tanh():
    from stableloss.log_cosh import log_cosh_unit

    x = torch.tensor([0.0, 1e-4, 0.3, 0.999, 1.0], requires_grad=True)
    log_cosh_unit(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tanh(x.detach()), rtol=1e-6, atol=1e-7)


def test_seed_recipe_is_exactly_weighted_dice_plus_focal():
    for mode in MODES:
        logits, target = make_case(mode, seed=16)
        seed = stableloss.BoundaryAwareLoss(mode, boundary=None)(logits, target)
        expected = 0.7 * stableloss.dice_loss(logits, target, mode=mode) + 0.3 * stableloss.focal_loss(logits, target, mode=mode, gamma=2.0)
        torch.testing.assert_close(seed, expected, rtol=0, atol=0)
        torch.testing.assert_close(stableloss.boundary_aware_loss(logits, target, mode=mode, boundary=None), expected,
                                   rtol=0, atol=0)


def test_combined_loss_components_and_weights():
    logits, target = make_case("binary", seed=17)
    bce = lambda x, t: F.binary_cross_entropy_with_logits(x.float(), t)  # noqa: E731
    combined = stableloss.CombinedLoss({"dice": stableloss.DiceLoss("binary"), "bce": bce}, weights=[2.0, 0.5])
    parts = combined.components(logits, target)
    assert set(parts) == {"dice", "bce"}
    torch.testing.assert_close(combined(logits, target), 2.0 * parts["dice"] + 0.5 * parts["bce"])
    assert "losses.dice" in dict(combined.named_modules())  # a submodule: .to() and state_dict reach it


@pytest.mark.parametrize("info,options,mode", COMPILE_CASES, ids=COMPILE_IDS)
def test_compile_fullgraph_equals_eager(info, options, mode):
    logits, target = make_case(mode, seed=18)
    loss = info.build(mode, **options)
    eager_x = logits.clone().requires_grad_(True)
    eager = loss(eager_x, target)
    eager.backward()
    torch._dynamo.reset()
    compiled_fn = torch.compile(loss, fullgraph=True, backend="aot_eager")
    compiled_x = logits.clone().requires_grad_(True)
    compiled = compiled_fn(compiled_x, target)
    compiled.backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(compiled_x.grad, eager_x.grad, rtol=1e-5, atol=1e-8)


def test_compile_with_inductor_equals_eager():
    logits, target = make_case("binary", seed=19, spatial=(32, 32))
    loss = stableloss.BoundaryAwareLoss("binary", boundary=None)
    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True)
    torch.testing.assert_close(compiled(logits, target), loss(logits, target), rtol=1e-5, atol=1e-6)


def test_log_cosh_unit_keeps_relative_precision_on_the_unit_interval():
    from stableloss.log_cosh import log_cosh_unit

    x = torch.cat([torch.logspace(-6, 0, 61), torch.linspace(0.0, 1.0, 41)[1:]])
    xd = x.double()
    expected = torch.log1p(torch.expm1(xd) ** 2 / (2 * torch.exp(xd)))  # cosh x - 1 = (e^x - 1)^2 / 2e^x
    assert (torch.log(torch.cosh(x)) == 0).any()  # the naive float32 form loses the small ones
    torch.testing.assert_close(log_cosh_unit(x).double(), expected, rtol=5e-7, atol=0.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scale", [12.0, 17.0, 25.0])
def test_tiny_losses_keep_relative_precision_near_a_perfect_prediction(mode, scale):
    # 1 - p for confident pixels must not be rounded through p (float32 steps of 6e-8).
    from tests import reference
    from tests.inputs import CHANNELS

    gen = torch.Generator().manual_seed(50)
    if mode == "multiclass":
        target = torch.randint(0, 3, (2, 8, 8), generator=gen)
        truth = F.one_hot(target, 3).movedim(-1, 1).float()
    else:
        target = (torch.rand(2, CHANNELS[mode], 8, 8, generator=gen) > 0.5).float()
        truth = target
    logits = scale * (2 * truth - 1)
    for options in ({}, {"alpha": 0.7, "beta": 0.3, "gamma": 0.75}, {"alpha": 0.2, "beta": 0.8, "gamma": 2.0}):
        actual = stableloss.tversky_loss(logits, target, mode=mode, **options)
        expected = reference.tversky_reference(logits, target, mode=mode, **options)
        assert expected.item() > 0
        # Relative precision, down to float32's smallest normal number (below it, denormals).
        tiny = torch.finfo(torch.float32).tiny
        assert reference.close(actual, expected, rtol=1e-4, atol=tiny), (options, actual.item(), expected.item())
