"""Where the hybrid's options meet: every term honours a shared option, set weights stay set, a
schedule's state carries its configuration (issue 14, items 1 to 3)."""

import pytest
import torch

import stableloss
from tests import reference


def _multiclass_batch(ignore_label=None):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 12, 12))
    if ignore_label is not None:
        target[:, :3] = ignore_label
    return logits, target


@pytest.mark.parametrize("boundary", [None, "dou", "boundary", "hausdorff"])
def test_hybrid_ignore_index_outside_the_classes_reaches_every_term(boundary):
    logits, target = _multiclass_batch(ignore_label=255)
    hybrid = stableloss.BoundaryAwareLoss("multiclass", boundary=boundary, ignore_index=255)
    parts = hybrid.components(logits, target)  # no "class indices in [0, 2]" error at the first batch
    assert reference.close(parts["dice"], reference.tversky_reference(logits, target, mode="multiclass", ignore_index=255),
                           rtol=1e-9, atol=1e-12)
    for name, term in hybrid.losses.items():
        assert term.ignore_index == 255, name
    if "focal" in parts:
        expected = reference.focal_reference(logits, target, mode="multiclass", gamma=2.0, ignore_index=255)
        assert reference.close(parts["focal"], expected, rtol=1e-9, atol=1e-12)


def test_hybrid_ignore_index_equal_to_a_class_id_gives_the_dice_loss_value():
    logits, target = _multiclass_batch()
    hybrid = stableloss.BoundaryAwareLoss("multiclass", ignore_index=0)
    dice = stableloss.DiceLoss("multiclass", ignore_index=0)
    torch.testing.assert_close(hybrid.components(logits, target)["dice"], dice(logits, target))
    functional = stableloss.boundary_aware_loss(logits, target, mode="multiclass", ignore_index=0)
    torch.testing.assert_close(functional, hybrid(logits, target))


def test_hybrid_refuses_a_caller_term_that_disagrees_on_ignore_index():
    with pytest.raises(ValueError, match=r"disagree on ignore_index: dice=None, boundary=0 \(terms given by the caller: \['dice'\]\)"):
        stableloss.BoundaryAwareLoss("multiclass", dice=stableloss.DiceLoss("multiclass"), ignore_index=0)
    with pytest.raises(ValueError, match=r"disagree on ignore_index: dice=3, boundary=None"):
        stableloss.BoundaryAwareLoss("multiclass", dice=stableloss.DiceLoss("multiclass", ignore_index=3))
    with pytest.raises(ValueError, match=r"disagree on from_logits: dice=False, boundary=True"):
        stableloss.BoundaryAwareLoss("binary", dice=stableloss.DiceLoss("binary", from_logits=False))
    with pytest.raises(ValueError, match=r"disagree on mode: BoundaryAwareLoss='binary', dice='multilabel'"):
        stableloss.BoundaryAwareLoss("binary", dice=stableloss.DiceLoss("multilabel"))


def test_hybrid_refuses_classes_with_a_focal_term():
    with pytest.raises(TypeError, match=r"given classes=\[1, 2\], but the term\(s\) \['focal'\] have no classes option"):
        stableloss.BoundaryAwareLoss("multiclass", boundary="boundary", classes=[1, 2])
    logits, target = _multiclass_batch()
    with pytest.raises(TypeError, match=r"given classes=\[1\], but the focal term has no classes option"):
        stableloss.boundary_aware_loss(logits, target, mode="multiclass", boundary=None, classes=[1])


def test_hybrid_classes_reach_dice_and_boundary_terms():
    logits, target = _multiclass_batch()
    hybrid = stableloss.BoundaryAwareLoss("multiclass", classes=[1, 2])
    expected = reference.tversky_reference(logits, target, mode="multiclass", classes=[1, 2])
    assert reference.close(hybrid.components(logits, target)["dice"], expected, rtol=1e-9, atol=1e-12)
    assert tuple(hybrid.losses["boundary"].options.classes) == (1, 2)


def test_functional_hybrid_refuses_term_options_that_contradict_the_shared_value():
    logits, target = _multiclass_batch(ignore_label=255)
    with pytest.raises(ValueError, match=r"dice_options\['ignore_index'\] = 3 contradicts ignore_index=255"):
        stableloss.boundary_aware_loss(logits, target, mode="multiclass", ignore_index=255, dice_options={"ignore_index": 3})
    with pytest.raises(ValueError, match=r"disagree on ignore_index: dice=255, boundary=None"):
        stableloss.boundary_aware_loss(logits, target, mode="multiclass", dice_options={"ignore_index": 255})


def test_setting_a_shared_option_on_the_hybrid_sets_it_on_every_term():
    hybrid = stableloss.BoundaryAwareLoss("multiclass", boundary="boundary")
    hybrid.ignore_index = 255
    assert [term.ignore_index for term in hybrid.losses.values()] == [255, 255, 255]
    with pytest.raises(TypeError, match=r"ignore_index must be None or an int; received float 2.5"):
        hybrid.ignore_index = 2.5
    assert [term.ignore_index for term in hybrid.losses.values()] == [255, 255, 255]


@pytest.mark.parametrize("schedule", ["constant", "rebalance"])
def test_weights_set_by_the_user_survive_step(schedule):
    hybrid = stableloss.BoundaryAwareLoss("binary", schedule=schedule)
    hybrid.weights = {"dice": 1.0, "boundary": 2.0}
    assert hybrid.base_weights == {"dice": 1.0, "boundary": 2.0}
    for _ in range(3):
        hybrid.step()
    region, boundary = hybrid.schedule.factors()
    assert hybrid.weights == pytest.approx({"dice": 1.0 * region, "boundary": 2.0 * boundary})
    if schedule == "constant":
        assert hybrid.weights == {"dice": 1.0, "boundary": 2.0}


def test_weights_set_by_the_user_survive_load_state_dict():
    hybrid = stableloss.BoundaryAwareLoss("binary")
    hybrid.weights = {"dice": 1.0, "boundary": 2.0}
    hybrid.load_state_dict(hybrid.state_dict())
    assert hybrid.weights == {"dice": 1.0, "boundary": 2.0}
    resumed = stableloss.BoundaryAwareLoss("binary")
    resumed.load_state_dict(hybrid.state_dict())
    assert resumed.weights == {"dice": 1.0, "boundary": 2.0}


def test_schedule_state_carries_its_configuration():
    saved = stableloss.BoundaryAwareLoss("binary", boundary="boundary", schedule=stableloss.RebalanceSchedule(start=0.5, increment=0.1))
    for _ in range(4):
        saved.step()
    same = stableloss.BoundaryAwareLoss("binary", boundary="boundary", schedule=stableloss.RebalanceSchedule(start=0.5, increment=0.1))
    same.load_state_dict(saved.state_dict())
    assert same.weights == saved.weights and same.weights["boundary"] == pytest.approx(100.0 * 0.9)
    default = stableloss.BoundaryAwareLoss("binary", boundary="boundary", schedule="rebalance")
    with pytest.raises(ValueError, match=r"schedule state mismatch: the state was saved by RebalanceSchedule\(start=0.5, "
                                         r"increment=0.1, region_floor=0.1\), but this schedule is RebalanceSchedule\(start=0.01, "
                                         r"increment=0.01, region_floor=0.1\)"):
        default.load_state_dict(saved.state_dict())
    constant = stableloss.BoundaryAwareLoss("binary", boundary="boundary")
    with pytest.raises(ValueError, match=r"but this schedule is ConstantSchedule\(\)"):
        constant.load_state_dict(saved.state_dict())
    assert constant.schedule.epoch == 0 and constant.weights == {"dice": 0.7, "focal": 0.3, "boundary": 100.0}


def test_schedule_state_without_its_configuration_is_refused():
    with pytest.raises(ValueError, match=r"state must hold the schedule's kind and configuration besides the epoch"):
        stableloss.RebalanceSchedule().load_state_dict({"epoch": 3})


def test_a_shared_option_at_its_default_is_accepted_by_a_term_without_it():
    hybrid = stableloss.BoundaryAwareLoss("multiclass", boundary="boundary", classes=None, class_weights=None)
    assert hybrid.losses["dice"].classes is None and "focal" in hybrid.losses
    logits, target = _multiclass_batch()
    stableloss.boundary_aware_loss(logits, target, mode="multiclass", boundary=None, classes=None)
