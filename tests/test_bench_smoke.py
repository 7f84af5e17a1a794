"""Smoke tests: both bench scripts run in --quick mode on a few losses and write their files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, out: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", "--device", "cpu", "--out", str(out), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_speed_quick_writes_json_and_prints_ratios(tmp_path):
    stdout = _run("speed.py", tmp_path, "--shapes", "2d", "--losses", "dice,hybrid", "--sources", "stableloss,smp",
                  "--repeats", "1", "--warmup", "0")
    data = json.loads((tmp_path / "speed.json").read_text())
    assert data["metadata"]["versions"]["torch"]
    impls = {row["impl"] for row in data["rows"]}
    assert {"floor", "stableloss:dice", "stableloss:hybrid"} <= impls
    assert all(row["ms"] > 0 and row["peak_MiB"] > 0 for row in data["rows"] if "ms" in row)
    assert "x_smp" in stdout and "stableloss:dice" in stdout


def test_grad_norms_quick_writes_csv_and_figures(tmp_path):
    pytest.importorskip("matplotlib")
    stdout = _run("grad_norms.py", tmp_path, "--losses", "dice,focal", "--sources", "stableloss,smp",
                  "--contexts", "fp16")
    for name in ("sweep.csv", "underflow.csv", "boundary.csv", "metadata.json",
                 "grad_norm_vs_scale.png", "boundary_ratio.png", "fp16_underflow.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    header = (tmp_path / "sweep.csv").read_text().splitlines()[0]
    assert {"loss", "source", "context", "scale", "grad_norm", "nonfinite_grad"} <= set(header.split(","))
    assert "boundary emphasis" in stdout and "stableloss:focal" in stdout


def test_distance_quick_writes_json_csv_and_errors(tmp_path):
    pytest.importorskip("scipy.ndimage")
    stdout = _run("distance.py", tmp_path, "--shapes", "2d-256", "--impls", "stableloss:auto,stableloss:torch,scipy:2xedt",
                  "--repeats", "1", "--warmup", "0")
    data = json.loads((tmp_path / "distance.json").read_text())
    rows = {row["impl"]: row for row in data["rows"]}
    assert set(rows) == {"stableloss:auto", "stableloss:torch", "scipy:2xedt"}
    assert all(row["ms"] > 0 and row["runs"] == 1 for row in rows.values())
    assert rows["scipy:2xedt"]["x_scipy"] == 1 and rows["stableloss:torch"]["max_err"] < 1e-4
    header = (tmp_path / "distance.csv").read_text().splitlines()[0]
    assert {"shape", "impl", "ms", "x_scipy", "max_err"} <= set(header.split(","))
    assert "stableloss:torch" in stdout and "x_scipy" in stdout
