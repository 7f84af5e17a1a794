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

import inspect
import math
from collections.abc import Sequence

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the [test] extra
    raise ImportError(
        "stableloss.testing.strategies needs Hypothesis: pip install hypothesis (or 'stableloss[test]')"
    ) from exc

import torch

from stableloss._checks import MODES, check_choices, check_int, check_mode
from stableloss.testing._data import FP16_MAX, LOGIT_KINDS, MASK_KINDS, Example

SPECIAL_SCALES = (1.0, 8.0, 12.0, 17.0, 30.0, FP16_MAX, 65519.0, 65520.0, 1e5, 1e38, math.inf)
"""Scales worth hitting exactly. Ordinary; 8 to 17, where ``1 - sigmoid(x)`` loses its digits in
float32 (``sigmoid(17)`` rounds to 1); saturated; the float16 maximum, the last value that rounds to
it, the first that rounds to ``inf`` in float16, past it; near the bfloat16/float32 maximum; ``inf``."""

DTYPES = (torch.float32, torch.float16, torch.bfloat16)

SHAPE_OPTIONS = ("spatial_dims", "max_batch", "max_channels", "max_side")
"""The keyword arguments of :func:`shapes` that :func:`examples` passes on."""

# Every public strategy checks its arguments when it is built, before anything is drawn, and refuses
# what it cannot honour (a ValueError or TypeError naming the argument) instead of drawing outside it.


def modes() -> st.SearchStrategy[str]:
    """``"binary"``, ``"multiclass"`` or ``"multilabel"``."""
    return st.sampled_from(MODES)


def mask_kinds(kinds: Sequence[str] = MASK_KINDS) -> st.SearchStrategy[str]:
    """Empty, full, single pixel, blob or random masks (a non-empty subset of :data:`~stableloss.testing.MASK_KINDS`)."""
    return st.sampled_from(check_choices("kinds", kinds, MASK_KINDS))


def logit_kinds(kinds: Sequence[str] = LOGIT_KINDS) -> st.SearchStrategy[str]:
    """Confidently right, confidently wrong, or noise (a non-empty subset of :data:`~stableloss.testing.LOGIT_KINDS`)."""
    return st.sampled_from(check_choices("kinds", kinds, LOGIT_KINDS))


def dtypes(choices: Sequence[torch.dtype] = DTYPES) -> st.SearchStrategy[torch.dtype]:
    """float32, float16 or bfloat16 (any non-empty sequence of floating torch dtypes)."""
    return st.sampled_from(tuple(_check_dtype("choices", d) for d in _non_empty("choices", choices)))


def scales(max_value: float = math.inf) -> st.SearchStrategy[float]:
    """Logit magnitudes from 1 up to and past the float16 maximum (float16 rounding gives ``+-inf``).

    Draws from :data:`SPECIAL_SCALES` or any float in [1, 1e6], capped at ``max_value`` (a number
    >= 1; ``inf`` allowed).
    """
    max_value = _check_max_scale("max_value", max_value)
    specials = [s for s in SPECIAL_SCALES if s <= max_value]
    wide = st.floats(min_value=1.0, max_value=min(1e6, max_value), allow_nan=False, allow_infinity=False)
    return st.one_of(st.sampled_from(specials), wide)


def shapes(
    mode: str = "binary",
    *,
    spatial_dims: Sequence[int] = (2, 3),
    max_batch: int = 3,
    max_channels: int = 4,
    max_side: int = 16,
) -> st.SearchStrategy[tuple[int, ...]]:
    """Logit shapes ``(N, C, *S)`` for ``mode``: C is 1 for binary, >= 2 for multiclass.

    Args:
        mode: Target mode.
        spatial_dims: Allowed numbers of spatial dims (a non-empty sequence of 1, 2 and 3).
        max_batch: Largest N (>= 1).
        max_channels: Largest C (multiclass: >= 2; multilabel: >= 1; binary: unused, C is 1).
        max_side: Largest spatial side (>= 1).

    Raises:
        ValueError, TypeError: When the strategy is built, for an argument it cannot honour.
    """
    mode = check_mode(mode)
    return _shapes(mode, *_check_shape_options(mode, spatial_dims, max_batch, max_channels, max_side))


@st.composite
def _shapes(draw, mode: str, spatial_dims: tuple[int, ...], max_batch: int, max_channels: int, max_side: int):
    dims = draw(st.sampled_from(spatial_dims))
    batch = draw(st.integers(1, max_batch))
    channels = 1 if mode == "binary" else draw(st.integers(2 if mode == "multiclass" else 1, max_channels))
    spatial = tuple(draw(st.integers(1, max_side)) for _ in range(dims))
    return (batch, channels) + spatial


def examples(
    mode: str | None = None,
    *,
    masks: Sequence[str] = MASK_KINDS,
    logits: Sequence[str] = LOGIT_KINDS,
    max_scale: float = math.inf,
    **shape_options,
) -> st.SearchStrategy[Example]:
    """An :class:`~stableloss.testing.Example`: mode, shape, mask, logits kind, scale and seed.

    Args:
        mode: Fixed mode, or None to draw one (then ``max_channels`` must allow multiclass: >= 2).
        masks: Mask kinds to draw from (non-empty subset of :data:`~stableloss.testing.MASK_KINDS`).
        logits: Logit kinds to draw from (non-empty subset of :data:`~stableloss.testing.LOGIT_KINDS`).
        max_scale: Largest logit scale (>= 1, ``inf`` allowed; scales are drawn from [1, max_scale]).
        **shape_options: Passed to :func:`shapes` (``spatial_dims``, ``max_batch``, ``max_channels``,
            ``max_side``).

    Raises:
        ValueError, TypeError: When the strategy is built, for an argument it cannot honour.
    """
    unknown = sorted(set(shape_options) - set(SHAPE_OPTIONS))
    if unknown:
        raise TypeError(f"examples() takes the shape options {SHAPE_OPTIONS}; received unknown {unknown}")
    mode_strategy = modes() if mode is None else st.just(check_mode(mode))
    _check_shape_options(mode, **dict(_SHAPE_DEFAULTS, **shape_options))
    return _examples(mode_strategy, shape_options, st.sampled_from(check_choices("masks", masks, MASK_KINDS)),
                     st.sampled_from(check_choices("logits", logits, LOGIT_KINDS)),
                     scales(_check_max_scale("max_scale", max_scale)))


@st.composite
def _examples(draw, mode_strategy, shape_options, mask_strategy, logit_strategy, scale_strategy) -> Example:
    mode = draw(mode_strategy)
    return Example(
        mode=mode,
        shape=draw(shapes(mode, **shape_options)),
        mask=draw(mask_strategy),
        logits=draw(logit_strategy),
        scale=draw(scale_strategy),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def logits_and_targets(mode: str | None = None, *, dtype: torch.dtype | None = None, **example_options):
    """``(logits, target)`` tensors: logits in ``dtype`` (drawn when None), target as the mode wants.

    Rounding the float32 logits to float16 turns scales of 65520 and more into ``+-inf``.
    ``example_options`` are those of :func:`examples`.
    """
    dtype_strategy = dtypes() if dtype is None else st.just(_check_dtype("dtype", dtype))
    return _logits_and_targets(examples(mode, **example_options), dtype_strategy)


@st.composite
def _logits_and_targets(draw, example_strategy, dtype_strategy):
    logits, target = draw(example_strategy).tensors()
    return logits.to(draw(dtype_strategy)), target


_SHAPE_DEFAULTS = {name: p.default for name, p in inspect.signature(shapes).parameters.items() if name in SHAPE_OPTIONS}


def _check_shape_options(mode: str | None, spatial_dims, max_batch, max_channels, max_side) -> tuple:
    """The :func:`shapes` options, checked; ``mode=None`` means any mode may be drawn."""
    spatial_dims = check_choices("spatial_dims", spatial_dims, (1, 2, 3))
    max_batch = check_int("max_batch", max_batch, low=1)
    max_side = check_int("max_side", max_side, low=1)
    low = 1 if mode in ("binary", "multilabel") else 2  # multiclass: a background and a foreground class
    check_int("max_channels", max_channels, low=1)
    if max_channels < low:
        drawn = " (which may draw 'multiclass')" if mode is None else ""
        raise ValueError(f"max_channels must be an int >= {low} for mode={mode!r}{drawn}; received {max_channels!r}")
    return spatial_dims, max_batch, int(max_channels), max_side


def _check_max_scale(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number >= 1 (inf allowed); received {type(value).__name__} {value!r}")
    if not value >= 1.0:  # NaN fails too
        raise ValueError(f"{name} must be a number >= 1 (inf allowed): scales are drawn from [1, {name}]; "
                         f"received {value!r}")
    return float(value)


def _check_dtype(name: str, value: object) -> torch.dtype:
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.dtype (e.g. torch.float16); received {value!r}")
    return value


def _non_empty(name: str, values: object) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence; received {values!r}")
    return tuple(values)
