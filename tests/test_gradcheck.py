"""torch.autograd.gradcheck in float64 on tiny inputs, for every loss, variant and mode."""

import pytest
import torch

from tests.inputs import make_case
from tests.registry import mode_cases

MODE_CASES, MODE_IDS = mode_cases()


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_gradcheck_float64(info, options, mode):
    logits, target = make_case(mode, seed=30, spatial=(3, 4), batch=2, scale=1.5, dtype=torch.float64)
    logits.requires_grad_(True)
    loss = info.build(mode, **options)
    assert torch.autograd.gradcheck(lambda x: loss(x, target).double(), (logits,), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_gradcheck_soft_labels(mode):
    import stableloss

    logits, target = make_case(mode, seed=31, spatial=(3, 3), batch=2, soft=True, dtype=torch.float64)
    target = target.double()
    logits.requires_grad_(True)
    for fn in (stableloss.dice_loss, stableloss.focal_loss):
        assert torch.autograd.gradcheck(lambda x, fn=fn: fn(x, target, mode=mode).double(), (logits,), eps=1e-6, atol=1e-5,
                                        rtol=1e-3)


@pytest.mark.parametrize("options", [{}, {"alpha": 0.25}, {"gamma": 0.5, "alpha": 0.6}, {"reduced_threshold": 0.5}])
def test_gradcheck_focal_with_respect_to_soft_target(options):
    import stableloss

    logits, target = make_case("multilabel", seed=32, spatial=(3, 3), batch=2, soft=True, dtype=torch.float64)
    target = target.double().clamp(0.05, 0.95).requires_grad_(True)
    logits.requires_grad_(True)
    fn = lambda x, t: stableloss.focal_loss(x, t, mode="multilabel", validate_args=False, **options).double()  # noqa: E731
    assert torch.autograd.gradcheck(fn, (logits, target), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("options", [{}, {"smooth": 1.0}, {"per_image": True}])
def test_gradcheck_dice_with_respect_to_soft_target(options):
    import stableloss

    logits, target = make_case("binary", seed=33, spatial=(3, 3), batch=2, soft=True, dtype=torch.float64)
    target = target.double().clamp(0.05, 0.95)
    target.requires_grad_(True)
    logits.requires_grad_(True)
    fn = lambda x, t: stableloss.dice_loss(x, t, mode="binary", validate_args=False, **options).double()  # noqa: E731
    assert torch.autograd.gradcheck(fn, (logits, target), eps=1e-6, atol=1e-5, rtol=1e-3)
