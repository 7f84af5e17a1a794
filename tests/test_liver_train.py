"""Liver example, training: non-finite guard, checkpoints, resume, folds on small data, --quick end to end."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

import nibabel as nib  # noqa: E402
import train_liver  # noqa: E402

from liver import checkpoint  # noqa: E402
from liver.cache import build_cache  # noqa: E402
from liver.config import parser  # noqa: E402
from liver.data import find_cases  # noqa: E402
from liver.folds import patient_folds  # noqa: E402
from liver.guard import NonFiniteError, NonFiniteGuard  # noqa: E402
from liver.infer import predict_volume  # noqa: E402
from liver.model import build_model  # noqa: E402
from liver.phantom import write_phantom  # noqa: E402
from liver.postprocess import keep_largest_component  # noqa: E402
from liver.precision import Precision  # noqa: E402
from stableloss import (  # noqa: E402
    BoundaryLoss,
    CombinedLoss,
    DiceLoss,
    FocalLoss,
    average_surface_distance,
    hausdorff_distance,
    signed_distance_map,
)
from tests.liver_state import train_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--phantom-volumes", "3", "--phantom-size", "32", "--phantom-slices", "8", "--img-size", "32", "--epochs", "2",
        "--batch-size", "4", "--folds", "3", "--encoder-weights", "none", "--device", "cpu"]


def tiny(tmp_path, *extra, out="run"):
    return TINY + ["--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / out), *extra]


def test_guard_names_the_nonfinite_term_and_batch():
    messages = []
    guard = NonFiniteGuard(patience=2, log=messages.append)
    ok = guard.check_loss({"dice": torch.tensor(0.3), "focal": torch.tensor(float("nan"))}, "epoch 1, batch 7")
    assert not ok and guard.skipped == 1
    assert messages == ["non-finite: loss term 'focal' = nan at epoch 1, batch 7; step skipped"]
    assert guard.check_grad(torch.tensor(1.0), "epoch 1, batch 8")  # a finite step resets the run
    assert not guard.check_loss({"dice": torch.tensor(float("inf"))}, "epoch 1, batch 10")
    with pytest.raises(NonFiniteError, match=r"2 consecutive .* first: loss term 'dice' = \+inf at epoch 1, batch 10"):
        guard.check_grad(torch.tensor(float("nan")), "epoch 1, batch 11")


def test_guard_leaves_fp16_gradient_overflow_to_the_grad_scaler():
    guard = NonFiniteGuard(patience=1, scaler_active=True, log=lambda m: None)
    assert guard.check_grad(torch.tensor(float("inf")), "epoch 1, batch 0")  # scaler.step runs, and skips itself
    assert guard.check_grad(torch.tensor(float("inf")), "epoch 1, batch 1")  # never stops training
    assert (guard.scaler_skipped, guard.skipped) == (2, 0)


def test_guard_skips_a_step_that_is_nonfinite_on_another_rank():
    guard = NonFiniteGuard(patience=5, all_ranks=lambda flag: False, log=lambda m: None)
    assert not guard.check_loss({"dice": torch.tensor(0.3)}, "epoch 2, batch 3")
    assert guard.events == ["loss non-finite on another rank at epoch 2, batch 3"]


def test_disabled_guard_records_but_never_skips_or_stops():
    guard = NonFiniteGuard(patience=1, enabled=False, log=lambda m: None)
    for batch in range(3):
        assert guard.check_loss({"dice": torch.tensor(float("nan")), "focal": torch.tensor(0.5)}, f"epoch 1, batch {batch}")
        assert guard.check_grad(torch.tensor(float("nan")), f"epoch 1, batch {batch}")
    assert guard.skipped == 0
    assert guard.events[0] == "unguarded: non-finite loss at epoch 1, batch 0: dice=nan, focal=0.5"


class NaNAt:
    """A loss term that returns NaN (with a NaN gradient) on chosen calls."""

    def __init__(self, calls):
        self.calls, self.n = set(calls), 0

    def __call__(self, x, t):
        self.n += 1
        loss = FocalLoss("binary")(x, t)
        return loss * float("nan") if (self.n in self.calls or "all" in self.calls) else loss


def _inject(monkeypatch, calls):
    term = NaNAt(calls)
    monkeypatch.setattr(train_liver, "build_loss", lambda *a, **k: CombinedLoss({"dice": DiceLoss("binary"), "focal": term}))


def test_injected_nan_is_skipped_and_named(tmp_path, monkeypatch, capsys):
    _inject(monkeypatch, {2})
    summary = train_liver.main(tiny(tmp_path))
    assert summary["status"] == "finished" and summary["skipped_steps"] == 1
    assert summary["nonfinite_events"] == ["loss term 'focal' = nan at epoch 1, batch 1"]
    assert "non-finite: loss term 'focal' = nan at epoch 1, batch 1; step skipped" in capsys.readouterr().out
    ckpt = checkpoint.read_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert ckpt["guard"]["skipped"] == 1 and ckpt["guard"]["events"] == summary["nonfinite_events"]


def test_repeated_nan_stops_with_diagnosis(tmp_path, monkeypatch):
    _inject(monkeypatch, {"all"})
    summary = train_liver.main(tiny(tmp_path, "--patience", "2"))
    assert summary["status"] == ("stopped: 2 consecutive non-finite steps (2 skipped in all); first: loss term 'focal' = "
                                 "nan at epoch 1, batch 0; last: loss term 'focal' = nan at epoch 1, batch 1")
    assert summary["epochs_run"] == 0 and not (tmp_path / "run" / "best.pt").exists()


def test_diverged_weights_are_never_saved(tmp_path):
    summary = train_liver.main(tiny(tmp_path, "--no-guard", "--lr", "1e30", "--clip", "1e30"))
    assert summary["status"].startswith("stopped: parameter ")
    assert summary["status"].endswith("is not finite after epoch 1; no checkpoint written")
    assert not (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "run" / "best.pt").exists()


def test_checkpoint_refuses_nonfinite_weights(tmp_path):
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="parameter 'bias' is not finite"):
        checkpoint.save_checkpoint(tmp_path / "m.pt", train_state(model), {})
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    state = train_state(torch.nn.Linear(2, 1))
    state.epoch = 1
    checkpoint.save_checkpoint(tmp_path / "m.pt", state, {})

    def crash(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    state.epoch = 2
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(tmp_path / "m.pt", state, {})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    assert checkpoint.read_checkpoint(tmp_path / "m.pt")["epoch"] == 1


class ScheduledLoss(CombinedLoss):
    """A loss whose weights move with the steps taken, keeping its position as extra state (the way
    a loss-weight schedule would)."""

    def __init__(self):
        super().__init__({"dice": DiceLoss("binary")})
        self.steps = 0

    def get_extra_state(self):
        return {"steps": self.steps}

    def set_extra_state(self, state):
        self.steps = state["steps"]


def test_checkpoint_restores_every_part_including_loss_state(tmp_path):
    torch.manual_seed(0)
    state = train_state(torch.nn.Linear(3, 1))
    state.criterion = ScheduledLoss()
    for _ in range(3):  # give the optimizer, schedule and loss some state
        state.optimizer.zero_grad()
        state.model(torch.randn(4, 3)).sum().backward()
        state.optimizer.step()
        state.scheduler.step()
        state.criterion.steps += 1
    state.guard.skip("loss term 'dice' = nan at epoch 1, batch 2")
    state.epoch, state.step, state.best, state.history = 1, 3, 0.5, [{"epoch": 1}]
    checkpoint.save_checkpoint(tmp_path / "m.pt", state, {"lr": 1e-3})
    expected_rng = torch.rand(3)

    fresh = train_state(torch.nn.Linear(3, 1))
    fresh.criterion = ScheduledLoss()
    checkpoint.load_checkpoint(tmp_path / "m.pt", fresh)
    assert torch.equal(torch.rand(3), expected_rng)  # the random stream continues where it was saved
    for name in checkpoint.PARTS:
        saved, restored = state.part(name).state_dict(), fresh.part(name).state_dict()
        assert repr(restored) == repr(saved), name
    assert fresh.criterion.steps == 3 and fresh.guard.skipped == 1 and fresh.guard.in_a_row == 1
    assert (fresh.epoch, fresh.step, fresh.best, fresh.history) == (1, 3, 0.5, [{"epoch": 1}])


def test_checkpoint_of_another_format_is_refused_by_name(tmp_path):
    torch.save({"model": {}, "epoch": 3}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old.pt' cannot resume this run: format None \(expected 3\), missing "
                                         r"\['optimizer', 'scheduler', 'scaler', 'criterion', 'guard', 'step', 'best'"):
        checkpoint.load_checkpoint(tmp_path / "old.pt", train_state(torch.nn.Linear(2, 1)))


def test_resume_continues_as_if_never_interrupted(tmp_path):
    # Kervadec's recipe: a loss-weight schedule that moves every epoch, and distance maps from the cache
    train_liver.main(tiny(tmp_path, "--loss", "boundary-loss", out="straight"))
    first = train_liver.main(tiny(tmp_path, "--loss", "boundary-loss", out="resumed"), stop_after=1)
    assert first["epochs_run"] == 1 and first["status"] == "stopped after epoch 1"
    saved_schedule = checkpoint.read_checkpoint(tmp_path / "resumed" / "last.pt")["criterion"]["_extra_state"]["schedule"]
    assert saved_schedule == {"kind": "RebalanceSchedule", "config": {"start": 0.01, "increment": 0.01, "region_floor": 0.1},
                              "epoch": 1}
    second = train_liver.main(tiny(tmp_path, "--loss", "boundary-loss", "--resume", out="resumed"))
    assert second["epochs_run"] == 2 and second["train_steps"] == 2 * first["train_steps"]
    a = checkpoint.read_checkpoint(tmp_path / "straight" / "last.pt")
    b = checkpoint.read_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["criterion"]["_extra_state"] == b["criterion"]["_extra_state"]
    assert a["criterion"]["_extra_state"]["schedule"]["epoch"] == 2
    assert second["loss_weights"] == pytest.approx({"dice": 0.98, "boundary": 0.03 / 11.25})  # 11.25 mm pixels; no Focal term
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    for name, value in a["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg_sq"], b["optimizer"]["state"][name]["exp_avg_sq"]), name
    assert a["scheduler"] == b["scheduler"] and torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert [r["val_dice"] for r in a["history"]] == [r["val_dice"] for r in b["history"]]
    rows = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_dice") and len(rows) == 3


def test_quick_run_end_to_end(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "train_liver.py"), "--quick", "--encoder-weights", "none",
           "--img-size", "32", "--phantom-size", "32", "--phantom-slices", "12", "--epochs", "1",
           "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best validation Dice (3D, mean over 2 volumes)" in done.stdout
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "history.csv", "best.pt", "last.pt", "validation.png", "summary.json"} <= names
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_cli_bad_data_dir_is_one_line_naming_it(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "train_liver.py"), "--data-dir", str(tmp_path / "missing"),
           "--out-dir", str(tmp_path / "run")]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: data_dir '{tmp_path / 'missing'}' is not an existing folder"


def _two_volumes(tmp_path):
    return write_phantom(tmp_path / "data", 2, size=32, slices=8, seed=0)


def test_two_volumes_without_folds_use_two_folds_and_say_so(tmp_path, capsys):
    data = _two_volumes(tmp_path)
    summary = train_liver.main(["--data-dir", str(data), "--quick", "--img-size", "32", "--epochs", "1",
                                "--encoder-weights", "none", "--device", "cpu", "--threads", "1",
                                "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "--folds not given: using 2 folds, as many as there are volumes (the default is 3)\n" in out
    assert "2 volumes: 1 train, 1 validation (fold 0 of 2)" in out
    assert summary["status"] == "finished"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["folds"] == 2


def test_explicit_folds_the_data_cannot_serve_are_refused(tmp_path):
    data = _two_volumes(tmp_path)
    with pytest.raises(ValueError, match=r"^folds must be an int in \[2, number of cases = 2\]; received 3$"):
        train_liver.main(["--data-dir", str(data), "--quick", "--folds", "3", "--img-size", "32", "--device", "cpu",
                          "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")])


def test_fold_beyond_the_automatic_count_is_refused(tmp_path):
    data = _two_volumes(tmp_path)
    with pytest.raises(ValueError, match=r"--fold must be in \[0, 1\] \(--folds not given: 2 folds for 2 volumes\); "
                                         r"received 2"):
        train_liver.main(["--data-dir", str(data), "--quick", "--fold", "2", "--img-size", "32", "--device", "cpu",
                          "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")])


def test_one_volume_is_refused(tmp_path):
    data = write_phantom(tmp_path / "data", 1, size=32, slices=8, seed=0)
    with pytest.raises(ValueError, match=r"needs at least 2 volumes \(one to train on, one to validate\); found 1"):
        train_liver.main(["--data-dir", str(data), "--quick", "--img-size", "32", "--device", "cpu",
                          "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")])


def test_help_lists_user_options_only():
    text = parser().format_help()
    assert "--max-steps" in text and "--no-guard" in text and "--resume" in text
    assert "--stop-after" not in text and "==SUPPRESS==" not in text
    with pytest.raises(SystemExit):
        parser().parse_args(["--stop-after", "1"])  # an interruption is simulated through main(stop_after=...)


def test_precision_picks_autocast_dtype_and_grad_scaler_in_one_place():
    cpu = torch.device("cpu")
    assert Precision.resolve("auto", cpu).name == "fp32" and Precision.resolve("auto", torch.device("cuda")).name == "fp16"
    for name, dtype, scaled in (("fp32", torch.float32, False), ("bf16", torch.bfloat16, False), ("fp16", torch.float16, True)):
        precision = Precision.resolve(name, cpu)
        with precision.autocast():
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == dtype
        assert precision.grad_scaler().is_enabled() == scaled
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'fp32', 'bf16', 'fp16'\); received 'fp8'"):
        Precision.resolve("fp8", cpu)


class MapSpy(torch.nn.Module):
    """A boundary term that records the targets and distance maps the training step gives it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, input, target, distance_map=None):
        self.seen.append((target.detach().clone(), distance_map))
        return BoundaryLoss("binary", spacing=360 / 32)(input, target, distance_map=distance_map)  # the maps are in mm


def test_training_step_passes_the_cached_maps_to_the_loss(tmp_path, monkeypatch):
    spy = MapSpy()
    monkeypatch.setattr(train_liver, "build_loss", lambda *a, **k: CombinedLoss({"dice": DiceLoss("binary"), "boundary": spy}))
    train_liver.main(tiny(tmp_path, "--epochs", "1", "--max-steps", "2"))
    assert len(spy.seen) == 2
    for target, phi in spy.seen:  # each map is its own slice's, in mm (the tiny phantom: 360 mm over 32 pixels)
        assert phi is not None and phi.dtype == torch.float32 and phi.shape == target.shape == (4, 1, 32, 32)
        torch.testing.assert_close(phi, signed_distance_map(target, spacing=360 / 32), rtol=2.0**-11, atol=0)


def test_history_and_summary_report_hd95_and_assd_in_mm(tmp_path):
    summary = train_liver.main(tiny(tmp_path, "--loss", "dice"))
    with open(tmp_path / "run" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # recompute the last epoch's scores from last.pt, with the voxel size read from the NIfTI files
    ckpt = checkpoint.read_checkpoint(tmp_path / "run" / "last.pt")
    model = build_model("efficientnet-b0", "none", 1, log=lambda m: None)
    model.load_state_dict(ckpt["model"])
    cases = find_cases(tmp_path / "cache" / "phantom-v1-n3-s32-z8-seed0")
    cache = build_cache(cases, tmp_path / "cache", 32, progress=False)
    _, val_ids = patient_folds([c.case_id for c in cases], 3, seed=0)[0]
    hd95, assd, hd95_lcc = [], [], []
    for case in (c for c in cases if c.case_id in val_ids):
        x, y, z = np.abs(np.diag(nib.load(case.image).affine)[:3])  # the phantom's affine is diagonal; 32 pixels: no resizing
        probs = predict_volume([model], np.asarray(cache.volume(case.case_id), np.float32), multiclass=False,
                               device=torch.device("cpu"))
        pred, true = torch.from_numpy(probs > 0.5)[None], torch.from_numpy(np.asarray(cache.labels(case.case_id)) > 0)[None, None]
        hd95.append(hausdorff_distance(pred, true, spacing=(z, y, x)).item())
        assd.append(average_surface_distance(pred, true, spacing=(z, y, x)).item())
        kept = torch.from_numpy(keep_largest_component((probs > 0.5).astype(np.uint8)) > 0)[None]
        hd95_lcc.append(hausdorff_distance(kept, true, spacing=(z, y, x)).item())
    assert float(rows[-1]["val_hd95_mm"]) == pytest.approx(np.mean(hd95), abs=1e-3)
    assert float(rows[-1]["val_hd95_mm_lcc"]) == pytest.approx(np.mean(hd95_lcc), abs=1e-3)
    assert float(rows[-1]["val_assd_mm"]) == pytest.approx(np.mean(assd), abs=1e-3)
    scores = ("val_dice", "val_hd95_mm", "val_assd_mm", "val_dice_lcc", "val_hd95_mm_lcc", "val_assd_mm_lcc")
    assert summary["final_epoch"] == {"epoch": 2, **{k: float(rows[-1][k]) for k in scores}}
    best = [r for r in rows if r["best"] == "1"][-1]  # best.pt: the highest validation Dice, whatever HD95 says
    assert float(best["val_dice"]) == max(float(r["val_dice"]) for r in rows)
    assert summary["best_epoch"] == {"epoch": int(best["epoch"]), **{k: float(best[k]) for k in scores}}
    assert checkpoint.read_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == int(best["epoch"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final_epoch"] == summary["final_epoch"]
