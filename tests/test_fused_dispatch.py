"""Which path the sigmoid sums take (fused Triton kernels or eager torch), with and without Triton."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import stableloss
from stableloss import _fused
from tests.conftest import requires_cuda

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_interpreter(monkeypatch):
    monkeypatch.setattr(_fused, "interpreter_on", lambda: False)
    monkeypatch.delenv(_fused.ENV_VAR, raising=False)


def test_fused_dispatch_cpu_tensors_default_to_eager(no_interpreter, monkeypatch):
    x = torch.zeros(1, 1, 4)
    assert _fused.use_fused(x) is False
    assert _fused.use_fused(x, False) is False
    monkeypatch.setenv(_fused.ENV_VAR, "1")  # "wherever the kernels can run": not on a CPU without the interpreter
    assert _fused.use_fused(x) is False


def test_fused_dispatch_environment_variable_turns_it_off_and_on(monkeypatch):
    x = torch.zeros(1, 1, 4)
    monkeypatch.setattr(_fused, "_runnable", lambda logits: True)
    monkeypatch.setenv(_fused.ENV_VAR, "0")
    assert _fused.use_fused(x) is False
    monkeypatch.setenv(_fused.ENV_VAR, "1")
    assert _fused.use_fused(x) is True
    assert _fused.use_fused(x, False) is False  # the argument wins over the environment


def test_fused_dispatch_bad_settings_raise_naming_them(no_interpreter, monkeypatch):
    x = torch.zeros(1, 1, 4)
    with pytest.raises(ValueError, match=r"fused must be True, False or None; received 'yes'"):
        _fused.use_fused(x, "yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fused=True needs Triton and a CUDA tensor .*TRITON_INTERPRET is not 1"):
        _fused.use_fused(x, True)
    monkeypatch.setattr(_fused, "_TRITON_INSTALLED", False)
    with pytest.raises(ValueError, match=r"fused=True needs Triton .*; Triton is not installed"):
        _fused.overlap_sums(x, x, fused=True)
    monkeypatch.setenv(_fused.ENV_VAR, "yes")
    with pytest.raises(ValueError, match=r"STABLELOSS_FUSED must be 0 or 1 \(or unset\); received 'yes'"):
        _fused.use_fused(x)


def test_fused_dispatch_non_float_input_stays_eager(monkeypatch):
    monkeypatch.setattr(_fused, "_runnable", lambda logits: True)
    monkeypatch.setenv(_fused.ENV_VAR, "1")
    assert _fused.use_fused(torch.zeros(1, 1, 4, dtype=torch.int32)) is False


def _cuda_looking(dtype=torch.float32):
    """What ``use_fused`` reads of a tensor (dtype, device), as a CUDA tensor has it, without a GPU."""
    return SimpleNamespace(dtype=dtype, is_cuda=True, device=torch.device("cuda", 0))


def test_fused_dispatch_automatic_mode_stays_eager_on_cuda_until_the_kernels_have_gpu_evidence(monkeypatch):
    """The kernels have only run in Triton's interpreter: fused=None does not select them, even for CUDA
    tensors with Triton installed; fused=True and STABLELOSS_FUSED=1 still do (explicit opt-ins)."""
    monkeypatch.delenv(_fused.ENV_VAR, raising=False)
    monkeypatch.setattr(_fused, "_TRITON_INSTALLED", True)
    x = _cuda_looking()
    assert _fused.use_fused(x) is False
    assert _fused.use_fused(x, None) is False
    assert _fused.AUTO_ENABLED is False  # turned on only with the GPU evidence committed (docs/benchmarks.md)
    assert _fused.use_fused(x, True) is True
    monkeypatch.setenv(_fused.ENV_VAR, "1")
    assert _fused.use_fused(x) is True
    monkeypatch.setenv(_fused.ENV_VAR, "0")
    assert _fused.use_fused(x, True) is True  # the argument wins over the environment


def test_fused_dispatch_auto_enabled_is_the_one_switch_of_automatic_mode(monkeypatch):
    """Turning automatic mode back on (with the GPU evidence) is ``AUTO_ENABLED = True`` and nothing else."""
    monkeypatch.delenv(_fused.ENV_VAR, raising=False)
    monkeypatch.setattr(_fused, "_TRITON_INSTALLED", True)
    monkeypatch.setattr(_fused, "AUTO_ENABLED", True)
    assert _fused.use_fused(_cuda_looking()) is True
    assert _fused.use_fused(_cuda_looking(torch.int32)) is False
    monkeypatch.setattr(_fused, "_TRITON_INSTALLED", False)
    assert _fused.use_fused(_cuda_looking()) is False


@requires_cuda
def test_fused_dispatch_cuda_tensors_stay_eager_in_automatic_mode(monkeypatch):
    monkeypatch.delenv(_fused.ENV_VAR, raising=False)
    x = torch.zeros(1, 1, 4, device="cuda")
    assert _fused.use_fused(x) is False
    monkeypatch.setenv(_fused.ENV_VAR, "1")
    assert _fused.use_fused(x) is _fused.triton_installed()


def test_fused_eager_focal_sums_equal_the_focal_loss_reduction():
    from stableloss import focal_loss

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 4, generator=gen)
    t = (torch.rand(2, 3, 5, 4, generator=gen) > 0.5).float()
    t[0, 1, 2, :] = -1  # ignore_index
    flat_t, valid = (t.reshape(2, 3, -1), t.reshape(2, 3, -1) != -1)
    sums = _fused.sigmoid_focal_sums(x.reshape(2, 3, -1), torch.where(valid, flat_t, 0.0), valid, gamma=2.0,
                                     alpha=0.25, fused=False)
    expected = focal_loss(x, t, mode="multilabel", gamma=2.0, alpha=0.25, ignore_index=-1)
    torch.testing.assert_close((sums[0] / sums[1]).mean(), expected, rtol=1e-6, atol=0.0)
    assert sums[1].tolist() == [40.0, 36.0, 40.0]


def test_fused_package_imports_and_runs_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"  # import triton now raises ImportError
        "import torch, stableloss\n"
        "from stableloss import _fused\n"
        "assert not _fused.triton_installed()\n"
        "x = torch.randn(2, 1, 8, 8, requires_grad=True); t = (torch.rand(2, 1, 8, 8) > 0.5).float()\n"
        "loss = stableloss.boundary_aware_loss(x, t, mode='binary'); loss.backward()\n"
        "assert torch.isfinite(loss) and torch.isfinite(x.grad).all()\n"
        "assert _fused.overlap_focal_sums(x.reshape(2, 1, -1), t.reshape(2, 1, -1)).shape == (5, 1)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


@pytest.mark.parametrize("make", [stableloss.DiceLoss, stableloss.FocalLoss], ids=["dice", "focal"])
def test_fused_loss_argument_false_keeps_the_eager_path_whatever_the_environment(make, monkeypatch):
    calls = []

    def record(logits, fused=None):
        calls.append(fused)
        return False  # the kernels are not run here; what matters is the setting the loss passes on

    monkeypatch.setattr(_fused, "use_fused", record)
    x, t = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    make("binary", fused=False)(x, t)
    make("binary")(x, t)
    assert calls == [False, None]


def test_fused_loss_argument_true_raises_where_the_kernels_cannot_run(no_interpreter):
    x, t = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    with pytest.raises(ValueError, match=r"fused=True needs Triton and a CUDA tensor"):
        stableloss.DiceLoss("binary", fused=True)(x, t)
    with pytest.raises(TypeError, match=r"fused must be a bool; received str 'yes'"):
        stableloss.FocalLoss("binary", fused="yes")
    loss = stableloss.DiceLoss("binary")
    loss.fused = False
    assert loss.fused is False
    with pytest.raises(TypeError, match=r"fused must be a bool"):
        loss.fused = 2
