"""A guard against non-finite losses and gradients during training.

Each step the trainer hands the guard the loss *components* (e.g. ``{"dice": .., "focal": ..}``)
before the backward pass and the gradient norm after it. A non-finite value skips the step and is
reported with the term and the batch it came from; after ``patience`` skipped steps in a row the
guard raises :class:`NonFiniteError` with the diagnosis. Gradient overflows that a GradScaler
handles itself (fp16 loss scaling) are counted separately and do not stop training.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional

import torch
from torch import Tensor, nn


class NonFiniteError(RuntimeError):
    """Training stopped: too many consecutive non-finite steps."""


def _describe(value: Tensor) -> str:
    v = float(value.detach().float())
    return "nan" if math.isnan(v) else ("+inf" if v > 0 else "-inf")


class NonFiniteGuard:
    """Counts and explains skipped steps.

    Args:
        patience: Consecutive non-finite steps tolerated before :class:`NonFiniteError`.
        log: Called with each message (default ``print``); at most ``max_messages`` are sent.
    """

    def __init__(self, patience: int = 20, log=print, max_messages: int = 5) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1; received {patience!r}")
        self.patience, self.log, self.max_messages = patience, log, max_messages
        self.skipped = 0
        self.scaler_skipped = 0
        self.in_a_row = 0
        self.events: List[str] = []
        self._streak_start = ""

    def skip(self, message: str) -> None:
        """Record a skipped step; raise :class:`NonFiniteError` after ``patience`` in a row."""
        self.skipped += 1
        self.in_a_row += 1
        self.events.append(message)
        if self.in_a_row == 1:
            self._streak_start = message
        if len(self.events) <= self.max_messages:
            self.log(f"non-finite: {message}; step skipped")
        if self.in_a_row >= self.patience:
            raise NonFiniteError(
                f"{self.in_a_row} consecutive non-finite steps ({self.skipped} skipped in all); "
                f"first: {self._streak_start}; last: {message}"
            )

    def check_loss(self, components: Mapping[str, Tensor], *, epoch: int, batch: int) -> bool:
        """True if every component is finite; else record which ones are not and return False."""
        bad = {name: _describe(v) for name, v in components.items() if not bool(torch.isfinite(v).all())}
        if not bad:
            return True
        terms = ", ".join(f"loss term {name!r} = {v}" for name, v in bad.items())
        self.skip(f"{terms} at epoch {epoch}, batch {batch}")
        return False

    def check_grad(self, grad_norm: Tensor, *, epoch: int, batch: int, scaler_active: bool = False) -> bool:
        """True if the gradient norm is finite. With an active GradScaler an overflow is the
        scaler's business (it skips the step and lowers the scale): counted, not fatal."""
        if bool(torch.isfinite(grad_norm)):
            self.in_a_row = 0
            return True
        if scaler_active:
            self.scaler_skipped += 1
            return False
        self.skip(f"gradient norm = {_describe(grad_norm)} at epoch {epoch}, batch {batch} (loss was finite)")
        return False

    def state(self) -> Dict[str, object]:
        """Counters for logs and checkpoints."""
        return {"skipped": self.skipped, "scaler_skipped": self.scaler_skipped, "events": self.events[:20]}


def nonfinite_parameters(model: nn.Module) -> Optional[str]:
    """Name of the first parameter or buffer holding NaN/inf, or None if all are finite."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None
