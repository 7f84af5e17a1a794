"""Generic properties of every loss, driven by the registry: value, bounds, symmetry, dtype."""

import pytest
import torch

from tests import reference
from tests.inputs import CHANNELS, make_case, perfect_logits
from tests.registry import MODES, cases, upper_bound

CASES, IDS = cases()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("info,options", CASES, ids=IDS)
def test_function_equals_class(info, options, mode):
    logits, target = make_case(mode, seed=1)
    by_class = info.build(mode, **options)(logits, target)
    by_function = info.call(logits, target, mode, **options)
    torch.testing.assert_close(by_class, by_function, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("info,options", CASES, ids=IDS)
@pytest.mark.parametrize("scale", [0.5, 4.0, 40.0])
def test_float32_agrees_with_float64_reference(info, options, mode, scale):
    logits, target = make_case(mode, seed=2, scale=scale, spatial=(5, 4, 3))
    actual = info.call(logits, target, mode, **options)
    expected = info.reference(logits, target, mode=mode, **options)
    assert reference.close(actual, expected, rtol=1e-5, atol=1e-6), (actual.item(), expected.item())


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("info,options", [c for c in CASES if c[0].name in ("dice", "tversky", "jaccard", "focal")],
                         ids=[i for c, i in zip(CASES, IDS) if c[0].name in ("dice", "tversky", "jaccard", "focal")])
def test_soft_labels_agree_with_float64_reference(info, options, mode):
    logits, target = make_case(mode, seed=3, soft=True)
    actual = info.call(logits, target, mode, **options)
    extra = {"soft": True} if info.overlap else {}
    expected = info.reference(logits, target, mode=mode, **options, **extra)
    assert reference.close(actual, expected, rtol=1e-5, atol=1e-6), (actual.item(), expected.item())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("info,options", CASES, ids=IDS)
@pytest.mark.parametrize("scale", [1.0, 100.0, 65504.0])
def test_loss_within_bounds(info, options, mode, scale):
    logits, target = make_case(mode, seed=4, scale=scale)
    loss = info.call(logits, target, mode, **options)
    high = upper_bound(info, options)
    assert loss.item() >= info.bounds[0] - 1e-7
    if high is not None:
        assert loss.item() <= high + 1e-6


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("info,options", CASES, ids=IDS)
def test_perfect_prediction_gives_the_minimum(info, options, mode):
    logits, target = make_case(mode, seed=5)
    perfect = perfect_logits(target, mode, CHANNELS[mode])
    best = info.call(perfect, target, mode, **options).item()
    assert best <= 1e-6
    assert info.call(logits, target, mode, **options).item() > best


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("info,options", CASES, ids=IDS)
def test_invariant_to_permuting_the_batch(info, options, mode):
    logits, target = make_case(mode, seed=6, batch=5)
    order = torch.tensor([3, 0, 4, 1, 2])
    loss = info.call(logits, target, mode, **options)
    permuted = info.call(logits[order], target[order], mode, **options)
    torch.testing.assert_close(loss, permuted, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype,loss_dtype", [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                              (torch.float32, torch.float32), (torch.float64, torch.float64)])
@pytest.mark.parametrize("info,options", CASES, ids=IDS)
def test_loss_is_float32_for_half_inputs_and_float64_for_float64(info, options, dtype, loss_dtype):
    logits, target = make_case("binary", dtype=dtype)
    logits.requires_grad_(True)
    loss = info.call(logits, target, "binary", **options)
    loss.backward()
    assert loss.dtype == loss_dtype
    assert logits.grad.dtype == dtype


@pytest.mark.parametrize("spatial", [(11,), (6, 7), (3, 4, 5)])
@pytest.mark.parametrize("info,options", CASES, ids=IDS)
def test_one_two_and_three_spatial_dims(info, options, spatial):
    for mode in MODES:
        logits, target = make_case(mode, spatial=spatial, seed=7)
        actual = info.call(logits, target, mode, **options)
        expected = info.reference(logits, target, mode=mode, **options)
        assert reference.close(actual, expected, rtol=1e-5, atol=1e-6), (mode, actual.item(), expected.item())


def test_binary_target_without_channel_dim_equals_with_it():
    logits, target = make_case("binary", seed=8)
    for info, options in CASES:
        with_channel = info.call(logits, target, "binary", **options)
        without = info.call(logits, target[:, 0], "binary", **options)
        torch.testing.assert_close(with_channel, without, rtol=0, atol=0)
