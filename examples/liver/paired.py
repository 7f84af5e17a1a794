"""Paired differences over seeds with a Student-t interval: the statistics of the loss comparison.

Each seed draws its own phantom and folds, and every recipe meets the same ones at a given seed, so
the seeds pair the runs: recipe A at seed k against recipe B at seed k. The spread between seeds
(each a different phantom) is larger than the differences between recipes; pairing removes it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """The mean of ``value - reference`` over the seeds both have, with its Student-t interval.

    Attributes:
        n: Number of pairs (seeds with a finite value on both sides).
        mean: Mean paired difference, or None without pairs.
        low: Lower end of the interval, or None with fewer than 2 pairs (no spread to estimate).
        high: Upper end of the interval, or None with fewer than 2 pairs.
        seeds: The paired seeds, sorted.
    """

    n: int
    mean: float | None
    low: float | None
    high: float | None
    seeds: tuple

    @property
    def has_interval(self) -> bool:
        return self.low is not None


def t_quantile(probability: float, dof: int) -> float:
    """Student's t quantile (``scipy.stats.t.ppf``).

    >>> round(t_quantile(0.975, 4), 4)
    2.7764
    """
    from scipy.stats import t

    return float(t.ppf(probability, dof))


def paired_difference(values: Mapping[int, float | None], reference: Mapping[int, float | None], *,
                      level: float = LEVEL) -> PairedDifference:
    """Mean paired difference ``values[s] - reference[s]`` over seeds ``s`` and its two-sided interval.

    .. math::

        d_s = v_s - r_s, \\quad \\bar d = \\frac{1}{n} \\sum_s d_s, \\quad
        \\bar d \\pm t_{(1 + \\text{level}) / 2,\\, n - 1} \\, \\frac{s_d}{\\sqrt n}

    with :math:`s_d` the sample standard deviation of the differences. Seeds missing on either side,
    or whose value is None or not finite (a run stopped before its first validation), are left out.

    Args:
        values: Score per seed of the recipe.
        reference: Score per seed of the reference recipe (``dice``).
        level: Confidence level of the interval, in (0, 1).

    Returns:
        A :class:`PairedDifference`; without pairs ``mean`` is None, with one pair there is no
        interval (``low`` and ``high`` are None).

    Raises:
        ValueError: ``level`` is not in (0, 1).

    Example:
        >>> d = paired_difference({0: 5.0, 1: 7.0, 2: 6.0}, {0: 6.0, 1: 9.0, 2: 6.0})  # differences -1, -2, 0
        >>> d.n, d.mean, round(d.low, 4), round(d.high, 4)
        (3, -1.0, -3.4841, 1.4841)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); received {level!r}")
    seeds = tuple(sorted(s for s in values if s in reference and finite(values[s]) and finite(reference[s])))
    diffs = [float(values[s]) - float(reference[s]) for s in seeds]  # type: ignore[arg-type]
    if not diffs:
        return PairedDifference(0, None, None, None, seeds)
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedDifference(1, mean, None, None, seeds)
    half = t_quantile((1 + level) / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDifference(len(diffs), mean, mean - half, mean + half, seeds)


def finite(value: object) -> bool:
    """Whether ``value`` is a score: not None and finite."""
    return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
