"""The custom autograd of the losses is a contract: higher derivatives and torch.func transforms are exact.

Every loss, option variant and mode of the registry: ``gradgradcheck`` in float64 (second
derivatives, ``create_graph=True``), ``torch.func.grad`` equal to autograd, ``torch.func.vmap`` equal
to a loop, and forward mode (``torch.func.jacfwd``, ``hessian``) equal to reverse mode.
"""

import pytest
import torch
from torch.func import grad, hessian, jacfwd, vmap

from tests.inputs import make_case
from tests.registry import mode_cases

MODE_CASES, MODE_IDS = mode_cases()


def _build(info, mode, options):
    """The loss; distance maps from the torch transform (the one torch.func sees) in every mode, so
    that eager and transformed runs compute the same numbers, not two float32-exact ones."""
    spec = getattr(info.cls, "spec", None)
    extra = {"backend": "torch"} if spec is not None and "backend" in spec.accepted else {}
    return info.build(mode, **options, **extra)


def _case(mode, seed, **kwargs):
    logits, target = make_case(mode, seed=seed, spatial=(3, 4), batch=2, scale=1.5, dtype=torch.float64, **kwargs)
    return logits, (target.double() if target.is_floating_point() else target)


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_gradgradcheck_float64(info, options, mode):
    logits, target = _case(mode, seed=40)
    loss = _build(info, mode, options)
    logits.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("name", ["dice", "focal"])
def test_gradgradcheck_with_respect_to_soft_targets(mode, name):
    import stableloss

    logits, target = _case(mode, seed=41, soft=True)
    target = target.clamp(0.05, 0.95)
    fn = stableloss.dice_loss if name == "dice" else stableloss.focal_loss
    inputs = (logits.requires_grad_(True), target.requires_grad_(True))
    assert torch.autograd.gradgradcheck(lambda x, t: fn(x, t, mode=mode, validate_args=False), inputs, eps=1e-6,
                                        atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_torch_func_grad_equals_autograd(info, options, mode):
    logits, target = _case(mode, seed=42)
    loss = _build(info, mode, options)
    x = logits.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(loss(x, target), [x])
    torch.testing.assert_close(grad(lambda z: loss(z, target))(logits), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_torch_func_vmap_equals_a_loop(info, options, mode):
    if not info.vmap:
        pytest.skip(f"{info.name}: vmap over the logits is not supported (documented)")
    logits, target = _case(mode, seed=43)
    stacked = torch.stack([logits, 2.0 * logits, -logits])
    loss = _build(info, mode, options)
    looped = torch.stack([loss(x, target) for x in stacked])
    torch.testing.assert_close(vmap(lambda z: loss(z, target))(stacked), looped, rtol=1e-12, atol=1e-15)
    grads = torch.stack([grad(lambda z: loss(z, target))(x) for x in stacked])
    torch.testing.assert_close(vmap(grad(lambda z: loss(z, target)))(stacked), grads, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_forward_mode_equals_reverse_mode(info, options, mode):
    logits, target = _case(mode, seed=44)
    loss = _build(info, mode, options)
    f = lambda z: loss(z, target)  # noqa: E731
    torch.testing.assert_close(jacfwd(f)(logits), grad(f)(logits), rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(hessian(f)(logits), torch.autograd.functional.hessian(f, logits), rtol=1e-8, atol=1e-11)
