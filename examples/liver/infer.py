"""Whole-volume inference with one model or an ensemble (probabilities averaged)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from liver.data import stack_25d
from liver.precision import Precision


@torch.no_grad()
def predict_volume(models: Sequence[nn.Module], volume: np.ndarray, *, multiclass: bool, device: torch.device,
                   precision: str = "fp32", batch_size: int = 16) -> np.ndarray:
    """Probabilities for every slice of a preprocessed ``(Z, H, W)`` volume, averaged over models.

    Args:
        precision: A ``--precision`` name (:mod:`liver.precision`), resolved for ``device``.

    Returns:
        float32 ``(C, Z, H, W)``: softmax probabilities for multiclass, else ``(1, Z, H, W)``
        sigmoid probabilities.
    """
    if not models:
        raise ValueError("models must hold at least one model; received an empty sequence")
    autocast = Precision.resolve(precision, device).autocast
    out: np.ndarray | None = None
    for model in models:
        model.eval()
        chunks = []
        for start in range(0, volume.shape[0], batch_size):
            x = np.stack([stack_25d(volume, z) for z in range(start, min(start + batch_size, volume.shape[0]))])
            with autocast():
                logits = model(torch.from_numpy(x.astype(np.float32)).to(device)).float()
            probs = logits.softmax(1) if multiclass else logits.sigmoid()
            chunks.append(probs.cpu())
        probs = torch.cat(chunks).transpose(0, 1).numpy()
        out = probs if out is None else out + probs
    assert out is not None  # models is not empty
    return (out / len(models)).astype(np.float32, copy=False)


def to_labels(probs: np.ndarray, multiclass: bool) -> np.ndarray:
    """Hard labels ``(Z, H, W)`` uint8: argmax for multiclass, probability > 0.5 otherwise."""
    return (probs.argmax(0) if multiclass else probs[0] > 0.5).astype(np.uint8)
