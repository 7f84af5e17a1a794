"""Deterministic checks of every loss, driven by the registry: class == function, soft labels, dtypes,
1 to 3 spatial dims. (The Hypothesis properties are in ``test_properties.py``.)"""

import pytest
import torch

from tests import reference
from tests.inputs import make_case
from tests.registry import cases, mode_cases

CASES, IDS = cases()
MODE_CASES, MODE_IDS = mode_cases()
BINARY_CASES, BINARY_IDS = cases("binary")


@pytest.mark.parametrize("info,options,mode", MODE_CASES, ids=MODE_IDS)
def test_function_equals_class(info, options, mode):
    logits, target = make_case(mode, seed=1)
    by_class = info.build(mode, **options)(logits, target)
    by_function = info.call(logits, target, mode, **options)
    torch.testing.assert_close(by_class, by_function, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("info,options", [c for c in CASES if c[0].name in ("dice", "tversky", "jaccard", "focal")],
                         ids=[i for c, i in zip(CASES, IDS, strict=False) if c[0].name in ("dice", "tversky", "jaccard", "focal")])
def test_soft_labels_agree_with_float64_reference(info, options, mode):
    logits, target = make_case(mode, seed=3, soft=True)
    actual = info.call(logits, target, mode, **options)
    extra = {"soft": True} if info.overlap else {}
    expected = info.reference(logits, target, mode=mode, **options, **extra)
    assert reference.close(actual, expected, rtol=1e-5, atol=1e-6), (actual.item(), expected.item())


@pytest.mark.parametrize("dtype,loss_dtype", [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                              (torch.float32, torch.float32), (torch.float64, torch.float64)])
@pytest.mark.parametrize("info,options", BINARY_CASES, ids=BINARY_IDS)
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
    for mode in info.modes:
        logits, target = make_case(mode, spatial=spatial, seed=7)
        actual = info.call(logits, target, mode, **options)
        expected = info.expected(logits, target, mode=mode, **options)
        assert reference.close(actual, expected, rtol=1e-5, atol=1e-6), (mode, actual.item(), expected.item())


def test_binary_target_without_channel_dim_equals_with_it():
    logits, target = make_case("binary", seed=8)
    for info, options in BINARY_CASES:
        with_channel = info.call(logits, target, "binary", **options)
        without = info.call(logits, target[:, 0], "binary", **options)
        torch.testing.assert_close(with_channel, without, rtol=0, atol=0)
