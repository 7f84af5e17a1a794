"""The checker speaks MONAI's target convention: ``--target-format monai``, guessed from the loss's name.

MONAI's losses take ``(N, 1, *S)`` class indices when ``to_onehot_y=True`` and a one-hot ``(N, C, *S)``
otherwise, never smp's ``(N, *S)``. Under that convention MONAI's float32 cells hold, so the cells
that fail are its real mixed-precision failures, and ``stableloss.monai`` holds everywhere.
"""

import argparse
import re

import pytest

from stableloss import check
from stableloss.testing import Example, check_stability, evaluate
from stableloss.testing._conventions import format_layout
from tests.test_checker import run_cli

monai_losses = pytest.importorskip("monai.losses")

SOFTMAX_ONEHOT = '{"softmax": true, "to_onehot_y": true}'


def _summary(stdout):
    return re.search(r"(\d+) of (\d+) cells hold, (\d+) fail", stdout).groups()


@pytest.mark.parametrize("spec, expected", [
    ("monai.losses:DiceLoss", "monai"),
    ("monai:DiceCELoss", "monai"),
    ("stableloss.monai:DiceCELoss", "monai"),
    ("stableloss.monai.dice:DiceLoss", "monai"),
    ("stableloss:DiceLoss", "smp"),
    ("segmentation_models_pytorch.losses:DiceLoss", "smp"),
    ("monaix.losses:DiceLoss", "smp"),  # a prefix of the name is not the package
    ("stableloss.monaix:DiceLoss", "smp"),
])
def test_target_format_is_guessed_from_the_package_name(spec, expected):
    assert check.guess_target_format(spec) == expected


@pytest.mark.parametrize("mode, to_onehot_y, layout", [
    ("binary", True, "indices-channel"), ("binary", False, "indices-channel"),
    ("multiclass", True, "indices-channel"), ("multiclass", False, "one-hot"),
    ("multilabel", True, "one-hot"), ("multilabel", False, "one-hot"),
])
def test_monai_format_layouts(mode, to_onehot_y, layout):
    assert format_layout("monai", mode, to_onehot_y=to_onehot_y) == layout
    assert format_layout("smp", mode, to_onehot_y=to_onehot_y) == {"binary": "indices-channel", "multiclass": "indices",
                                                                    "multilabel": "one-hot"}[mode]


def test_format_layout_refuses_an_unknown_format_by_name():
    with pytest.raises(ValueError, match=re.escape("target_format must be one of ('smp', 'monai'); received 'nnunet'")):
        format_layout("nnunet", "multiclass")


def test_to_onehot_y_comes_from_kwargs_then_the_constructor_default_then_the_object():
    assert check.takes_onehot_y(monai_losses.DiceLoss, {"to_onehot_y": True})
    assert not check.takes_onehot_y(monai_losses.DiceLoss, {})  # MONAI's default is False
    assert not check.takes_onehot_y(monai_losses.DiceLoss, {"to_onehot_y": False})
    instance = monai_losses.FocalLoss(to_onehot_y=True)
    assert check.takes_onehot_y(instance, {})


def test_an_explicit_layout_or_format_overrides_the_guess():
    def layout(*argv):
        args = check.parse_args(["monai.losses:DiceLoss", "--mode", "multiclass", *argv])
        return check.target_layout(args, monai_losses.DiceLoss, {"to_onehot_y": True})

    assert layout() == ("indices-channel", ", target_format=monai (from the name)")
    assert layout("--target-format", "smp") == (None, "")
    assert layout("--target-layout", "one-hot") == ("one-hot", "")
    args = argparse.Namespace(loss="mine:Loss", mode="multiclass", target_layout=None, target_format="monai")
    assert check.target_layout(args, monai_losses.DiceLoss, {}) == ("one-hot", ", target_format=monai")


def test_cli_refuses_target_layout_with_target_format():
    out = run_cli("monai.losses:DiceLoss", "--mode", "multiclass", "--target-layout", "one-hot", "--target-format", "monai")
    assert out.returncode == 2 and out.stdout == ""
    assert "--target-layout and --target-format cannot be given together" in out.stderr


def test_cli_monai_dice_float32_cells_hold_under_the_guessed_monai_targets():
    out = run_cli("monai.losses:DiceLoss", "--mode", "multiclass", "--kwargs", SOFTMAX_ONEHOT, "--quick",
                  "--contexts", "float32")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "target_format=monai (from the name)" in out.stdout and "target_layout=indices-channel" in out.stdout
    assert _summary(out.stdout) == ("9", "9", "0")


def test_cli_with_smp_targets_monai_dice_raises_in_every_cell():
    # What the checker did before it knew MONAI's convention: (N, *S) indices MONAI refuses.
    out = run_cli("monai.losses:DiceLoss", "--mode", "multiclass", "--kwargs", SOFTMAX_ONEHOT, "--quick",
                  "--contexts", "float32", "--target-format", "smp")
    assert out.returncode == 1
    assert _summary(out.stdout) == ("0", "9", "9")
    assert "labels should have a channel with length equal to one" in out.stdout


@pytest.mark.parametrize("kwargs, mode", [('{"softmax": true}', "multiclass"), ('{"sigmoid": true}', "binary"),
                                          ('{"sigmoid": true}', "multilabel")])
def test_cli_monai_dice_without_to_onehot_y_gets_one_hot_or_mask_targets(kwargs, mode):
    out = run_cli("monai.losses:DiceLoss", "--mode", mode, "--kwargs", kwargs, "--quick", "--contexts", "float32")
    assert out.returncode == 0, out.stdout + out.stderr
    assert _summary(out.stdout) == ("9", "9", "0")
    assert ("target_layout=one-hot" in out.stdout) == (mode == "multiclass")  # else the mode's own masks


def test_monai_format_target_is_what_monai_dice_takes():
    example = Example("multiclass", (2, 3, 8, 8), "random", "noise", 1.0, seed=3)
    for to_onehot_y in (True, False):
        loss = monai_losses.DiceLoss(softmax=True, to_onehot_y=to_onehot_y)
        layout = format_layout("monai", "multiclass", to_onehot_y=to_onehot_y)
        outcome = evaluate(loss, example, "float32", target_layout=layout)
        assert outcome.ok, outcome.describe()


def test_cli_flags_monai_dicece_at_float16():
    out = run_cli("monai.losses:DiceCELoss", "--mode", "multiclass", "--kwargs", SOFTMAX_ONEHOT, "--quick",
                  "--contexts", "float32,fp16")
    assert out.returncode == 1
    rows = [line.split() for line in out.stdout.splitlines() if re.match(r"(noise|right|wrong) x", line)]
    assert len(rows) == 9 and all(row[2] == "ok" for row in rows)  # float32 holds in every row
    failing_fp16 = [row for row in rows if row[4:6] == ["FAIL", "loss"]]
    assert failing_fp16, out.stdout  # a non-finite float16 loss (NaN from the softmax of +-inf logits)


def test_monai_dicece_fp16_nan_and_stableloss_monai_dicece_holds_in_python():
    from stableloss.monai import DiceCELoss

    grid = dict(mode="multiclass", target_layout=format_layout("monai", "multiclass", to_onehot_y=True),
                contexts=["float32", "fp16"], sizes=[(2, 16, 16)], scenarios=[("noise", 1.0), ("noise", 1e5)])
    theirs = check_stability(monai_losses.DiceCELoss(softmax=True, to_onehot_y=True), **grid)
    assert theirs.cells[(("noise", 1.0), "float32")].ok
    assert theirs.cells[(("noise", 1e5), "fp16")].failure.reason == "loss"
    assert check_stability(DiceCELoss(softmax=True, to_onehot_y=True), **grid).ok


@pytest.mark.parametrize("kwargs, mode", [(SOFTMAX_ONEHOT, "multiclass"), ('{"softmax": true}', "multiclass"),
                                          ('{"sigmoid": true}', "binary")])
def test_cli_stableloss_monai_dicece_holds_every_cell(kwargs, mode):
    out = run_cli("stableloss.monai:DiceCELoss", "--mode", mode, "--kwargs", kwargs, "--quick")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "target_format=monai (from the name)" in out.stdout
    assert _summary(out.stdout) == ("45", "45", "0")

