"""Hypothesis strategies for segmentation inputs, for your own loss tests.

Needs Hypothesis (``pip install "stableloss[test]"``); the rest of :mod:`stableloss` does not.

The strategies draw an :class:`~stableloss.testing.Example` (mode, shape, mask, logits kind, scale,
seed), the same description the stability checker uses, so a failure prints as a one-line spec that
``Example(...).tensors()`` rebuilds. Shrinking moves towards small shapes, seed 0 and the first
mask, logit kind and scale of each list. Typical use::

    from hypothesis import given
    from stableloss.testing import evaluate
    from stableloss.testing import strategies as sst

    @given(example=sst.examples(mode="binary"))
    def test_my_loss_fp16(example):
        outcome = evaluate(MyLoss(), example, "fp16")
        assert outcome.ok, outcome.describe()
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the [test] extra
    raise ImportError(
        "stableloss.testing.strategies needs Hypothesis: pip install hypothesis (or 'stableloss[test]')"
    ) from exc

import torch

from stableloss._checks import MODES
from stableloss.testing._data import FP16_MAX, LOGIT_KINDS, MASK_KINDS, Example

SPECIAL_SCALES = (1.0, 8.0, 12.0, 17.0, 30.0, FP16_MAX, 65519.0, 65520.0, 1e5, 1e38, math.inf)
"""Scales worth hitting exactly: ordinary; 8 to 17, where ``1 - sigmoid(x)`` loses its digits in
float32 (``sigmoid(17)`` rounds to 1); saturated; the float16 maximum, the last value that rounds to
it, the first that rounds to ``inf`` in float16, past it; near the bfloat16/float32 maximum; ``inf``."""

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def modes() -> st.SearchStrategy[str]:
    """``"binary"``, ``"multiclass"`` or ``"multilabel"``."""
    return st.sampled_from(MODES)


def mask_kinds(kinds: Sequence[str] = MASK_KINDS) -> st.SearchStrategy[str]:
    """Empty, full, single pixel, blob or random masks."""
    return st.sampled_from(tuple(kinds))


def logit_kinds(kinds: Sequence[str] = LOGIT_KINDS) -> st.SearchStrategy[str]:
    """Confidently right, confidently wrong, or noise."""
    return st.sampled_from(tuple(kinds))


def dtypes(choices: Sequence[torch.dtype] = DTYPES) -> st.SearchStrategy[torch.dtype]:
    """float32, float16 or bfloat16."""
    return st.sampled_from(tuple(choices))


def scales(max_value: float = math.inf) -> st.SearchStrategy[float]:
    """Logit magnitudes from 1 up to and past the float16 maximum (float16 rounding gives ``+-inf``).

    Draws from :data:`SPECIAL_SCALES` or any float in [1, 1e6], capped at ``max_value``.
    """
    specials = [s for s in SPECIAL_SCALES if s <= max_value]
    wide = st.floats(min_value=1.0, max_value=min(1e6, max_value), allow_nan=False, allow_infinity=False)
    return st.one_of(st.sampled_from(specials), wide)


@st.composite
def shapes(
    draw,
    mode: str = "binary",
    *,
    spatial_dims: Sequence[int] = (2, 3),
    max_batch: int = 3,
    max_channels: int = 4,
    max_side: int = 16,
) -> Tuple[int, ...]:
    """Logit shapes ``(N, C, *S)`` for ``mode``: C is 1 for binary, >= 2 for multiclass.

    Args:
        mode: Target mode.
        spatial_dims: Allowed numbers of spatial dims (1, 2 or 3).
        max_batch: Largest N.
        max_channels: Largest C (multiclass and multilabel).
        max_side: Largest spatial side.
    """
    dims = draw(st.sampled_from(tuple(spatial_dims)))
    batch = draw(st.integers(1, max_batch))
    if mode == "binary":
        channels = 1
    else:
        channels = draw(st.integers(2 if mode == "multiclass" else 1, max(max_channels, 2)))
    spatial = tuple(draw(st.integers(1, max_side)) for _ in range(dims))
    return (batch, channels) + spatial


@st.composite
def examples(
    draw,
    mode: Optional[str] = None,
    *,
    masks: Sequence[str] = MASK_KINDS,
    logits: Sequence[str] = LOGIT_KINDS,
    max_scale: float = math.inf,
    **shape_options,
) -> Example:
    """An :class:`~stableloss.testing.Example`: mode, shape, mask, logits kind, scale and seed.

    Args:
        mode: Fixed mode, or None to draw one.
        masks: Mask kinds to draw from.
        logits: Logit kinds to draw from.
        max_scale: Largest logit scale.
        **shape_options: Passed to :func:`shapes` (``spatial_dims``, ``max_side``, ...).
    """
    mode = draw(modes()) if mode is None else mode
    shape = draw(shapes(mode, **shape_options))
    return Example(
        mode=mode,
        shape=shape,
        mask=draw(mask_kinds(masks)),
        logits=draw(logit_kinds(logits)),
        scale=draw(scales(max_scale)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def logits_and_targets(draw, mode: Optional[str] = None, *, dtype: Optional[torch.dtype] = None, **example_options):
    """``(logits, target)`` tensors: logits in ``dtype`` (drawn when None), target as the mode wants.

    Rounding the float32 logits to float16 turns scales of 65520 and more into ``+-inf``.
    """
    example = draw(examples(mode, **example_options))
    logits, target = example.tensors()
    return logits.to(draw(dtypes()) if dtype is None else dtype), target
