"""Deterministic (logits, target) pairs for the non-Hypothesis tests."""

from __future__ import annotations

import torch

CHANNELS = {"binary": 1, "multiclass": 3, "multilabel": 2}


def make_case(mode: str, *, spatial=(6, 7), batch: int = 3, scale: float = 3.0, seed: int = 0,
              soft: bool = False, dtype=torch.float32, channels=None):
    """Random logits (normal * scale) and a random target of the mode's shape."""
    gen = torch.Generator().manual_seed(seed)
    c = channels or CHANNELS[mode]
    logits = (torch.randn(batch, c, *spatial, generator=gen, dtype=torch.float64) * scale).to(dtype)
    if mode == "multiclass":
        target = torch.randint(0, c, (batch, *spatial), generator=gen)
    elif soft:
        target = torch.rand(batch, c, *spatial, generator=gen)
    else:
        target = (torch.rand(batch, c, *spatial, generator=gen) > 0.5).float()
    return logits, target
