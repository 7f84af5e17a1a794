"""Segmentation inputs for stability checks: one :class:`Example` spec, turned into tensors on demand.

The checker's grid and the Hypothesis strategies both build their inputs here, so a failure found by
either one can be reproduced with ``Example(...).tensors()``. Everything is generated from a seeded
``torch.Generator``: the same spec always gives the same tensors. Only torch is needed.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
from torch import Tensor

from stableloss._checks import MODES

MASK_KINDS = ("empty", "full", "single_pixel", "blob", "random")
"""Foreground masks (nothing, everything, one pixel per image and class, an ellipsoid, coin flips)."""

LOGIT_KINDS = ("right", "wrong", "noise")
"""Logits ``+scale`` on the true class and ``-scale`` elsewhere (right), the opposite (wrong), or
``scale * N(0, 1)`` (noise)."""

FP16_MAX = 65504.0
"""The largest finite float16. Float32 values of 65520 and above round to ``inf`` in float16."""


@dataclass(frozen=True)
class Example:
    """One segmentation input, described by a few numbers; :meth:`~stableloss.testing.Example.tensors` builds it.

    Args:
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        shape: Logits shape ``(N, C, *S)`` with 1 to 3 spatial dims (``C == 1`` for binary,
            ``C >= 2`` for multiclass).
        mask: One of :data:`MASK_KINDS`.
        logits: One of :data:`LOGIT_KINDS`.
        scale: Logit magnitude, ``>= 0``; may be ``inf``. Above 65519 the logits round to ``+-inf``
            in float16.
        seed: Seed of the generator that draws blob positions, random masks and noise.

    Example:
        >>> x, t = Example("binary", (2, 1, 8, 8), "blob", "wrong", 1e5).tensors()
        >>> x.dtype, tuple(t.shape), x.abs().max().item()
        (torch.float32, (2, 1, 8, 8), 100000.0)
    """

    mode: str
    shape: tuple[int, ...]
    mask: str
    logits: str
    scale: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; received {self.mode!r}")
        shape = tuple(int(s) for s in self.shape)
        if len(shape) < 3 or len(shape) > 5 or min(shape) < 1:
            raise ValueError(f"shape must be (N, C, *spatial) with 1 to 3 spatial dims, all >= 1; received {self.shape!r}")
        if self.mode == "binary" and shape[1] != 1:
            raise ValueError(f"shape must have C == 1 with mode='binary'; received {shape}")
        if self.mode == "multiclass" and shape[1] < 2:
            raise ValueError(f"shape must have C >= 2 with mode='multiclass'; received {shape}")
        if self.mask not in MASK_KINDS:
            raise ValueError(f"mask must be one of {MASK_KINDS}; received {self.mask!r}")
        if self.logits not in LOGIT_KINDS:
            raise ValueError(f"logits must be one of {LOGIT_KINDS}; received {self.logits!r}")
        if not self.scale >= 0:
            raise ValueError(f"scale must be >= 0 (inf allowed); received {self.scale!r}")
        object.__setattr__(self, "shape", shape)

    @property
    def numel(self) -> int:
        """Number of logits."""
        return math.prod(self.shape)

    def describe(self) -> str:
        """Short text such as ``2x1x32x32 blob mask, wrong logits x1e+05``."""
        return f"{'x'.join(map(str, self.shape))} {self.mask} mask, {self.logits} logits x{self.scale:g}"

    def tensors(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """The float32 logits ``(N, C, *S)`` and the target for ``mode``.

        Targets: binary float32 ``(N, 1, *S)`` of 0/1; multiclass ``torch.long`` ``(N, *S)`` class
        indices (0 is background; "empty" means all background); multilabel float32 ``(N, C, *S)``.
        """
        generator = torch.Generator().manual_seed(self.seed)
        n, c, *spatial = self.shape
        if self.mode == "multiclass":
            masks = make_masks(self.mask, (n, c - 1, *spatial), generator)
            target = torch.zeros((n, *spatial), dtype=torch.long)
            for k in range(c - 1):  # later classes are drawn over earlier ones
                target[masks[:, k]] = k + 1
            truth = torch.nn.functional.one_hot(target, c).movedim(-1, 1).bool()
        else:
            truth = make_masks(self.mask, self.shape, generator)
            target = truth.float()
        logits = make_logits(self.logits, self.scale, truth, generator)
        return logits.to(device), target.to(device)


def make_masks(kind: str, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """A boolean foreground mask of ``shape`` ``(N, K, *S)``, one independent mask per ``(n, k)``."""
    n, k, *spatial = shape
    if kind == "empty":
        return torch.zeros(shape, dtype=torch.bool)
    if kind == "full":
        return torch.ones(shape, dtype=torch.bool)
    if kind == "random":
        return torch.rand(shape, generator=generator) < 0.5
    if kind == "single_pixel":
        flat = torch.zeros(n * k, math.prod(spatial), dtype=torch.bool)
        where = torch.randint(0, flat.shape[1], (n * k,), generator=generator)
        flat[torch.arange(n * k), where] = True
        return flat.reshape(shape)
    if kind == "blob":
        grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in spatial], indexing="ij")
        masks = torch.zeros(n * k, *spatial, dtype=torch.bool)
        for i in range(n * k):
            distance = torch.zeros(spatial)
            for axis, side in enumerate(spatial):
                centre = side * (0.3 + 0.4 * torch.rand((), generator=generator).item())
                radius = max(side * (0.2 + 0.15 * torch.rand((), generator=generator).item()), 0.5)
                distance = distance + ((grids[axis] - centre) / radius) ** 2
            masks[i] = distance <= 1.0
            if not masks[i].any():  # tiny sides: keep the blob non-empty
                masks[i].view(-1)[0] = True
        return masks.reshape(shape)
    raise ValueError(f"mask must be one of {MASK_KINDS}; received {kind!r}")


def make_logits(kind: str, scale: float, truth: Tensor, generator: torch.Generator) -> Tensor:
    """Float32 logits from a boolean ``(N, C, *S)`` truth (one-hot for multiclass)."""
    sign = truth.float() * 2 - 1
    if kind == "right":
        direction = sign
    elif kind == "wrong":
        direction = -sign
    elif kind == "noise":
        direction = torch.randn(truth.shape, generator=generator)
        if math.isinf(scale):  # inf * N(0, 1): only the sign survives (and never 0 * inf)
            direction = torch.where(direction >= 0, 1.0, -1.0)
    else:
        raise ValueError(f"logits must be one of {LOGIT_KINDS}; received {kind!r}")
    return (direction * scale).float()


def example_seed(*parts: object) -> int:
    """A seed from the parts' text, stable across runs and Python processes (unlike ``hash``)."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF
