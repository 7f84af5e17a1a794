"""The distance engine under torch.compile(fullgraph=True) and torch.func.vmap with each internal algorithm
(dense or envelope per axis), small and past the old 96-pixel limit, 2-D and 3-D, CPU and CUDA.

The transform is the custom op ``stableloss::distance_to_seeds``: the compiler sees one operation with
a fake kernel (never the envelope's data-dependent steps), and vmap batches it by its own rule.
"""

import pytest
import torch
from torch.func import vmap

import stableloss
from stableloss import _edt

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
# Each run forces one algorithm on the axes after the first (the default picks one from the line
# length and the number of lines), at a small size and at sizes past the width where compiling the
# envelope's steps used to fail (96 pixels on CPU).
ALGORITHMS = ("dense", "envelope")
SIZES = {2: [(6, 7), (130, 9)], 3: [(5, 6, 7), (100, 5, 4)]}


@pytest.fixture(params=ALGORITHMS)
def algorithm(request, monkeypatch):
    """Force one algorithm, and check that the transform ran it and not the other."""
    calls = {"dense": 0, "envelope": 0}
    dense, envelope = _edt._dense_min, _edt._lower_envelope

    def counted_dense(*args):
        calls["dense"] += 1
        return dense(*args)

    def counted_envelope(*args):
        calls["envelope"] += 1
        return envelope(*args)

    monkeypatch.setattr(_edt, "default_algorithm", lambda device, n, lines: request.param)
    monkeypatch.setattr(_edt, "_dense_min", counted_dense)
    monkeypatch.setattr(_edt, "_lower_envelope", counted_envelope)
    yield request.param
    other = ALGORITHMS[1 - ALGORITHMS.index(request.param)]
    assert calls[request.param] > 0 and calls[other] == 0, calls


def _sizes(device, ndim):
    return SIZES[ndim]


def _masks(shape, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen) > 0.8
    target[..., 0] = False  # never full
    return target.to(device)


def test_default_algorithm_follows_the_measured_cpu_crossover():
    cpu = torch.device("cpu")
    for lines in (1, 128, 1024, 10**6):
        longest = _edt.dense_max_length(cpu, lines)
        assert _edt.default_algorithm(cpu, longest, lines) == "dense"
        assert _edt.default_algorithm(cpu, longest + 1, lines) == "envelope"
    assert _edt.dense_max_length(cpu, 10**6) < _edt.dense_max_length(cpu, 128)  # many lines: dense pays less
    cuda = torch.device("cuda")  # a device object only: no GPU needed
    longest = _edt.dense_max_length(cuda, 1)
    assert _edt.default_algorithm(cuda, longest, 10**6) == "dense" and _edt.default_algorithm(cuda, longest + 1, 1) == "envelope"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ndim", (2, 3))
def test_signed_map_and_edt_under_vmap_equal_the_batch(device, ndim, algorithm):
    for shape in _sizes(device, ndim):
        masks = _masks((3, 2) + shape, device)
        want = stableloss.signed_distance_map(masks, backend="torch")
        got = vmap(lambda m: stableloss.signed_distance_map(m, backend="auto"))(masks[:, None])[:, 0]
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        want_edt = stableloss.distance_transform_edt(masks, backend="torch")
        got_edt = vmap(lambda m: stableloss.distance_transform_edt(m[:, None])[:, 0], in_dims=1, out_dims=1)(masks)
        torch.testing.assert_close(got_edt, want_edt, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_signed_map_compiles_with_fullgraph_at_every_size(device, dynamic, algorithm):
    torch._dynamo.reset()
    compiled = torch.compile(lambda m: stableloss.signed_distance_map(m, spacing=(0.5, 1.5)), fullgraph=True,
                             dynamic=dynamic, backend="aot_eager")
    for shape in _sizes(device, 2):
        masks = _masks((2, 1) + shape, device, seed=1)
        torch.testing.assert_close(compiled(masks), stableloss.signed_distance_map(masks, spacing=(0.5, 1.5),
                                                                                    backend="torch"))


LOSSES = {
    "boundary": lambda: stableloss.BoundaryLoss("multilabel"),
    "hausdorff": lambda: stableloss.HausdorffDTLoss("multilabel"),
    "hybrid-boundary": lambda: stableloss.BoundaryAwareLoss("multilabel", boundary="boundary"),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("ndim", (2, 3))
def test_boundary_losses_compile_with_fullgraph_with_either_algorithm(name, ndim, dynamic, device, algorithm):
    torch._dynamo.reset()
    loss = LOSSES[name]()
    compiled = torch.compile(loss, fullgraph=True, dynamic=dynamic, backend="aot_eager")
    for shape in _sizes(device, ndim):
        gen = torch.Generator().manual_seed(2)
        logits = (torch.randn((1, 2) + shape, generator=gen) * 3).to(device)
        target = _masks((1, 2) + shape, device, seed=3).float()
        eager_x, compiled_x = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
        want, got = loss(eager_x, target), compiled(compiled_x, target)
        want.backward()
        got.backward()
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(compiled_x.grad, eager_x.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("device", DEVICES)
def test_hausdorff_loss_under_vmap_equals_a_loop(device, algorithm):
    loss = stableloss.HausdorffDTLoss("multilabel")
    for shape in _sizes(device, 2):
        gen = torch.Generator().manual_seed(4)
        logits = (torch.randn((3, 1, 2) + shape, generator=gen) * 3).to(device)
        target = _masks((1, 2) + shape, device, seed=5).float()
        got = vmap(lambda z, t=target: loss(z, t))(logits)
        torch.testing.assert_close(got, torch.stack([loss(z, target) for z in logits]))


@pytest.mark.parametrize("device", DEVICES)
def test_surface_metrics_under_vmap_and_compile_equal_eager(device, algorithm):
    for shape in _sizes(device, 2):
        pred, target = _masks((3, 2) + shape, device, seed=6), _masks((3, 2) + shape, device, seed=7)
        want = stableloss.surface_metrics(pred, target, tolerance=1.0, spacing=(0.7, 1.1))
        got = vmap(lambda p, t: stableloss.surface_metrics(p, t, tolerance=1.0, spacing=(0.7, 1.1)))(
            pred[:, None], target[:, None])
        torch._dynamo.reset()
        compiled = torch.compile(lambda p, t: stableloss.surface_metrics(p, t, tolerance=1.0, spacing=(0.7, 1.1)),
                                 fullgraph=True, backend="aot_eager")(pred, target)
        for key in want:
            torch.testing.assert_close(got[key][:, 0], want[key], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(compiled[key], want[key], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not hasattr(torch.library, "opcheck"), reason="torch.library.opcheck needs torch >= 2.4")
@pytest.mark.parametrize("device", DEVICES)
def test_distance_op_passes_opcheck(device, algorithm):
    for ndim in (2, 3):
        for shape in _sizes(device, ndim):
            seeds = _masks((2,) + shape, device, seed=8)
            torch.library.opcheck(torch.ops.stableloss.distance_to_seeds.default, (seeds, [1.0] * ndim, None))
