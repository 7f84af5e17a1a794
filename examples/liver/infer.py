"""Precision settings and whole-volume inference (one model or an ensemble).

``--precision``:

- ``auto``: fp16 autocast with a GradScaler on CUDA (the experiment's AMP); float32 on CPU.
  CPU autocast in bf16 is faster only on processors with native bf16 (AVX512-BF16/AMX) and much
  slower elsewhere, so float32 is the default that behaves the same on every machine.
- ``fp32``, ``bf16`` (autocast, no scaler), ``fp16`` (autocast with a GradScaler, on CUDA or
  CPU: the setting that reproduces the experiment's fp16 failure).
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
from torch import nn

from liver.data import stack_25d

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``fp16`` on CUDA, ``fp32`` on CPU; other values pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; received {precision!r}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


def autocast(precision: str, device: torch.device):
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled for fp16 only."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@torch.no_grad()
def predict_volume(models: Sequence[nn.Module], volume: np.ndarray, *, multiclass: bool, device: torch.device,
                   precision: str = "fp32", batch_size: int = 16) -> np.ndarray:
    """Probabilities for every slice of a preprocessed ``(Z, H, W)`` volume, averaged over models.

    Returns:
        float32 ``(C, Z, H, W)``: softmax probabilities for multiclass, else ``(1, Z, H, W)``
        sigmoid probabilities.
    """
    out = None
    for model in models:
        model.eval()
        chunks = []
        for start in range(0, volume.shape[0], batch_size):
            x = np.stack([stack_25d(volume, z) for z in range(start, min(start + batch_size, volume.shape[0]))])
            with autocast(precision, device):
                logits = model(torch.from_numpy(x.astype(np.float32)).to(device)).float()
            probs = logits.softmax(1) if multiclass else logits.sigmoid()
            chunks.append(probs.cpu())
        probs = torch.cat(chunks).transpose(0, 1).numpy()
        out = probs if out is None else out + probs
    return out / len(models)


def to_labels(probs: np.ndarray, multiclass: bool) -> np.ndarray:
    """Hard labels ``(Z, H, W)`` uint8: argmax for multiclass, probability > 0.5 otherwise."""
    return (probs.argmax(0) if multiclass else probs[0] > 0.5).astype(np.uint8)
