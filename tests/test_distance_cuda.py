"""CUDA: distance maps and surface metrics on the GPU equal the CPU's, without host round trips
(skipped without a GPU; the GPU's default algorithm, "dense", is also checked on the CPU in
tests/test_distance_exact.py)."""

import numpy as np
import pytest
import torch

import stableloss
from stableloss import _edt
from tests.conftest import requires_cuda


def _masks(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=gen) < 0.02  # sparse seeds: long distances
    mask[0, 0] = False  # an empty channel
    return mask


@requires_cuda
@pytest.mark.parametrize("shape, spacing", [
    ((3, 2, 70), (0.7,)),
    ((4, 1, 64, 48), (1.0, 2.5)),
    ((2, 1, 20, 24, 28), (2.5, 0.8, 0.9)),
    ((2, 1, 1100, 8), (1.0, 1.0)),  # a line (axis 0) longer than the dense limit: the envelope algorithm on CUDA
])
def test_cuda_signed_map_matches_cpu(shape, spacing):
    mask = _masks(shape)
    cpu = stableloss.signed_distance_map(mask, spacing=spacing, backend="torch")
    gpu = stableloss.signed_distance_map(mask.cuda(), spacing=spacing)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)


@requires_cuda
@pytest.mark.parametrize("algorithm", _edt.ALGORITHMS)
def test_cuda_both_algorithms_match_scipy(algorithm):
    ndimage = pytest.importorskip("scipy.ndimage")
    mask = _masks((2, 1, 33, 40, 27), seed=1)[:, 0]
    mask[0, 5, 5, 5] = True
    spacing = (1.7, 0.6, 1.1)
    got = _edt.squared_distance_to_seeds(mask.cuda(), spacing, algorithm=algorithm).sqrt().cpu().numpy()
    want = np.stack([ndimage.distance_transform_edt(~m, sampling=spacing) for m in mask.numpy()])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@requires_cuda
def test_cuda_signed_map_makes_no_host_sync():
    # "dense" (the CUDA default for lines up to 2048) has no data-dependent control flow, and the
    # no-surface policy is a torch.where: with validate_args=False nothing waits for the GPU.
    mask = _masks((4, 1, 128, 128)).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        phi = stableloss.signed_distance_map(mask, spacing=(1.0, 0.5), validate_args=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert phi.device.type == "cuda"


@requires_cuda
def test_cuda_scipy_backend_refuses_a_gpu_tensor():
    with pytest.raises(ValueError, match=r"backend='scipy' needs a CPU tensor \(no copy to the host is made\); "
                                         r"received device cuda"):
        stableloss.signed_distance_map(torch.zeros(1, 1, 4, 4, device="cuda"), backend="scipy")


@requires_cuda
def test_cuda_surface_metrics_match_cpu():
    gen = torch.Generator().manual_seed(2)
    pred = (torch.rand(2, 2, 40, 36, generator=gen) < 0.3).float()
    target = (torch.rand(2, 2, 40, 36, generator=gen) < 0.3).float()
    cpu = stableloss.surface_metrics(pred, target, spacing=(0.8, 1.2), tolerance=1.5, directed=True)
    gpu = stableloss.surface_metrics(pred.cuda(), target.cuda(), spacing=(0.8, 1.2), tolerance=1.5, directed=True)
    for key, value in cpu.items():
        assert gpu[key].device.type == "cuda"
        torch.testing.assert_close(gpu[key].cpu(), value, rtol=1e-5, atol=1e-4)


@requires_cuda
def test_cuda_surface_metrics_make_no_host_sync():
    # CUDA tensors take the batched torch route: surfaces, one transform of the batch, a sort per row;
    # nothing reads a value back to the host (validate_args=False skips the binary check's read).
    gen = torch.Generator().manual_seed(3)
    pred = (torch.rand(2, 2, 150, 40, generator=gen) < 0.3).cuda()
    target = (torch.rand(2, 2, 150, 40, generator=gen) < 0.3).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = stableloss.surface_metrics(pred, target, spacing=(0.8, 1.2), percentile=95.0, validate_args=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out["hausdorff"].device.type == "cuda"
    torch.testing.assert_close(out["hausdorff"].cpu(), stableloss.hausdorff_distance(pred.cpu(), target.cpu(),
                                                                                        spacing=(0.8, 1.2)),
                               rtol=1e-5, atol=1e-4)
