"""Hypothesis properties of every loss and mode, on inputs from stableloss.testing.strategies.

Bounds, the minimum at a perfect prediction, invariance to permuting the batch, and agreement with
the float64 textbook references of ``tests/reference.py``, in float32. (The precision contexts,
fp16 and bf16, are in ``test_stability.py``.)
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from stableloss.testing import strategies as sst
from tests import reference
from tests.registry import mode_cases, upper_bound

MODE_CASES, MODE_IDS = mode_cases()
SMALL = dict(max_side=10, max_batch=3, max_channels=3)


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
@given(data=st.data())
def test_loss_within_bounds(info, options, mode, data):
    logits, target = data.draw(sst.examples(mode, **SMALL)).tensors()
    loss = info.call(logits, target, mode, **options).item()
    low, high = info.bounds[0], upper_bound(info, options)
    assert math.isfinite(loss)
    if low is not None:
        assert loss >= low - 1e-7
    if high is not None:
        assert loss <= high + 1e-6


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
@given(data=st.data())
def test_perfect_prediction_is_the_minimum(info, options, mode, data):
    if not info.minimum_at_perfect(options):
        pytest.skip(f"{info.name} {options}: label smoothing puts the minimum at finite logits (registry)")
    example = data.draw(sst.examples(mode, logits=("noise", "wrong"), max_scale=1e3, **SMALL))
    logits, target = example.tensors()
    perfect, _ = type(example)(mode, example.shape, example.mask, "right", math.inf, example.seed).tensors()
    best = info.call(perfect, target, mode, **options).item()
    if info.perfect_value is not None:
        assert abs(best - info.perfect_value) <= info.perfect_atol
    assert info.call(logits, target, mode, **options).item() >= best - 1e-6


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
@given(data=st.data())
def test_invariant_to_permuting_the_batch(info, options, mode, data):
    logits, target = data.draw(sst.examples(mode, **SMALL)).tensors()
    order = torch.tensor(data.draw(st.permutations(range(logits.shape[0]))), dtype=torch.long)
    loss = info.call(logits, target, mode, **options)
    permuted = info.call(logits[order], target[order], mode, **options)
    assert reference.close(permuted, loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
@given(data=st.data())
def test_float32_agrees_with_float64_textbook_reference(info, options, mode, data):
    logits, target = data.draw(sst.examples(mode, **SMALL)).tensors()
    actual = info.call(logits, target, mode, **options)
    expected = info.expected(logits, target, mode=mode, **options)
    assert reference.close(actual, expected, rtol=1e-4, atol=1e-6), (actual.item(), expected.item())
