"""The stability checker itself: it must catch real failures, pass stable losses, and be deterministic."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stableloss
from stableloss.testing import Example, assert_stable, check_stability, evaluate
from tests.stability_cases import CORE

ROOT = Path(__file__).resolve().parents[1]
MODES = ("binary", "multiclass", "multilabel")


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "stableloss.check", *args], capture_output=True, text=True,
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
NO_FAILURE = [pytest.param(c, "binary", id=f"{c.name}-binary") for c in CORE] + [
    pytest.param(BOUNDARY, mode, id=f"{BOUNDARY.name}-{mode}") for mode in ("multiclass", "multilabel")]


@pytest.mark.parametrize("case, mode", NO_FAILURE)
def test_checker_reports_no_failure_for_stableloss_losses(case, mode):
    report = check_stability(case.build(mode), mode=mode, quick=True)
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
    assert outcome.grad_nonfinite == -1 and outcome.reason == "grad" and not outcome.ok
    assert outcome.reference_dtype == "float32" and outcome.error == 0.0


def test_relative_error_beyond_tolerance_fails_the_cell():
    biased = lambda x, t: stableloss.dice_loss(x, t, mode="binary") * (1.01 if x.dtype == torch.float16 else 1.0)  # noqa: E731
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
    with pytest.raises(ValueError, match=r"contexts must be a non-empty list of .*received \['fp8'\]"):
        check_stability(loss, mode="binary", contexts=["fp8"])
    with pytest.raises(ValueError, match=r"mode must be one of .*received 'binray'"):
        check_stability(loss, mode="binray")
    with pytest.raises(ValueError, match=r"scenarios must be .*received \('sure', 1.0\)"):
        check_stability(loss, mode="binary", scenarios=[("sure", 1.0)])
    with pytest.raises(ValueError, match=r"masks must be a non-empty list of .*received \['square'\]"):
        check_stability(loss, mode="binary", masks=["square"])


def test_time_budget_skips_the_rest_and_says_so():
    report = check_stability(stableloss.DiceLoss("binary"), mode="binary", quick=True, time_budget=0.0)
    assert report.ok and not report.complete
    assert all(cell.run == 0 and cell.skipped == 10 for cell in report.cells.values())
    assert "time budget reached" in report.table()


def test_core_package_and_checker_import_without_hypothesis():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import stableloss, stableloss.testing, stableloss.check\n"
            "try:\n    import stableloss.testing.strategies\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
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
    (["stableloss:DiceLoss", "--mode", "binray"], "argument --mode: invalid choice: 'binray'"),
    (["stableloss:DiceLoss", "--contexts", "fp8"], "error: --contexts must be a comma-separated subset"),
])
def test_cli_usage_errors_exit_2_with_a_clear_message(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert out.stdout == ""


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
