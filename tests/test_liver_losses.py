"""Liver example, the --loss recipes: each trains, and each is built as its description says."""

import inspect

import pytest
import torch

pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

import train_liver  # noqa: E402

from liver.checkpoint import read_checkpoint  # noqa: E402
from liver.config import parser  # noqa: E402
from liver.losses import HAUSDORFF_WEIGHT, LOSSES, RECIPES, build_loss, has_schedule, uses_distance_maps  # noqa: E402
from stableloss import (  # noqa: E402
    BoundaryAwareLoss,
    BoundaryDoULoss,
    BoundaryLoss,
    DiceLoss,
    FocalLoss,
    HausdorffDTLoss,
    RebalanceSchedule,
    signed_distance_map,
)
from stableloss.hybrid import BOUNDARY_TERMS, DEFAULT_BOUNDARY  # noqa: E402
from tests.test_liver_train import tiny  # noqa: E402

NEW = ("seed", "boundary", "boundary-loss", "hausdorff", "boundary-dou", "nnunet", "monai-dicece")


def _batch(mode):
    torch.manual_seed(0)
    if mode == "binary":
        target = torch.zeros(2, 1, 32, 32)
        target[0, :, 8:20, 6:18] = 1  # the second image has no object: the maps' no-surface bound
        logits = torch.randn(2, 1, 32, 32, requires_grad=True)
        maps = signed_distance_map(target, spacing=(1.5, 1.25))
    else:
        target = torch.zeros(2, 32, 32, dtype=torch.long)
        target[:, 8:20, 6:18] = 1
        target[0, 10:14, 8:12] = 2
        logits = torch.randn(2, 3, 32, 32, requires_grad=True)
        maps = signed_distance_map(target, num_classes=3, spacing=(1.5, 1.25))
    return logits, target, maps


def test_the_choices_and_their_descriptions():
    assert set(LOSSES) == {"dice", "tversky", "focal", "logcosh", "smp-hybrid", *NEW}
    assert all(RECIPES[name].description for name in LOSSES)
    help_text = "".join(parser().format_help().split())  # argparse wraps lines, also at hyphens
    for name in LOSSES:
        assert "".join(f"{name}: {RECIPES[name].description}".split()) in help_text


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
@pytest.mark.parametrize("name", LOSSES)
def test_every_recipe_gives_a_finite_loss_and_gradient(name, mode):
    logits, target, maps = _batch(mode)
    criterion = build_loss(name, mode, spacing=(1.5, 1.25))
    extra = {"distance_map": maps} if uses_distance_maps(criterion) else {}
    loss = criterion(logits, target, **extra)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_which_recipes_take_the_distance_maps():
    default_takes = "distance_map" in inspect.signature(BOUNDARY_TERMS[DEFAULT_BOUNDARY][0].forward).parameters
    expected = {name: False for name in LOSSES} | {"boundary": default_takes, "boundary-loss": True, "hausdorff": True}
    assert {name: uses_distance_maps(build_loss(name, "binary")) for name in LOSSES} == expected
    assert {name for name in LOSSES if has_schedule(build_loss(name, "binary"))} == {"seed", "boundary", "boundary-loss"}


def test_seed_is_the_experiments_point_seven_dice_point_three_focal():
    logits, target, _ = _batch("binary")
    criterion = build_loss("seed", "binary")
    assert isinstance(criterion, BoundaryAwareLoss) and criterion.weights == {"dice": 0.7, "focal": 0.3}
    expected = 0.7 * DiceLoss("binary")(logits, target) + 0.3 * FocalLoss("binary", gamma=2.0)(logits, target)
    torch.testing.assert_close(criterion(logits, target), expected)


def test_boundary_is_the_library_default_with_pixel_size_and_ignore_index_passed():
    criterion = build_loss("boundary", "binary", spacing=(0.8, 0.7), ignore_index=255)
    library = BoundaryAwareLoss("binary")
    assert criterion.weights == library.weights and repr(criterion.schedule) == repr(library.schedule)
    term, default = criterion.losses["boundary"], library.losses["boundary"]
    assert type(term) is type(default)
    options = {k: v for k, v in vars(term.options).items() if k not in ("spacing", "ignore_index")}
    assert options == {k: v for k, v in vars(default.options).items() if k not in ("spacing", "ignore_index")}
    if "spacing" in inspect.signature(type(term)).parameters:
        assert term.spacing == (0.8, 0.7)
    assert all(t.ignore_index == 255 for t in criterion.losses.values())


def test_global_batch_reaches_the_dice_terms_only_under_ddp():
    for name in ("dice", "seed", "boundary", "boundary-loss", "hausdorff", "boundary-dou"):
        assert build_loss(name, "binary", global_batch=True).losses["dice"].global_batch, name
        assert not build_loss(name, "binary").losses["dice"].global_batch, name


def test_kervadec_recipe_rebalances_raw_pixel_distances():
    criterion = build_loss("boundary-loss", "binary", spacing=(2.0, 2.0))
    assert isinstance(criterion.schedule, RebalanceSchedule) and isinstance(criterion.losses["boundary"], BoundaryLoss)
    assert criterion.losses["boundary"].spacing == (2.0, 2.0) and not criterion.losses["boundary"].normalize
    assert criterion.weights == pytest.approx({"dice": 1.0, "boundary": 0.01 / 2.0})  # no Focal term
    for _ in range(3):
        criterion.step()
    assert criterion.weights == pytest.approx({"dice": 0.97, "boundary": 0.04 / 2.0})
    # the boundary term in pixel units: maps in mm (pixel 2 mm) times the weight 1/2 equal the maps in pixels
    logits, target, _ = _batch("binary")
    in_mm = criterion.components(logits, target, distance_map=signed_distance_map(target, spacing=2.0))["boundary"]
    in_px = BoundaryLoss("binary")(logits, target, distance_map=signed_distance_map(target))
    torch.testing.assert_close(in_mm / 2.0, in_px)


def test_hausdorff_and_dou_recipes():
    hd = build_loss("hausdorff", "binary", spacing=(1.5, 1.25))
    assert isinstance(hd.losses["hausdorff"], HausdorffDTLoss) and hd.losses["hausdorff"].normalize
    assert hd.losses["hausdorff"].alpha == 2.0 and hd.losses["hausdorff"].spacing == (1.5, 1.25)
    assert hd.weights == {"dice": 1.0, "hausdorff": HAUSDORFF_WEIGHT}
    dou = build_loss("boundary-dou", "binary")
    assert isinstance(dou.losses["dou"], BoundaryDoULoss) and dou.weights == {"dice": 0.5, "dou": 0.5}


def test_boundary_recipe_equals_boundary_dou_recipe_since_the_library_default_changed():
    """The three-seed table's ``boundary-dou`` rows are what ``--loss boundary`` trains now: same value and gradient."""
    logits, target, _ = _batch("binary")
    logits.requires_grad_(True)
    ours, dou = build_loss("boundary", "binary", spacing=(0.8, 0.7)), build_loss("boundary-dou", "binary", spacing=(0.8, 0.7))
    grad, = torch.autograd.grad(ours(logits, target), logits)
    expected, = torch.autograd.grad(dou(logits, target), logits)
    torch.testing.assert_close(ours(logits, target), dou(logits, target), rtol=0, atol=0)
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_nnunet_recipe_is_nnunets_dice_ce_for_either_network(mode):
    import stableloss.monai as sm

    logits, target, _ = _batch(mode)
    value = build_loss("nnunet", mode)(logits, target)
    if mode == "multiclass":  # nnU-Net's loss on (B, 1, *S) labels
        expected = sm.nnunet_dice_ce()(logits, target.unsqueeze(1))
    else:  # one output channel: nnU-Net's two-class softmax with a background logit of 0
        expected = sm.nnunet_dice_ce()(torch.cat([torch.zeros_like(logits), logits], dim=1), target)
    torch.testing.assert_close(value, expected)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_monai_dicece_recipe_is_monais_usual_setting(mode):
    monai_losses = pytest.importorskip("monai.losses")
    logits, target, _ = _batch(mode)
    if mode == "binary":
        expected = monai_losses.DiceCELoss(sigmoid=True)(logits, target)
    else:
        expected = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True)(logits, target.unsqueeze(1))
    torch.testing.assert_close(build_loss("monai-dicece", mode)(logits, target), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["nnunet", "monai-dicece"])
def test_monai_recipes_refuse_an_ignore_index(name):
    with pytest.raises(ValueError, match="ignore_index: MONAI's DiceCELoss has none"):
        build_loss(name, "multiclass", ignore_index=255)


def test_unknown_loss_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^loss must be one of \('dice', .*'smp-hybrid'\); received 'hd'$"):
        build_loss("hd", "binary")


@pytest.mark.parametrize("name", NEW)
def test_new_choices_train_a_couple_of_steps(tmp_path, name):
    summary = train_liver.main(tiny(tmp_path, "--loss", name, "--epochs", "1", "--max-steps", "2", "--threads", "1"))
    assert summary["status"] == "finished" and summary["train_steps"] == 2 and summary["skipped_steps"] == 0
    assert summary["loss"] == name
    expected = build_loss(name, "binary", spacing=(11.25, 11.25))  # the tiny phantom: 360 mm over 32 pixels
    if has_schedule(expected):
        expected.step()  # one epoch done
        assert read_checkpoint(tmp_path / "run" / "last.pt")["criterion"]["_extra_state"]["schedule"]["epoch"] == 1
    assert summary["loss_weights"] == pytest.approx(expected.weights)


@pytest.mark.parametrize("name", ["boundary-loss", "hausdorff"])
def test_distance_terms_check_the_cached_maps_unless_volume_spacings_differ(name):
    def map_terms(criterion):
        return [t for t in criterion.losses.values() if "distance_map" in inspect.signature(t.forward).parameters]

    checked = build_loss(name, "binary", spacing=(0.8, 0.8))
    assert map_terms(checked) and all(t.validate_args for t in map_terms(checked))
    unchecked = build_loss(name, "binary", spacing=(0.8, 0.8), check_maps=False)
    assert map_terms(unchecked) and not any(t.validate_args for t in map_terms(unchecked))


def test_uniform_spacing_tells_whether_the_loss_can_check_the_maps():
    class Cache:
        def __init__(self, sizes):
            self.sizes = sizes

        def voxel_mm(self, case_id):
            return (2.5, *self.sizes[case_id])

    assert train_liver.uniform_spacing(Cache({"a": (0.8, 0.8), "b": (0.8, 0.8)}), ["a", "b"])
    assert not train_liver.uniform_spacing(Cache({"a": (0.8, 0.8), "b": (0.7, 0.7)}), ["a", "b"])
