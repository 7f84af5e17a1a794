"""The stability contract, as properties: every loss, every mode, every precision context.

Inputs come from :mod:`stableloss.testing.strategies` and are judged by
:func:`stableloss.testing.evaluate` / :func:`stableloss.testing.assert_stable` (the same engine as
``python -m stableloss.check``). A pass means: the loss and its gradient w.r.t. the logits are
finite, and the loss is within ``TOLERANCE`` (relative, see ``REFERENCE_FLOOR``) of a float64
textbook formula on the same rounded logits. Test names carry ``fp16``/``bf16``/``cuda`` so that
``pytest -k fp16`` selects the float16 checks. Every loss and variant of ``tests/registry.py`` runs
in every mode; float32 agreement is in ``test_properties.py``.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stableloss.testing import assert_stable, evaluate
from stableloss.testing import strategies as sst
from tests.conftest import requires_cuda
from tests.registry import MODES
from tests.stability_cases import ALL, CORE

TOLERANCE = 1e-3
LOSS_MODES = [pytest.param(case, mode, id=f"{case.name}-{mode}") for case in ALL for mode in MODES if mode in case.info.modes]


def _assert_holds(case, mode, example, context, device="cpu"):
    outcome = evaluate(case.build(mode).to(device), example, context, device=device, input=case.input,
                       reference=case.reference_for(mode), tolerance=TOLERANCE, reference_floor=case.reference_floor)
    assert outcome.ok, outcome.describe()


def _examples(mode):
    return sst.examples(mode, max_side=12, max_batch=2, max_channels=3)


@pytest.mark.parametrize("context", ["fp16-autocast", "fp16"])
@pytest.mark.parametrize("case, mode", LOSS_MODES)
@given(data=st.data())
def test_fp16_loss_and_grad_finite_and_close_to_float64(case, mode, context, data):
    _assert_holds(case, mode, data.draw(_examples(mode), label="example"), context)


@pytest.mark.parametrize("context", ["bf16-autocast", "bf16"])
@pytest.mark.parametrize("case, mode", LOSS_MODES)
@given(data=st.data())
def test_bf16_loss_and_grad_finite_and_close_to_float64(case, mode, context, data):
    _assert_holds(case, mode, data.draw(_examples(mode), label="example"), context)


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("context", ["fp16-autocast", "fp16"])
@pytest.mark.parametrize("case, mode", LOSS_MODES)
@given(data=st.data())
def test_fp16_cuda_loss_and_grad_finite_and_close_to_float64(case, mode, context, data):
    _assert_holds(case, mode, data.draw(_examples(mode), label="example"), context, device="cuda")


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("context", ["bf16-autocast", "bf16"])
@pytest.mark.parametrize("case, mode", LOSS_MODES)
@given(data=st.data())
def test_bf16_cuda_loss_and_grad_finite_and_close_to_float64(case, mode, context, data):
    _assert_holds(case, mode, data.draw(_examples(mode), label="example"), context, device="cuda")


# Logits of 8 to 17: probabilities so close to 0 or 1 that float32 keeps few digits of 1 - p.
NEAR_SATURATION = [("right", 8.0), ("right", 12.0), ("right", 17.0), ("wrong", 12.0), ("noise", 12.0)]


@pytest.mark.parametrize("case, mode", LOSS_MODES)
def test_fp16_grid_near_saturation(case, mode):
    assert_stable(case.build(mode), mode=mode, contexts=["fp16-autocast", "fp16"], quick=True,
                  scenarios=NEAR_SATURATION, reference=case.reference_for(mode), tolerance=TOLERANCE,
                  reference_floor=case.reference_floor, input=case.input)


@pytest.mark.parametrize("case, mode", LOSS_MODES)
def test_bf16_grid_near_saturation(case, mode):
    assert_stable(case.build(mode), mode=mode, contexts=["bf16-autocast", "bf16"], quick=True,
                  scenarios=NEAR_SATURATION, reference=case.reference_for(mode), tolerance=TOLERANCE,
                  reference_floor=case.reference_floor, input=case.input)


# Real sizes: the batch and volume where float16 sums pass 65504 (smp's Dice returns NaN there).
# Noise logits of scale 1e5 are +-inf in float16 and far past saturation in bfloat16.
REAL_SIZES = [pytest.param((16, 512, 512), id="16x1x512x512"), pytest.param((2, 128, 128, 128), id="2x1x128x128x128")]


def _assert_real_size(case, size, contexts, device="cpu"):
    assert_stable(case.build("binary").to(device), mode="binary", contexts=contexts, device=device, sizes=[size],
                  scenarios=[("noise", 1e5)], large_masks=["blob"], reference=case.reference_for("binary"),
                  tolerance=TOLERANCE, reference_floor=case.reference_floor, input=case.input)


@pytest.mark.slow
@pytest.mark.parametrize("size", REAL_SIZES)
@pytest.mark.parametrize("case", CORE, ids=[c.name for c in CORE])
def test_fp16_real_size(case, size):
    _assert_real_size(case, size, ["fp16-autocast", "fp16"])


@pytest.mark.slow
@pytest.mark.parametrize("size", REAL_SIZES)
@pytest.mark.parametrize("case", CORE, ids=[c.name for c in CORE])
def test_bf16_real_size(case, size):
    _assert_real_size(case, size, ["bf16-autocast", "bf16"])


@pytest.mark.cuda
@pytest.mark.slow
@requires_cuda
@pytest.mark.parametrize("size", REAL_SIZES)
@pytest.mark.parametrize("case", CORE, ids=[c.name for c in CORE])
def test_fp16_bf16_cuda_real_size(case, size):
    _assert_real_size(case, size, ["float32", "fp16-autocast", "bf16-autocast", "fp16", "bf16"], device="cuda")
