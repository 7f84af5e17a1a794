"""Hand-derived behaviour of the distance- and contour-based losses and the boundary-aware hybrid.

(The registry in ``tests/registry.py`` runs them through every generic property, float64
reference, stability context, autograd and compile test; this file holds what is specific.)
"""

import math

import pytest
import torch

import stableloss
from tests import reference
from tests.inputs import make_case

monai_losses = pytest.importorskip("monai.losses")


def _blob(shape=(2, 1, 24, 20), seed=0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.zeros(shape)
    target[..., 6:14, 5:12] = 1.0
    logits = torch.randn(shape, generator=gen) * 2 + 4 * (2 * target - 1)
    return logits, target


def test_boundary_loss_matches_monai_with_kervadec_map():
    logits, target = _blob()
    ours = stableloss.boundary_loss(logits, target, mode="binary", inside_shift=1.0, no_surface="zero")
    theirs = monai_losses.BoundaryLoss(sigmoid=True)(logits, target)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_boundary_loss_matches_monai_multiclass():
    logits, labels = make_case("multiclass", seed=2, spatial=(12, 10), batch=2)
    ours = stableloss.boundary_loss(logits, labels, mode="multiclass", inside_shift=1.0, no_surface="zero")
    theirs = monai_losses.BoundaryLoss(softmax=True, to_onehot_y=True)(logits, labels[:, None])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_hausdorff_matches_monai_with_zero_maps(mode):
    if mode == "binary":
        logits, target = _blob(seed=3)
        theirs = monai_losses.HausdorffDTLoss(sigmoid=True)(logits, target)
    else:
        logits, target = make_case("multiclass", seed=4, spatial=(12, 10), batch=2)
        theirs = monai_losses.HausdorffDTLoss(softmax=True, to_onehot_y=True)(logits, target[:, None])
    # MONAI's HausdorffDTLoss leaves out the background channel by default (include_background=False)
    ours = stableloss.hausdorff_dt_loss(logits, target, mode=mode, no_surface="zero",
                                        classes=None if mode == "binary" else [1, 2])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [stableloss.boundary_loss, stableloss.hausdorff_dt_loss])
def test_precomputed_maps_from_the_loader_equal_maps_computed_in_the_forward(fn):
    logits, target = _blob(shape=(3, 1, 16, 18), seed=5)
    spacing = (0.8, 2.5)
    transform = stableloss.SignedDistanceTransform(spacing=spacing)
    maps = torch.stack([transform(sample) for sample in target])  # per sample, as a Dataset would
    computed = fn(logits, target, mode="binary", spacing=spacing)
    given = fn(logits, target, mode="binary", spacing=spacing, distance_map=maps)
    torch.testing.assert_close(given, computed, rtol=1e-6, atol=1e-7)


def test_anisotropic_spacing_agrees_with_float64_reference():
    logits, target = make_case("multilabel", seed=6, spatial=(5, 6, 7), batch=2)
    for fn, ref in ((stableloss.boundary_loss, reference.boundary_reference),
                    (stableloss.hausdorff_dt_loss, reference.hausdorff_reference)):
        actual = fn(logits, target, mode="multilabel", spacing=(2.5, 0.7, 0.7))
        expected = ref(logits, target, mode="multilabel", spacing=(2.5, 0.7, 0.7))
        assert reference.close(actual, expected, rtol=1e-5, atol=1e-6), (fn.__name__, actual.item(), expected.item())


def test_boundary_gradient_grows_with_the_distance_of_an_error():
    target = torch.zeros(1, 1, 1, 40)
    target[..., 5:10] = 1.0
    logits = torch.full((1, 1, 1, 40), -6.0)
    logits[..., 5:10] = 6.0
    logits[..., 11] = 6.0  # a false positive 2 px from the object
    logits[..., 35] = 6.0  # and one 26 px away
    logits.requires_grad_(True)
    stableloss.boundary_loss(logits, target, mode="binary").backward()
    near, far = logits.grad[0, 0, 0, 11].item(), logits.grad[0, 0, 0, 35].item()
    assert near > 0 and far == pytest.approx(near * 26 / 2, rel=1e-5)  # proportional to the distance
    logits.grad = None
    stableloss.dice_loss(logits, target, mode="binary").backward()
    assert logits.grad[0, 0, 0, 35].item() == pytest.approx(logits.grad[0, 0, 0, 11].item(), rel=1e-6)  # Dice: no


@pytest.mark.parametrize("fn", [stableloss.boundary_loss, stableloss.hausdorff_dt_loss])
def test_a_false_positive_on_an_empty_image_is_penalised(fn):
    target = torch.zeros(2, 1, 12, 12)
    values = [fn(torch.full((2, 1, 12, 12), logit), target, mode="binary").item() for logit in (-8.0, 0.0, 8.0)]
    assert values[0] < values[1] < values[2]
    zero_map = fn(torch.full((2, 1, 12, 12), 8.0), target, mode="binary", no_surface="zero").item()
    assert values[2] > zero_map  # MONAI's zero map charges the boundary loss nothing there


def test_boundary_dou_ignores_an_empty_class_and_is_bounded():
    logits, target = torch.randn(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)
    assert stableloss.boundary_dou_loss(logits, target, mode="binary").item() == 0.0
    assert stableloss.boundary_dou_loss(logits, target, mode="binary", ignore_empty=False).item() == pytest.approx(1.0)


def test_an_empty_batch_volume_without_foreground_and_a_full_volume_do_not_crash():
    for target in (torch.zeros(1, 1, 6, 7, 8), torch.ones(1, 1, 6, 7, 8)):
        logits = torch.randn(1, 1, 6, 7, 8, requires_grad=True)
        for fn in (stableloss.boundary_loss, stableloss.hausdorff_dt_loss, stableloss.boundary_dou_loss):
            loss = fn(logits, target, mode="binary")
            loss.backward()
            assert math.isfinite(loss.item()) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("cls", [stableloss.BoundaryLoss, stableloss.HausdorffDTLoss])
def test_bad_spacing_and_maps_are_named(cls):
    logits, target = _blob()
    with pytest.raises(ValueError, match=r"spacing must have one value per spatial dim \(2\); received 3 values"):
        cls("binary", spacing=(1.0, 1.0, 1.0))(logits, target)
    with pytest.raises(ValueError, match=r"spacing must hold finite values > 0; received \[0.0\]"):
        cls("binary", spacing=0.0)
    with pytest.raises(ValueError, match=r"spacing must hold finite values > 0"):
        cls("binary", spacing=(1.0, -2.0))
    with pytest.raises(ValueError, match=r"spacing must hold finite values > 0"):
        cls("binary", spacing=(1.0, float("nan")))
    with pytest.raises(ValueError, match=r"distance_map must have the shape of the input \(2, 1,"
                       r" 24, 20\); received shape \(2, 1, 24, 19\)"):
        cls("binary")(logits, target, distance_map=torch.zeros(2, 1, 24, 19))
    with pytest.raises(TypeError, match=r"distance_map must be a floating-point tensor; received dtype torch.int64"):
        cls("binary")(logits, target, distance_map=torch.zeros(2, 1, 24, 20, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target must be binary \(values 0 and 1, or bool\); received a value 0.5"):
        cls("binary")(logits, target * 0.5)


def test_soft_targets_work_with_a_given_map():
    logits, target = _blob()
    maps = stableloss.signed_distance_map(target)
    soft = target * 0.9 + 0.05
    assert torch.isfinite(stableloss.boundary_loss(logits, soft, mode="binary", distance_map=maps))


def test_seed_recipe_is_one_argument_away_and_exact():
    logits, target = _blob()
    seed = stableloss.BoundaryAwareLoss("binary", boundary=None)
    assert set(seed.weights) == {"dice", "focal"}
    expected = 0.7 * stableloss.dice_loss(logits, target, mode="binary") + 0.3 * stableloss.focal_loss(
        logits, target, mode="binary", gamma=2.0)
    torch.testing.assert_close(seed(logits, target), expected, rtol=0, atol=0)


@pytest.mark.parametrize("boundary", ["boundary", "hausdorff", "dou"])
def test_hybrid_is_its_weighted_terms_and_routes_the_map(boundary):
    logits, target = _blob(seed=7)
    hybrid = stableloss.BoundaryAwareLoss("binary", boundary=boundary, dice_weight=0.7, focal_weight=0.3, boundary_weight=0.25)
    parts = hybrid.components(logits, target)
    torch.testing.assert_close(hybrid(logits, target), 0.7 * parts["dice"] + 0.3 * parts["focal"] + 0.25 * parts["boundary"])
    if boundary != "dou":
        maps = stableloss.signed_distance_map(target)
        torch.testing.assert_close(hybrid(logits, target, distance_map=maps), hybrid(logits, target), rtol=1e-6, atol=1e-7)
        functional = stableloss.boundary_aware_loss(logits, target, mode="binary", boundary=boundary, dice_weight=0.7,
                                                    focal_weight=0.3, boundary_weight=0.25, distance_map=maps)
        torch.testing.assert_close(functional, hybrid(logits, target), rtol=1e-6, atol=1e-7)
    else:
        with pytest.raises(TypeError, match=r"no term of this CombinedLoss takes the keyword argument\(s\) \['distance_map'\]"):
            hybrid(logits, target, distance_map=torch.zeros_like(logits))


def test_rebalance_schedule_moves_weight_and_resumes_from_the_state_dict():
    hybrid = stableloss.BoundaryAwareLoss("binary", boundary="boundary", boundary_weight=1.0, schedule="rebalance")
    assert hybrid.weights == pytest.approx({"dice": 0.7, "focal": 0.3, "boundary": 0.01})
    for _ in range(5):
        hybrid.step()
    assert hybrid.weights == pytest.approx({"dice": 0.7 * 0.95, "focal": 0.3 * 0.95, "boundary": 0.06})
    resumed = stableloss.BoundaryAwareLoss("binary", boundary="boundary", boundary_weight=1.0, schedule="rebalance")
    resumed.load_state_dict(hybrid.state_dict())
    assert resumed.weights == hybrid.weights and resumed.schedule.epoch == 5
    for _ in range(200):
        resumed.step()
    assert resumed.weights["dice"] == pytest.approx(0.7 * 0.1)  # the region floor
    assert resumed.weights["boundary"] == pytest.approx(2.06)


def test_schedules_validate_their_settings_and_state():
    with pytest.raises(ValueError, match=r"region_floor must be in \[0.0, 1.0\]; received 1.5"):
        stableloss.RebalanceSchedule(region_floor=1.5)
    with pytest.raises(ValueError, match=r"schedule must be one of \('constant', 'rebalance'\); received 'linear'"):
        stableloss.BoundaryAwareLoss("binary", schedule="linear")
    with pytest.raises(TypeError, match=r"schedule must be None, 'constant', 'rebalance' or an object with factors\(\)"):
        stableloss.BoundaryAwareLoss("binary", schedule=3)
    with pytest.raises(ValueError, match=r"state\['epoch'\] must be an int >= 0; received -1"):
        stableloss.ConstantSchedule().load_state_dict({"kind": "ConstantSchedule", "config": {}, "epoch": -1})


def test_boundary_options_need_a_named_boundary_term():
    with pytest.raises(TypeError, match=r"boundary options \['spacing'\] were given but boundary=None"):
        stableloss.BoundaryAwareLoss("binary", boundary=None, spacing=1.0)
    with pytest.raises(ValueError, match=r"boundary must be one of \('boundary', 'hausdorff', 'dou'\); received 'hd'"):
        stableloss.BoundaryAwareLoss("binary", boundary="hd")


def test_default_hybrid_is_half_dice_half_boundary_dou_without_focal():
    logits, target = _blob(seed=3)
    hybrid = stableloss.BoundaryAwareLoss("binary")
    assert hybrid.weights == {"dice": 0.5, "boundary": 0.5} and set(hybrid.components(logits, target)) == {"dice", "boundary"}
    expected = 0.5 * stableloss.dice_loss(logits, target, mode="binary") + 0.5 * stableloss.boundary_dou_loss(
        logits, target, mode="binary")
    torch.testing.assert_close(hybrid(logits, target), expected, rtol=0, atol=0)
    torch.testing.assert_close(stableloss.boundary_aware_loss(logits, target, mode="binary"), expected, rtol=0, atol=0)
    with_focal = stableloss.BoundaryAwareLoss("binary", focal_weight=0.3)
    assert with_focal.weights == {"dice": 0.5, "focal": 0.3, "boundary": 0.5}


def test_default_weights_follow_the_boundary_term():
    assert stableloss.BoundaryAwareLoss("binary", boundary="boundary").weights == {"dice": 0.7, "focal": 0.3, "boundary": 100.0}
    assert stableloss.BoundaryAwareLoss("binary", boundary="hausdorff").weights == {"dice": 0.7, "focal": 0.3, "boundary": 100.0}
    assert stableloss.BoundaryAwareLoss("binary", boundary=None).weights == {"dice": 0.7, "focal": 0.3}
    module = stableloss.BoundaryDoULoss("binary")
    assert stableloss.BoundaryAwareLoss("binary", boundary=module).weights == {"dice": 0.7, "focal": 0.3, "boundary": 1.0}


def test_unused_focal_term_is_refused_with_a_clear_error():
    logits, target = _blob()
    with pytest.raises(TypeError, match=r"focal= was given but focal_weight is 0"):
        stableloss.BoundaryAwareLoss("binary", focal=stableloss.FocalLoss("binary"))
    with pytest.raises(TypeError, match=r"focal_options were given but focal_weight is 0"):
        stableloss.boundary_aware_loss(logits, target, mode="binary", focal_options={"gamma": 1.0})
    with pytest.raises(ValueError, match=r"focal_weight must be"):
        stableloss.BoundaryAwareLoss("binary", focal_weight=-1.0)
