"""Patient-level K-fold split: every case (patient) is in exactly one validation fold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def patient_folds(case_ids: Sequence[str], folds: int, *, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Split case ids into ``folds`` (train, validation) pairs with no case in both.

    The ids are shuffled with ``seed`` and cut into ``folds`` nearly equal parts; fold ``k``
    validates on part ``k`` and trains on the rest. In LiTS each volume is one patient, so a
    patient's slices never appear on both sides.

    Raises:
        ValueError: ``folds`` < 2, more folds than cases, or duplicate ids.
    """
    ids = list(case_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"case_ids must be unique; received duplicates {sorted({i for i in ids if ids.count(i) > 1})}")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(ids):
        raise ValueError(f"folds must be an int in [2, number of cases = {len(ids)}]; received {folds!r}")
    order = np.random.default_rng(seed).permutation(len(ids))
    parts = [[ids[i] for i in part] for part in np.array_split(order, folds)]
    return [([i for j, p in enumerate(parts) if j != k for i in p], parts[k]) for k in range(folds)]
