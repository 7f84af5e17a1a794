"""Smoke tests: both bench scripts run in --quick mode on a few losses and write their files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _launch(script: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", "--device", "cpu", "--out", str(out), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )


def _run(script: str, out: Path, *args: str) -> str:
    proc = _launch(script, out, *args)
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



@pytest.mark.parametrize("variant,shape", [("ignore", "2x1x32x32"), ("multiclass16", "2x16x32x32")])
def test_speed_variants_build_like_for_like_rows(tmp_path, variant, shape):
    pytest.importorskip("segmentation_models_pytorch")
    _run("speed.py", tmp_path, "--shape", "2x1x32x32", "--losses", "dice,focal", "--sources", "stableloss,smp",
         "--repeats", "1", "--warmup", "0", "--variant", variant)
    data = json.loads((tmp_path / "speed.json").read_text())
    assert data["metadata"]["variant"] == variant
    rows = {row["impl"]: row for row in data["rows"] if "ms" in row}
    assert rows["stableloss:dice"]["shape"] == shape and rows["stableloss:dice"]["finite"]
    assert "x_smp" in rows["stableloss:dice"]
    # smp's multiclass Focal is a per-class sigmoid loss: no like-for-like row for 16 softmax classes
    assert ("stableloss:focal" in rows) == (variant == "ignore")

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
    header = (tmp_path / "boundary.csv").read_text().splitlines()[0]
    assert {"ratio", "island_vs_band", "shell_vs_band", "far_vs_near"} <= set(header.split(","))


def test_grad_norms_only_boundary_with_candidates(tmp_path):
    pytest.importorskip("matplotlib")
    stdout = _run("grad_norms.py", tmp_path, "--only", "boundary", "--losses", "dice,hybrid,boundary_loss",
                  "--sources", "stableloss", "--candidates", '[{"boundary_weight": 0.5}, {"boundary": null}]')
    assert not (tmp_path / "sweep.csv").exists() and not (tmp_path / "underflow.csv").exists()
    for name in ("boundary.csv", "boundary.json", "metadata.json", "boundary_ratio.png", "boundary_grad_maps.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    data = json.loads((tmp_path / "boundary.json").read_text())
    rows = {row["loss"]: row for row in data["rows"]}
    assert set(rows) == {"dice", "hybrid", "boundary_loss", "aware(boundary_weight=0.5)", "aware(boundary=null)"}
    assert "aware(boundary_weight=0.5)" in stdout
    # Equal logits: Dice's gradient does not depend on where a false positive is; the boundary
    # loss's grows with the error's distance (the island is farther than the shell).
    probe = data["probe"]
    assert probe["island_distance_min_px"] > probe["shell_px"][1]
    assert rows["dice"]["far_vs_near"] == pytest.approx(1.0, rel=1e-6)
    assert rows["boundary_loss"]["far_vs_near"] > probe["island_distance_min_px"] / probe["shell_px"][1]
    # The candidate without a boundary term is the seed recipe, row for row.
    for key in ("ratio", "island_vs_band", "shell_vs_band"):
        assert rows["aware(boundary=null)"][key] == pytest.approx(rows["hybrid"][key], rel=1e-5)
    assert data["metadata"]["candidates"]["aware(boundary_weight=0.5)"]["weights"]["boundary"] == 0.5


@pytest.mark.parametrize("args, message", [
    (("--candidates", "{not json"), "--candidates must be JSON"),
    (("--candidates", '[{"boundary_weight": -1}]'), "boundary_weight"),
    (("--only", "boundry"), "--only"),
])
def test_grad_norms_bad_options_name_the_option(tmp_path, args, message):
    proc = _launch("grad_norms.py", tmp_path, "--losses", "dice", "--sources", "stableloss", "--no-plots", *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]


def test_distance_quick_writes_json_csv_and_errors(tmp_path):
    pytest.importorskip("scipy.ndimage")
    stdout = _run("distance.py", tmp_path, "--kinds", "signed", "--shapes", "2d-256",
                  "--impls", "stableloss:auto,stableloss:torch,scipy:2xedt", "--repeats", "1", "--warmup", "0")
    data = json.loads((tmp_path / "distance.json").read_text())
    rows = {row["impl"]: row for row in data["rows"]}
    assert set(rows) == {"stableloss:auto", "stableloss:torch", "scipy:2xedt"}
    assert all(row["ms"] > 0 and row["runs"] == 1 for row in rows.values())
    assert rows["scipy:2xedt"]["x_scipy"] == 1 and rows["stableloss:torch"]["max_err"] < 1e-4
    header = (tmp_path / "distance.csv").read_text().splitlines()[0]
    assert {"shape", "impl", "ms", "x_scipy", "max_err"} <= set(header.split(","))
    assert "stableloss:torch" in stdout and "x_scipy" in stdout


def test_distance_surface_rows_time_hd95_beside_monai_with_its_error(tmp_path):
    pytest.importorskip("scipy.spatial")
    pytest.importorskip("monai")
    stdout = _run("distance.py", tmp_path, "--kinds", "surface", "--shapes", "2d-256,3d-96", "--repeats", "1",
                  "--warmup", "0")
    rows = json.loads((tmp_path / "distance.json").read_text())["rows"]
    assert {(r["shape"], r["impl"]) for r in rows} == {
        (shape, impl) for shape in ("2x1x64x64", "1x1x24x24x24")
        for impl in ("stableloss:auto", "stableloss:torch", "monai:hd95")}
    for row in rows:
        assert row["kind"] == "surface" and row["ms"] > 0 and row["max_err"] < 1e-3, row
        assert (row["x_monai"] == 1) == (row["impl"] == "monai:hd95")
    assert "target (HD95 <= 1.0x MONAI)" in stdout


def test_edt_cutoff_quick_times_both_algorithms_and_names_the_faster(tmp_path):
    stdout = _run("edt_cutoff.py", tmp_path, "--repeats", "1")
    rows = json.loads((tmp_path / "edt_cutoff.json").read_text())["rows"]
    assert len(rows) == 2
    for row in rows:
        assert row["dense_ms"] > 0 and row["envelope_ms"] > 0 and row["default"] in ("dense", "envelope")
        assert row["faster"] == ("dense" if row["dense_ms"] < row["envelope_ms"] else "envelope")
    assert "the default picks the faster algorithm at" in stdout


def _evidence(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_evidence.py"), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False)


def test_gpu_evidence_without_a_gpu_exits_saying_it_needs_a_cuda_device(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run")
    proc = _evidence(tmp_path / "evidence.json")
    assert proc.returncode == 2 and "needs a CUDA device" in proc.stderr and "--device cpu --interpret" in proc.stderr
    assert not (tmp_path / "evidence.json").exists()


PROBE = '''
import os


def test_cuda_probe_fails_under_the_fused_setting():
    setting = os.environ.get("STABLELOSS_FUSED")
    assert setting is None, "the second run sets STABLELOSS_FUSED=1"


def test_triton_probe_passes():
    pass
'''


def test_gpu_evidence_cpu_interpreter_smoke_writes_one_report_and_fails_with_a_failing_test(tmp_path):
    """A tiny grid with the kernels in Triton's interpreter: every part runs and lands in the report; a test
    that fails in the STABLELOSS_FUSED=1 run makes the exit status non-zero and is named."""
    pytest.importorskip("triton")
    (tmp_path / "test_probe.py").write_text(PROBE)
    out = tmp_path / "report" / "evidence.json"
    proc = _evidence(out, "--device", "cpu", "--interpret", "--grid", "tiny", "--losses", "hybrid", "--dtypes",
                     "float32,fp16-autocast", "--pytest-paths", str(tmp_path / "test_probe.py"))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["verdict"] == "FAIL" and report["evidence"] is False and report["metadata"]["interpreted"]
    automatic, fused = report["tests"]
    assert automatic["ok"] and automatic["passed"] == 2 and automatic["failed"] == 0
    assert not fused["ok"] and fused["passed"] == 0 and fused["failed"] == 1
    # pytest names the file relative to its rootdir, which depends on where the temporary folder lies
    assert len(fused["failing"]) == 1
    assert fused["failing"][0].replace("/", ".").endswith("test_probe::test_cuda_probe_fails_under_the_fused_setting")
    assert "the second run sets STABLELOSS_FUSED=1" in fused["tail"]
    rows = report["agreement"]["rows"]
    assert report["agreement"]["failed"] == 0 and len(rows) == 6, [r.get("why") for r in rows]
    assert {(r["mode"], r["dtype"]) for r in rows} == {(m, d) for m in ("binary", "multilabel")
                                                      for d in ("float32", "fp16-autocast")}
    assert all(r["fused_launches"] > 0 and r["eager_launches"] == 0 for r in rows)
    assert all(r["fused_grad_err"] <= r["eager_grad_err"] + 1e-3 for r in rows)
    assert report["speed"]["error"] is None
    assert {"stableloss-eager:dice", "stableloss-fused:dice"} <= {r["impl"] for r in report["speed"]["rows"]}
    summary = (tmp_path / "report" / "evidence.md").read_text()
    assert "smoke run on CPU under Triton's interpreter" in summary and "not evidence" in summary
    assert "[agreement 6/6] hybrid multilabel" in proc.stdout and "FAIL: wrote" in proc.stdout


def test_monai_speed_quick_rows_side_by_side(tmp_path):
    pytest.importorskip("monai")
    stdout = _run("monai_speed.py", tmp_path, "--losses", "DiceCELoss,FocalLoss,DeepSupervisionLoss",
                  "--repeats", "1", "--warmup", "0")
    data = json.loads((tmp_path / "monai_speed.json").read_text())
    rows = {(row["shape"], row["loss"]): row for row in data["rows"]}
    assert set(rows) == {(shape, loss) for shape in ("4x1x64x64", "1x3x24x24x24")
                         for loss in ("DiceCELoss", "FocalLoss", "DeepSupervisionLoss")}
    for row in rows.values():
        assert row["monai_ms"] > 0 and row["stableloss_ms"] > 0
        assert row["x_monai"] == pytest.approx(row["stableloss_ms"] / row["monai_ms"])
        assert row["finite_fp16_stableloss"] is True  # the stability promise, with logits at +-inf
    assert rows[("1x3x24x24x24", "DiceCELoss")]["finite_fp16_monai"] is False  # MONAI's softmax DiceCE: NaN
    assert "x_monai" in stdout
