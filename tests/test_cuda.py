"""CUDA: the same values and gradients as on the CPU, and finiteness under CUDA autocast (skipped without a GPU)."""

import pytest
import torch

from tests.conftest import requires_cuda
from tests.inputs import make_case
from tests.registry import cases, mode_cases

MODE_CASES, MODE_IDS = mode_cases()
BINARY_CASES, BINARY_IDS = cases("binary")


@requires_cuda
@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_cuda_matches_cpu(info, options, mode):
    logits, target = make_case(mode, seed=40, spatial=(16, 16), batch=4)
    cpu_x = logits.clone().requires_grad_(True)
    cpu = info.call(cpu_x, target, mode, **options)
    cpu.backward()
    gpu_x = logits.cuda().requires_grad_(True)
    gpu = info.call(gpu_x, target.cuda(), mode, **options)
    gpu.backward()
    torch.testing.assert_close(gpu.cpu(), cpu.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu_x.grad.cpu(), cpu_x.grad, rtol=1e-4, atol=1e-7)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("info,options", BINARY_CASES, ids=BINARY_IDS)
def test_cuda_autocast_fp16_bf16_real_size_finite(info, options, dtype):
    target = (torch.rand(16, 1, 512, 512, device="cuda") > 0.7).float()
    logits = (torch.randn(16, 1, 512, 512, device="cuda") * 3e4).requires_grad_(True)
    with torch.autocast("cuda", dtype=dtype):
        loss = info.call(logits * 4, target, "binary", **options)  # products overflow float16 to inf
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
