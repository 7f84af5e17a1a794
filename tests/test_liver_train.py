"""Liver example, training: non-finite guard, atomic checkpoints, resume, --quick end to end, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

from tests import _liver_path  # noqa: E402,F401
import train_liver  # noqa: E402
from liver import checkpoint  # noqa: E402
from liver.guard import NonFiniteError, NonFiniteGuard  # noqa: E402
from stableloss import CombinedLoss, DiceLoss, FocalLoss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--phantom-volumes", "3", "--phantom-size", "32", "--phantom-slices", "8", "--img-size", "32", "--epochs", "2",
        "--batch-size", "4", "--folds", "3", "--encoder-weights", "none", "--device", "cpu"]


def tiny(tmp_path, *extra, out="run"):
    return TINY + ["--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / out), *extra]


def test_guard_names_the_nonfinite_term_and_batch():
    messages = []
    guard = NonFiniteGuard(patience=2, log=messages.append)
    ok = guard.check_loss({"dice": torch.tensor(0.3), "focal": torch.tensor(float("nan"))}, epoch=1, batch=7)
    assert not ok and guard.skipped == 1
    assert messages == ["non-finite: loss term 'focal' = nan at epoch 1, batch 7; step skipped"]
    assert guard.check_grad(torch.tensor(1.0), epoch=1, batch=8)  # a finite step resets the run
    assert not guard.check_grad(torch.tensor(float("inf")), epoch=1, batch=9, scaler_active=True)
    assert guard.scaler_skipped == 1 and guard.skipped == 1
    guard.check_loss({"dice": torch.tensor(float("inf"))}, epoch=1, batch=10)
    with pytest.raises(NonFiniteError, match=r"2 consecutive .* first: loss term 'dice' = \+inf at epoch 1, batch 10"):
        guard.check_grad(torch.tensor(float("nan")), epoch=1, batch=11)


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
    ckpt = checkpoint.load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


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
        checkpoint.save_checkpoint(tmp_path / "m.pt", model)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 1)
    checkpoint.save_checkpoint(tmp_path / "m.pt", model, epoch=1)

    def crash(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(tmp_path / "m.pt", model, epoch=2)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    assert checkpoint.load_checkpoint(tmp_path / "m.pt")["epoch"] == 1


def test_resume_continues_as_if_never_interrupted(tmp_path):
    train_liver.main(tiny(tmp_path, out="straight"))
    first = train_liver.main(tiny(tmp_path, "--stop-after", "1", out="resumed"))
    assert first["epochs_run"] == 1
    second = train_liver.main(tiny(tmp_path, "--resume", out="resumed"))
    assert second["epochs_run"] == 2
    a = checkpoint.load_checkpoint(tmp_path / "straight" / "last.pt")
    b = checkpoint.load_checkpoint(tmp_path / "resumed" / "last.pt")
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    assert [r["val_dice"] for r in a["history"]] == [r["val_dice"] for r in b["history"]]
    rows = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_dice") and len(rows) == 3


def test_quick_run_end_to_end(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "train_liver.py"), "--quick", "--encoder-weights", "none",
           "--img-size", "32", "--phantom-size", "32", "--phantom-slices", "12", "--epochs", "1",
           "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best validation Dice (3D, mean over 2 volumes)" in done.stdout
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "history.csv", "best.pt", "last.pt", "validation.png", "summary.json"} <= names
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_torchrun_two_processes_gloo(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(ROOT / "examples" / "train_liver.py"), *tiny(tmp_path), "--epochs", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == 1


def test_cli_bad_data_dir_is_one_line_naming_it(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "train_liver.py"), "--data-dir", str(tmp_path / "missing"),
           "--out-dir", str(tmp_path / "run")]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: data_dir '{tmp_path / 'missing'}' is not an existing folder"
