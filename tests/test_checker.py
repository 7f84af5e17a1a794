"""The stability checker itself: it must catch real failures, pass stable losses, and be deterministic."""

import inspect
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stableloss
from stableloss import check
from stableloss.testing import Example, assert_stable, check_stability, evaluate
from tests.stability_cases import ALL, CORE

ROOT = Path(__file__).resolve().parents[1]
MODES = ("binary", "multiclass", "multilabel")


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "stableloss.check", *args], capture_output=True, text=True, check=False,
                          env=env, cwd=ROOT, timeout=300)


def non_finite_cells(report):
    return [c for c in report.failures if c.failure.reason in ("loss", "grad")]


def test_checker_reports_nan_for_smp_dice_fp16_at_8x1x256x256():
    smp = pytest.importorskip("segmentation_models_pytorch")
    report = check_stability(smp.losses.DiceLoss("binary"), mode="binary", contexts=["fp16"],
                             sizes=[(8, 256, 256)], scenarios=[("right", 30.0)])
    failing = non_finite_cells(report)
    assert [c.context for c in failing] == ["fp16"]
    assert failing[0].failure.example.shape == (8, 1, 256, 256)
    assert "FAIL loss" in report.table()


def test_checker_finds_smp_dice_fp16_failure_only_at_the_large_size():
    smp = pytest.importorskip("segmentation_models_pytorch")
    report = check_stability(smp.losses.DiceLoss("binary"), mode="binary", contexts=["fp16"],
                             sizes=[(2, 32, 32), (8, 256, 256)], scenarios=[("right", 30.0)], tolerance=None)
    (cell,) = report.failures
    assert cell.failure.example.shape == (8, 1, 256, 256)  # the smallest failing size
    assert cell.run == 6  # five masks at 2x1x32x32 held, then the first large example failed


def test_checker_reports_nan_for_torchvision_sigmoid_focal_when_fp16_logits_overflow():
    ops = pytest.importorskip("torchvision.ops")
    overflow = check_stability(ops.sigmoid_focal_loss, mode="binary", contexts=["fp16"], quick=True,
                               scenarios=[("wrong", 1e5), ("right", 1e5)])
    assert len(non_finite_cells(overflow)) == 2
    finite = check_stability(ops.sigmoid_focal_loss, mode="binary", contexts=["fp16"], quick=True,
                             scenarios=[("wrong", 65504.0), ("right", 65504.0)], tolerance=None)
    assert finite.ok  # the largest finite float16 logit is fine: the failure is the overflow to inf


# Every loss in binary mode; every mode through the Dice + Focal hybrid, which runs both.
# (tests/test_stability.py covers every loss in every mode.)
BOUNDARY = next(c for c in CORE if c.name == "boundary-0")
SOFT_CE = next(c for c in ALL if c.name == "softce-1")  # multiclass only, with label smoothing
NO_FAILURE = [pytest.param(c, "binary", id=f"{c.name}-binary") for c in CORE] + [
    pytest.param(BOUNDARY, mode, id=f"{BOUNDARY.name}-{mode}") for mode in ("multiclass", "multilabel")] + [
    pytest.param(SOFT_CE, "multiclass", id=f"{SOFT_CE.name}-multiclass")]


@pytest.mark.parametrize("case, mode", NO_FAILURE)
def test_checker_reports_no_failure_for_stableloss_losses(case, mode):
    report = check_stability(case.build(mode), mode=mode, quick=True, input=case.input)
    assert report.ok, report.table()
    assert report.complete and all(cell.run == 10 for cell in report.cells.values())


def test_a_loss_that_raises_is_a_failing_cell_with_the_message():
    def picky(x, t):
        if x.dtype == torch.bfloat16:
            raise RuntimeError("bf16 not supported here")
        return stableloss.dice_loss(x, t, mode="binary")

    report = check_stability(picky, mode="binary", quick=True, scenarios=[("noise", 1.0)])
    assert {c.context for c in report.failures} == {"bf16-autocast", "bf16"}
    assert all(c.failure.exception == "RuntimeError: bf16 not supported here" for c in report.failures)
    assert "FAIL raised" in report.table() and "bf16 not supported here" in report.table()


def test_a_loss_without_gradient_fails_and_the_float32_reference_is_the_fallback():
    def no_grad_no_double(x, t):
        if x.dtype == torch.float64:
            raise TypeError("no float64")
        return stableloss.dice_loss(x, t, mode="binary").detach()

    outcome = evaluate(no_grad_no_double, Example("binary", (1, 1, 4, 4), "blob", "noise", 1.0), "float32")
    assert outcome.grad_nonfinite == -1 and outcome.reason == "nograd" and not outcome.ok
    assert "no gradient reached the logits" in outcome.describe()
    assert outcome.reference_dtype == "float32" and outcome.error == 0.0
    assert outcome.reference_note == "the loss itself raised in float64: TypeError: no float64"


def test_relative_error_beyond_tolerance_fails_the_cell():
    def biased(x, t):
        return stableloss.dice_loss(x, t, mode="binary") * (1.01 if x.dtype == torch.float16 else 1.0)
    report = check_stability(biased, mode="binary", quick=True, scenarios=[("noise", 1.0)], tolerance=1e-3)
    assert {c.context for c in report.failures} == {"fp16-autocast", "fp16"}  # both pass fp16 logits
    assert all(c.failure.reason == "err" and abs(c.failure.error - 0.01) < 1e-4 for c in report.failures)


def test_assert_stable_raises_with_the_table():
    ops = pytest.importorskip("torchvision.ops")
    with pytest.raises(AssertionError, match=r"(?s)not stable under mixed precision.*wrong x100000 .*FAIL loss"):
        assert_stable(ops.sigmoid_focal_loss, mode="binary", contexts=["fp16"], quick=True, scenarios=[("wrong", 1e5)])
    assert assert_stable(stableloss.DiceLoss("binary"), mode="binary", quick=True).ok


def test_same_call_gives_the_same_table():
    smp = pytest.importorskip("segmentation_models_pytorch")
    tables = [check_stability(smp.losses.FocalLoss("binary"), mode="binary", quick=True, seed=3).table() for _ in range(2)]
    assert tables[0] == tables[1]
    assert "FAIL" in tables[0]  # a table with failures and numbers, not a trivially equal one


def test_bad_arguments_name_the_argument():
    loss = stableloss.DiceLoss("binary")
    with pytest.raises(ValueError, match=r"contexts must be a non-empty sequence of .*received \['fp8'\]"):
        check_stability(loss, mode="binary", contexts=["fp8"])
    with pytest.raises(ValueError, match=r"mode must be one of .*received 'binray'"):
        check_stability(loss, mode="binray")
    with pytest.raises(ValueError, match=r"scenarios must be .*received \('sure', 1.0\)"):
        check_stability(loss, mode="binary", scenarios=[("sure", 1.0)])
    with pytest.raises(ValueError, match=r"masks must be a non-empty sequence of .*received \['square'\]"):
        check_stability(loss, mode="binary", masks=["square"])
    with pytest.raises(ValueError, match=r"scenarios must be a non-empty sequence of .*received \[\]"):
        check_stability(loss, mode="binary", scenarios=[])
    with pytest.raises(ValueError, match=r"sizes must be a non-empty sequence of .*received \[\]"):
        check_stability(loss, mode="binary", sizes=[])
    with pytest.raises(ValueError, match=r"sizes must be .*ints >= 1.*received \(0, 8, 8\)"):
        check_stability(loss, mode="binary", sizes=[(0, 8, 8)])
    with pytest.raises(ValueError, match=r"tolerance must be in \[0.0, inf\]; received -0.001"):
        check_stability(loss, mode="binary", tolerance=-1e-3)
    with pytest.raises(ValueError, match=r"channels must be 1 with mode='binary' .*received 3"):
        check_stability(loss, mode="binary", channels=3)
    with pytest.raises(ValueError, match=r"channels must be >= 2 with mode='multiclass' .*received 1"):
        check_stability(stableloss.DiceLoss("multiclass"), mode="multiclass", channels=1)


@pytest.mark.parametrize("budget", [0, 0.0, -1.0, float("nan")])
def test_a_non_positive_time_budget_is_refused(budget):
    with pytest.raises(ValueError, match=r"time_budget must be (a positive number of seconds, or None|finite); received"):
        check_stability(stableloss.DiceLoss("binary"), mode="binary", quick=True, time_budget=budget)


def test_cells_the_time_budget_cut_short_do_not_hold():
    # 1 ns runs out before (or right after) the first example: every cell is incomplete, none failed.
    report = check_stability(stableloss.DiceLoss("binary"), mode="binary", quick=True, time_budget=1e-9)
    assert not report.failures and not report.complete and not report.ok
    assert len(report.incomplete) == len(report.cells) == 45
    assert all(not cell.ok and cell.skipped > 0 and cell.run + cell.skipped == 10 for cell in report.cells.values())
    table = report.table()
    assert "0 of 45 cells hold, 0 fail, 45 incomplete (the time budget of 1e-09 s ran out" in table
    assert "skipped" in table and "neither holds" in table
    with pytest.raises(AssertionError, match=r"not every example was checked \(the time budget ran out\)"):
        assert_stable(stableloss.DiceLoss("binary"), mode="binary", quick=True, time_budget=1e-9)


def _dice(x, t):
    return stableloss.dice_loss(x, t, mode="binary")


def _ten_times_dice(x, t):
    return 10 * _dice(x, t)


def _raising_reference(x, t):
    raise RuntimeError("reference blew up")


def _nan_reference(x, t):
    return _dice(x, t) * float("nan")


@pytest.mark.parametrize("reference, why", [
    (_raising_reference, "the reference raised in float64: RuntimeError: reference blew up"),
    (_nan_reference, "the reference is nan on these logits"),
])
def test_a_reference_that_cannot_be_computed_fails_the_cell_and_says_why(reference, why):
    report = check_stability(_ten_times_dice, mode="binary", quick=True, reference=reference,
                             contexts=["float32", "fp16"], scenarios=[("noise", 1.0)])
    assert not report.ok and len(report.failures) == 2
    assert all(c.failure.reason == "ref" and c.failure.reference_note == why for c in report.failures)
    assert "FAIL ref" in report.table() and why in report.table()
    # with the same (sound) loss and a working reference, the 10x error is what fails
    checked = check_stability(_ten_times_dice, mode="binary", quick=True, reference=lambda x, t: _dice(x, t),
                              contexts=["float32"], scenarios=[("noise", 1.0)])
    assert [c.failure.reason for c in checked.failures] == ["err"]
    # without a tolerance there is nothing to check it against: finiteness alone decides
    assert check_stability(_dice, mode="binary", quick=True, reference=reference, tolerance=None,
                           contexts=["fp16"], scenarios=[("noise", 1.0)]).ok


def test_a_self_reference_that_cannot_be_computed_fails_the_cell():
    def half_only(x, t):  # runs in float16 only: neither float64 nor float32 can give a reference
        if x.dtype in (torch.float64, torch.float32):
            raise TypeError(f"{x.dtype} not supported")
        return _dice(x, t)

    report = check_stability(half_only, mode="binary", quick=True, contexts=["fp16"], scenarios=[("noise", 1.0)])
    (cell,) = report.failures
    assert cell.failure.reason == "ref" and cell.failure.reference is None
    assert cell.failure.reference_note == ("the loss itself raised in float64: TypeError: torch.float64 not supported; "
                                           "the loss itself raised in float32: TypeError: torch.float32 not supported")


def test_a_self_reference_that_is_nan_where_the_loss_is_finite_fails_the_cell():
    def nan_in_float64(x, t):
        return _dice(x, t) * (float("nan") if x.dtype == torch.float64 else 1.0)

    report = check_stability(nan_in_float64, mode="binary", quick=True, contexts=["bf16"], scenarios=[("right", 30.0)])
    (cell,) = report.failures
    assert cell.failure.reason == "ref" and cell.failure.reference_note == "the loss itself is nan on these logits"


def test_a_weaker_than_float64_reference_is_named_under_the_table():
    def float32_inside(x, t):  # computes in float32 whatever it is given
        return _dice(x.float(), t.float() if t.is_floating_point() else t)

    report = check_stability(float32_inside, mode="binary", quick=True, contexts=["fp16"], scenarios=[("noise", 1.0)])
    assert report.ok
    cell = report.cells[(("noise", 1.0), "fp16")]
    assert cell.reference_notes == {"the loss itself returned float32 for float64 logits": 10}
    assert "Reference notes (passing runs whose reference was not a finite float64 value):\n" \
           "- the loss itself returned float32 for float64 logits (10 runs)" in report.table()
    assert "Reference notes" not in check_stability(_dice, mode="binary", quick=True, contexts=["fp16"]).table()


def test_a_loss_that_edits_its_target_in_place_is_compared_on_the_original_target():
    def erases_target(x, t):  # a bug the checker must see: the loss scores an empty target
        t.zero_()
        return _dice(x, t)

    report = check_stability(erases_target, mode="binary", sizes=[(1, 8, 8)], masks=["blob"], contexts=["float32"],
                             scenarios=[("wrong", 30.0)], reference=lambda x, t: _dice(x, t))
    (cell,) = report.failures
    assert cell.failure.reason == "err" and cell.failure.reference == pytest.approx(1.0)


def test_the_default_grid_has_three_channels_at_every_size():
    seen = set()

    def recording(x, t):
        seen.add(x.shape[1])
        return stableloss.dice_loss(x, t, mode="multiclass")

    check_stability(recording, mode="multiclass", sizes=[(1, 8, 8), (2, 256, 256)], contexts=["float32"],
                    scenarios=[("noise", 1.0)])
    assert seen == {3}


def test_per_class_options_hold_at_large_sizes_with_the_default_channels():
    loss = stableloss.FocalLoss("multiclass", alpha=[0.2, 0.3, 0.5])
    report = check_stability(loss, mode="multiclass", sizes=[(1, 8, 8), (2, 256, 256)], contexts=["float32"],
                             scenarios=[("noise", 1.0)])
    assert report.ok, report.table()
    assert "mode='multiclass', channels=3, device=cpu" in report.title


def test_core_package_and_checker_import_without_hypothesis():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import stableloss, stableloss.testing, stableloss.check\n"
            "try:\n    import stableloss.testing.strategies\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "stableloss.testing.strategies needs Hypothesis" in out.stdout


# The command line. The quick grid keeps each call to a few seconds.

def test_cli_exits_0_for_a_stableloss_loss():
    out = run_cli("stableloss:DiceLoss", "--mode", "binary", "--quick")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "stability of stableloss:DiceLoss, mode='binary' (quick), device=cpu" in out.stdout
    assert "45 of 45 cells hold, 0 fail" in out.stdout


def test_cli_exits_1_and_prints_failing_cells_for_an_unstable_loss():
    pytest.importorskip("torchvision")
    out = run_cli("torchvision.ops:sigmoid_focal_loss", "--quick", "--kwargs", '{"reduction": "mean"}')
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL loss" in out.stdout and "Smallest failing example per failing cell:" in out.stdout
    assert 'stability of torchvision.ops:sigmoid_focal_loss {"reduction": "mean"}' in out.stdout


def test_cli_builds_classes_with_mode_and_kwargs():
    out = run_cli("stableloss:TverskyLoss", "--mode", "multiclass", "--kwargs", '{"alpha": 0.3, "beta": 0.7}',
                  "--quick", "--contexts", "fp16,bf16")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mode='multiclass'" in out.stdout and "18 of 18 cells hold" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["nosuchmodule:Loss"], "error: cannot import module 'nosuchmodule': ModuleNotFoundError"),
    (["stableloss:NoSuchLoss"], "error: module 'stableloss' has no attribute 'NoSuchLoss'"),
    (["stableloss.DiceLoss"], "error: the loss must be given as MODULE:ATTR"),
    (["stableloss:DiceLoss", "--kwargs", "{oops"], "error: --kwargs must be a JSON object"),
    (["stableloss:DiceLoss", "--kwargs", '{"bogus": 1}'], "error: cannot build DiceLoss"),
    # the same unknown keyword for a function: its signature refuses it before anything runs
    (["stableloss:dice_loss", "--kwargs", '{"smoth": 1}'],
     ("error: cannot call dice_loss(logits, target, **{'smoth': 1, 'mode': 'binary'}): got an unexpected keyword "
     "argument 'smoth'")),
    # a nested option only the first call sees
    (["stableloss:boundary_aware_loss", "--kwargs", '{"dice_options": {"smoth": 1}}'],
     "error: the loss does not take the --kwargs keyword 'smoth': dice_loss() got an unexpected keyword argument"),
    (["stableloss:DiceLoss", "--time-budget", "0"], ("error: --time-budget must be a positive number of seconds; "
                                                    "received 0.0")),
    (["stableloss:DiceLoss", "--time-budget", "-5"], ("error: --time-budget must be a positive number of seconds; "
                                                     "received -5.0")),
    (["stableloss:DiceLoss", "--mode", "multiclass", "--channels", "1"],
     "error: --channels must be >= 2 with --mode multiclass; received 1"),
    (["stableloss:DiceLoss", "--channels", "3"], "error: --channels must be 1 with --mode binary; received 3"),
    (["stableloss:FocalLoss", "--mode", "multiclass", "--kwargs", '{"alpha": [1, 2, 3], "class_weights": [1, 2]}'],
     ("error: per-class --kwargs disagree on the number of classes (alpha has 3, class_weights has 2 entries); "
     "pass --channels")),
    (["stableloss:DiceLoss", "--kwargs", '{"mode": "multiclass"}'], "error: --kwargs must not hold 'mode'"),
    (["stableloss:DiceLoss", "--mode", "binray"], "argument --mode: invalid choice: 'binray'"),
    (["stableloss:DiceLoss", "--contexts", "fp8"], "error: --contexts must be a comma-separated subset"),
])
def test_cli_usage_errors_exit_2_with_a_clear_message(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert out.stdout == ""


def test_cli_non_positive_time_budget_is_a_usage_error_for_smp_dice():
    pytest.importorskip("segmentation_models_pytorch")
    out = run_cli("segmentation_models_pytorch.losses:DiceLoss", "--time-budget", "0")
    assert out.returncode == 2 and out.stdout == ""
    assert "--time-budget must be a positive number of seconds; received 0.0" in out.stderr


def test_cli_exits_3_when_the_time_budget_leaves_examples_unrun():
    out = run_cli("stableloss:DiceLoss", "--quick", "--time-budget", "1e-9")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "0 of 45 cells hold, 0 fail, 45 incomplete" in out.stdout


def test_cli_help_documents_every_exit_status():
    out = run_cli("--help")
    text = " ".join(out.stdout.split())
    assert "exit status: 0 every cell ran every example and held; 1 a cell failed; 2 usage error; 3 nothing " \
           "failed but the time budget ran out" in text


def test_cli_infers_the_channel_count_from_per_class_kwargs():
    out = run_cli("stableloss:FocalLoss", "--mode", "multiclass", "--kwargs", '{"alpha": [0.1, 0.2, 0.3, 0.4]}',
                  "--quick", "--contexts", "fp16")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mode='multiclass' (quick), channels=4, device=cpu" in out.stdout and "9 of 9 cells hold" in out.stdout


def test_cli_channels_option_sets_the_channel_count():
    out = run_cli("stableloss:DiceLoss", "--mode", "multilabel", "--channels", "5", "--kwargs",
                  '{"class_weights": [1, 1, 1, 1, 2]}', "--quick", "--contexts", "bf16")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mode='multilabel' (quick), channels=5, device=cpu" in out.stdout


def test_function_keywords_are_bound_against_a_generated_signature():
    def options_loss(input, target, **options):
        return stableloss.dice_loss(input, target, **options)

    options_loss.__signature__ = inspect.signature(stableloss.dice_loss)  # as a generated signature would be
    with pytest.raises(check.UsageError, match=r"cannot call options_loss\(logits, target, .*'smoth'"):
        check.build_loss(options_loss, mode="binary", kwargs={"smoth": 1})
    assert check.build_loss(options_loss, mode="binary", kwargs={"smooth": 1.0}).keywords == {"smooth": 1.0,
                                                                                              "mode": "binary"}


def test_an_unexpected_keyword_on_the_first_call_is_a_usage_error_and_other_failures_are_not():
    def forwards(input, target, **options):  # no signature to bind against: the first call decides
        return stableloss.dice_loss(input, target, mode="binary", **options)

    loss = check.build_loss(forwards, mode="binary", kwargs={"smoth": 1})
    with pytest.raises(check.UsageError, match=r"does not take the --kwargs keyword 'smoth'"):
        check.check_first_call(loss, {"smoth": 1}, mode="binary", channels=1, device="cpu")

    def buggy(input, target, smooth=0.0):  # a genuine failure, even when it is a TypeError: the grid shows it
        return stableloss.dice_loss(input, target, mode="binary", smooth=smooth, bogus=True)

    check.check_first_call(check.build_loss(buggy, mode="binary", kwargs={"smooth": 1.0}), {"smooth": 1.0},
                           mode="binary", channels=1, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is present")
def test_cli_cuda_without_a_gpu_is_a_usage_error():
    out = run_cli("stableloss:DiceLoss", "--device", "cuda", "--quick")
    assert out.returncode == 2 and "no CUDA device is available" in out.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_checker_cuda_contexts_hold_for_stableloss_dice():
    report = check_stability(stableloss.DiceLoss("binary").cuda(), mode="binary", device="cuda", quick=True)
    assert report.ok, report.table()
    assert "(cuda autocast)" in report.title


# The Hypothesis strategies refuse, when they are built, what they cannot honour.

sst = pytest.importorskip("stableloss.testing.strategies")

BAD_STRATEGY_ARGUMENTS = [
    (lambda: sst.scales(0.5), ValueError, r"max_value must be a number >= 1 \(inf allowed\).*received 0.5"),
    (lambda: sst.scales(math.nan), ValueError, r"max_value must be a number >= 1 .*received nan"),
    (lambda: sst.examples(max_scale=0.0), ValueError, r"max_scale must be a number >= 1 .*received 0.0"),
    (lambda: sst.examples(max_scale="big"), TypeError, r"max_scale must be a number >= 1 .*received str 'big'"),
    (lambda: sst.shapes(spatial_dims=(4,)), ValueError, (r"spatial_dims must be a non-empty sequence of \(1, 2, 3\); "
                                                        r"received \[4\]")),
    (lambda: sst.examples(spatial_dims=()), ValueError, r"spatial_dims must be a non-empty sequence .*received \[\]"),
    (lambda: sst.shapes("multiclass", max_channels=1), ValueError,
     r"max_channels must be an int >= 2 for mode='multiclass'; received 1"),
    (lambda: sst.examples(max_channels=1), ValueError,
     r"max_channels must be an int >= 2 for mode=None \(which may draw 'multiclass'\); received 1"),
    (lambda: sst.shapes("multilabel", max_channels=0), ValueError, r"max_channels must be an int >= 1; received 0"),
    (lambda: sst.shapes(max_batch=0), ValueError, r"max_batch must be an int >= 1; received 0"),
    (lambda: sst.shapes(max_side=0), ValueError, r"max_side must be an int >= 1; received 0"),
    (lambda: sst.shapes(max_side=2.5), TypeError, r"max_side must be an int >= 1; received float 2.5"),
    (lambda: sst.examples(masks=[]), ValueError, r"masks must be a non-empty sequence of \('empty', .*received \[\]"),
    (lambda: sst.examples(masks=["square"]), ValueError, r"masks must be a non-empty sequence .*received \['square'\]"),
    (lambda: sst.examples(logits=()), ValueError, r"logits must be a non-empty sequence of \('right', .*received \[\]"),
    (lambda: sst.examples(logits=["sure"]), ValueError, r"logits must be .*received \['sure'\]"),
    (lambda: sst.mask_kinds("blob"), TypeError, r"kinds must be a non-empty sequence .*received 'blob'"),
    (lambda: sst.examples("binray"), ValueError, r"mode must be one of \('binary', .*received 'binray'"),
    (lambda: sst.shapes("binray"), ValueError, r"mode must be one of .*received 'binray'"),
    (lambda: sst.examples(max_sid=3), TypeError, r"examples\(\) takes the shape options .*received unknown \['max_sid'\]"),
    (lambda: sst.dtypes([]), ValueError, r"choices must be a non-empty sequence; received \[\]"),
    (lambda: sst.dtypes([torch.int32]), TypeError, r"choices must be a floating torch.dtype .*received torch.int32"),
    (lambda: sst.logits_and_targets(dtype=torch.long), TypeError, r"dtype must be a floating torch.dtype .*torch.int64"),
    (lambda: sst.logits_and_targets(max_scale=-1), ValueError, r"max_scale must be a number >= 1 .*received -1"),
]


@pytest.mark.parametrize("build, error, message", BAD_STRATEGY_ARGUMENTS)
def test_strategies_refuse_arguments_they_cannot_honour_when_built(build, error, message):
    with pytest.raises(error, match=message):
        build()  # building the strategy raises: no example is drawn


def test_strategies_draw_within_their_arguments():
    from hypothesis import given, settings

    @settings(max_examples=30, database=None, derandomize=True)
    @given(multiclass=sst.examples("multiclass", max_channels=2, spatial_dims=(1,), max_batch=1, max_side=3,
                                   max_scale=1.0, masks=["blob"], logits=["wrong"]),
           multilabel=sst.shapes("multilabel", max_channels=1, spatial_dims=(3,)))
    def draws(multiclass, multilabel):
        assert multiclass.shape[:2] == (1, 2) and len(multiclass.shape) == 3 and multiclass.shape[2] <= 3
        assert multiclass.scale == 1.0 and (multiclass.mask, multiclass.logits) == ("blob", "wrong")
        assert multilabel[1] == 1 and len(multilabel) == 5

    draws()


def test_an_autocast_context_that_does_not_cast_fails_instead_of_passing(monkeypatch):
    # torch < 2.2 disables CPU float16 autocast with a warning: that column would check nothing
    import stableloss.testing._evaluate as engine

    assert engine.autocast_applies("cpu", torch.bfloat16)
    monkeypatch.setattr(engine, "autocast_applies", lambda device_type, dtype: False)
    report = check_stability(_dice, mode="binary", quick=True, contexts=["fp16-autocast", "fp16"],
                             scenarios=[("noise", 1.0)])
    (cell,) = report.failures
    assert cell.context == "fp16-autocast" and cell.failure.reason == "raised"
    assert "torch.autocast('cpu', dtype=torch.float16) does not cast" in cell.failure.exception
    assert "context 'fp16-autocast' was not checked" in cell.failure.exception


# --- input conventions: probabilities, and the target's layout -----------------------------------------

def _recording_loss(seen):
    def loss(x, t):
        seen.append((x.detach().clone(), t.clone()))
        return stableloss.soft_bce_with_logits_loss(x.float().clamp(0, 1), torch.zeros_like(x, dtype=torch.float32))
    return loss


def test_probabilities_are_the_rounded_sigmoid_and_the_reference_sees_the_same_values():
    example = Example("binary", (2, 1, 8, 8), "blob", "noise", 3.0, seed=5)
    seen, referenced = [], []
    outcome = evaluate(_recording_loss(seen), example, "fp16", input="probabilities",
                       reference=lambda x, t: referenced.append(x.clone()) or x.sum() * 0)
    logits, _ = example.tensors()
    (probs, _), = seen
    assert probs.dtype == torch.float16
    torch.testing.assert_close(probs, torch.sigmoid(logits).half(), rtol=0, atol=0)  # rounded once, from float32
    assert referenced[0].dtype == torch.float64 and torch.equal(referenced[0], probs.double())
    assert outcome.grad_nonfinite == 0  # the gradient is taken with respect to the probabilities
    multiclass = Example("multiclass", (2, 3, 8, 8), "blob", "noise", 3.0)
    seen.clear()
    evaluate(_recording_loss(seen), multiclass, "float32", input="probabilities", tolerance=None)
    torch.testing.assert_close(seen[0][0].sum(1), torch.ones(2, 8, 8))  # a softmax over the classes


@pytest.mark.parametrize("mode, layout, shape, dtype", [
    ("binary", None, (2, 1, 8, 8), torch.float32),
    ("binary", "indices", (2, 8, 8), torch.float32),
    ("binary", "one-hot", (2, 1, 8, 8), torch.float32),
    ("multiclass", None, (2, 8, 8), torch.long),
    ("multiclass", "indices-channel", (2, 1, 8, 8), torch.long),
    ("multiclass", "one-hot", (2, 3, 8, 8), torch.float32),
    ("multilabel", "one-hot", (2, 3, 8, 8), torch.float32),
])
def test_target_layouts(mode, layout, shape, dtype):
    channels = 1 if mode == "binary" else 3
    example = Example(mode, (2, channels, 8, 8), "random", "noise", 1.0, seed=6)
    seen = []
    evaluate(_recording_loss(seen), example, "float32", target_layout=layout, tolerance=None)
    target = seen[0][1]
    assert tuple(target.shape) == shape and target.dtype == dtype
    _, built = example.tensors()
    if mode == "multiclass" and layout == "one-hot":
        assert torch.equal(target.argmax(1), built) and bool((target.sum(1) == 1).all())
    else:
        assert torch.equal(target.reshape(built.shape), built)


@pytest.mark.parametrize("options, message", [
    ({"target_layout": "indices"}, "target_layout must be 'one-hot' (or None) with mode='multilabel'"),
    ({"target_layout": "onehot"}, "target_layout must be None or one of ('indices', 'indices-channel', 'one-hot')"),
    ({"input": "probs"}, "input must be one of ('logits', 'probabilities'); received 'probs'"),
])
def test_conventions_that_do_not_apply_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_stability(stableloss.DiceLoss("multilabel"), mode="multilabel", quick=True, **options)


def test_cli_refuses_an_index_layout_for_multilabel_targets():
    out = run_cli("stableloss:DiceLoss", "--mode", "multilabel", "--target-layout", "indices-channel")
    assert out.returncode == 2 and out.stdout == ""
    assert "error: --target-layout indices-channel does not apply to --mode multilabel" in out.stderr


SMALL_GRID = dict(contexts=["float32", "fp16"], sizes=[(2, 16, 16)], scenarios=[("noise", 1.0), ("noise", 1e5)])


def test_monai_dice_with_to_onehot_y_runs_with_indices_channel_targets_and_fails_where_ours_holds():
    monai_losses = pytest.importorskip("monai.losses")
    monai_dice = monai_losses.DiceLoss(softmax=True, to_onehot_y=True)
    without = check_stability(monai_dice, mode="multiclass", **SMALL_GRID)
    assert all(c.failure.reason == "raised" and "labels should have a channel with length equal to one"
               in c.failure.exception for c in without.cells.values())
    report = check_stability(monai_dice, mode="multiclass", target_layout="indices-channel", **SMALL_GRID)
    assert "target_layout=indices-channel" in report.title
    assert not any(c.failure.reason == "raised" for c in report.failures)
    assert report.cells[(("noise", 1.0), "float32")].ok
    assert report.cells[(("noise", 1e5), "fp16")].failure.reason == "loss"  # NaN from the float16 softmax of +-inf
    assert check_stability(stableloss.DiceLoss("multiclass"), mode="multiclass", **SMALL_GRID).ok


def test_smp_mcc_on_probabilities_fails_in_fp16_where_ours_holds():
    smp = pytest.importorskip("segmentation_models_pytorch")
    theirs = check_stability(smp.losses.MCCLoss(), mode="binary", input="probabilities", **SMALL_GRID)
    assert "input=probabilities" in theirs.title
    assert theirs.cells[(("noise", 1.0), "float32")].ok
    assert {c.context for c in non_finite_cells(theirs)} == {"fp16"}  # float16 products of counts overflow
    assert check_stability(stableloss.MCCLoss(), mode="binary", input="probabilities", **SMALL_GRID).ok


def test_cli_checks_a_probability_loss_with_input_probabilities():
    out = run_cli("stableloss:MCCLoss", "--input", "probabilities", "--quick", "--contexts", "fp16,bf16")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "input=probabilities" in out.stdout and "18 of 18 cells hold" in out.stdout
