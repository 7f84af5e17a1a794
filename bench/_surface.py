"""The surface-metric rows of ``bench/distance.py``: stableloss's 95th-percentile Hausdorff distance
against MONAI's ``compute_hausdorff_distance`` on the same pair of masks.

The pair reproduces a validation mask with the failure real CT shows: the target is one ball per
image (``_common.ball_target``); the prediction is the ball shifted by 3 pixels along the last axis
plus scattered single-pixel false positives (about 1 in 2000 pixels) all over the image, so the
bounding box of the two masks is the whole image and HD95 is set by far islands.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

import _common as C
import stableloss as sl

SHAPES = {"2d-256": (8, 1, 256, 256), "3d-96": (1, 1, 96, 96, 96), "3d-128": (1, 1, 128, 128, 128),
          "3d-256": (1, 1, 256, 256, 256)}
QUICK_SHAPES = {"2d-256": (2, 1, 64, 64), "3d-96": (1, 1, 24, 24, 24), "3d-128": (1, 1, 32, 32, 32),
                "3d-256": (1, 1, 40, 40, 40)}
IMPLS = ("stableloss:auto", "stableloss:torch", "monai:hd95")
BASELINE = "monai:hd95"
ISLAND_RATE = 5e-4

PairFn = Callable[[tuple[Tensor, Tensor]], Tensor]


def make_pair(shape, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(pred, target)`` float 0/1 masks of ``shape`` (module docstring)."""
    gen = torch.Generator().manual_seed(0)
    target = C.ball_target(shape, generator=gen)[0]
    pred = torch.roll(target, 3, dims=-1)
    pred = torch.maximum(pred, (torch.rand(shape, generator=gen) < ISLAND_RATE).float())
    return pred.to(device), target.to(device)


def build_impls(names: list[str]) -> dict[str, PairFn]:
    """The HD95 implementations asked for and available."""
    unknown = [n for n in names if n not in IMPLS]
    if unknown:
        raise SystemExit(f"--surface-impls must be from {list(IMPLS)}; received {unknown}")
    fns: dict[str, PairFn] = {
        "stableloss:auto": lambda pair: sl.hausdorff_distance(*pair, percentile=95.0, backend="auto"),
        "stableloss:torch": lambda pair: sl.hausdorff_distance(*pair, percentile=95.0, backend="torch"),
    }
    if C.optional_import("monai") is not None:
        from monai.metrics import compute_hausdorff_distance

        def monai_hd95(pair: tuple[Tensor, Tensor]) -> Tensor:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return compute_hausdorff_distance(*pair, include_background=True, percentile=95.0)

        fns["monai:hd95"] = monai_hd95
    return {n: fns[n] for n in names if n in fns}
