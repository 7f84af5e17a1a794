"""The boundary-family losses give the same values and gradients with the torch transform as with SciPy.

With SciPy installed, ``backend="auto"`` (every loss's default) sends CPU tensors to SciPy, so the
registry-driven loss tests never run the torch transform on the CPU. Here each loss runs with
``backend="torch"`` and ``backend="scipy"`` with each of the torch transform's algorithms forced on
its axes (the default picks one from the line length and the number of lines,
:func:`stableloss._edt.default_algorithm`; the dense minimum works in chunks of
``_DENSE_BUDGET // n^2`` lines), with ``ignore_index``, ``spacing``, ``no_surface`` and
``inside_shift``, and each run must reach the transform it asked for.
"""

import pytest
import torch

import stableloss
from stableloss import _edt
from tests import reference
from tests.inputs import make_case
from tests.registry import BY_NAME

pytest.importorskip("scipy.ndimage")

# Spatial sizes and the algorithm forced on the axes after the first: 1-D (scan only), 2-D and 3-D
# with each algorithm; the (96, 8, 8) multiclass maps hold 2 * 2 * 3 * 64 = 768 lines along their
# first axis, more than one dense chunk of _DENSE_BUDGET // 96^2 = 455 lines.
SHAPES = [((7,), None), ((130,), None), ((6, 5), "dense"), ((97, 5), "envelope"), ((3, 4, 5), "dense"),
          ((4, 97, 3), "envelope"), ((3, 4, 5), "envelope"), ((96, 8, 8), "dense")]

LOSSES = {
    "boundary": lambda mode, **options: stableloss.BoundaryLoss(mode, **options),
    "hausdorff": lambda mode, **options: stableloss.HausdorffDTLoss(mode, **options),
    "hybrid-boundary": lambda mode, **options: stableloss.BoundaryAwareLoss(mode, boundary="boundary", **options),
    "hybrid-hausdorff": lambda mode, **options: stableloss.BoundaryAwareLoss(mode, boundary="hausdorff", **options),
}

VARIANTS = [
    {"ignore_index": 255, "spacing": (0.7, 1.3, 2.1), "no_surface": "bound", "inside_shift": 1.0},
    {"no_surface": "zero"},
]


def _options(name, variant, ndim):
    options = dict(variant)
    if "spacing" in options:
        options["spacing"] = options["spacing"][:ndim]
    if "hausdorff" in name:
        options.pop("inside_shift", None)  # the Hausdorff-DT loss measures unsigned distances
    return options


def _case(mode, shape, ignore_index):
    logits, target = make_case(mode, spatial=shape, batch=2, seed=sum(shape))
    if ignore_index is not None:
        target = target.long() if mode == "multiclass" else target.clone()
        target.view(-1)[::5] = ignore_index
    return logits, target


def _spy(monkeypatch):
    """Count the calls of the torch transform and of SciPy's."""
    calls = {"torch": 0, "scipy": 0}
    torch_engine, scipy_engine = _edt.squared_distance_to_seeds, _edt._scipy_distance_to_seeds

    def on_torch(*args, **kwargs):
        calls["torch"] += 1
        return torch_engine(*args, **kwargs)

    def on_scipy(*args, **kwargs):
        calls["scipy"] += 1
        return scipy_engine(*args, **kwargs)

    monkeypatch.setattr(_edt, "squared_distance_to_seeds", on_torch)
    monkeypatch.setattr(_edt, "_scipy_distance_to_seeds", on_scipy)
    return calls


def _value_and_grad(loss, logits, target):
    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("variant", VARIANTS, ids=["ignore-spacing-bound-shift", "zero"])
@pytest.mark.parametrize("shape,algorithm", SHAPES, ids=["x".join(map(str, s)) + f"-{a}" for s, a in SHAPES])
@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_torch_and_scipy_backends_give_the_same_loss_and_gradient(monkeypatch, name, mode, shape, algorithm, variant):
    options = _options(name, variant, len(shape))
    logits, target = _case(mode, shape, options.get("ignore_index"))
    calls = _spy(monkeypatch)
    if algorithm is not None:
        monkeypatch.setattr(_edt, "default_algorithm", lambda device, n, lines: algorithm)
    results = {}
    for backend in ("torch", "scipy"):
        before = dict(calls)
        results[backend] = _value_and_grad(LOSSES[name](mode, backend=backend, **options), logits, target)
        other = "scipy" if backend == "torch" else "torch"
        assert calls[backend] > before[backend] and calls[other] == before[other], (backend, calls)
    (torch_value, torch_grad), (scipy_value, scipy_grad) = results["torch"], results["scipy"]
    assert torch.isfinite(torch_value)
    torch.testing.assert_close(torch_value, scipy_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch_grad, scipy_grad, rtol=1e-5, atol=1e-6 * float(torch_grad.abs().max()))


@pytest.mark.parametrize("spatial", [(11,), (6, 7), (3, 4, 5), (300, 40)])
@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("name, index", [(name, i) for name in ("boundary", "hausdorff") for i in range(len(BY_NAME[name].variants))])
def test_registry_variants_with_the_torch_backend_agree_with_float64_reference(name, index, mode, spatial):
    # tests/test_losses.py::test_one_two_and_three_spatial_dims with backend="torch" (the registry's
    # variants set no backend, so there the CPU runs SciPy).
    info = BY_NAME[name]
    options = info.variants[index]
    logits, target = make_case(mode, spatial=spatial, seed=7)
    actual = info.call(logits, target, mode, backend="torch", **options)
    expected = info.reference(logits, target, mode=mode, **options)
    assert reference.close(actual, expected, rtol=1e-5, atol=1e-6), (actual.item(), expected.item())
