"""A guard against non-finite losses and gradients during training.

Each step the trainer asks the guard twice: after the forward pass, :meth:`NonFiniteGuard.check_loss`
with the loss *components* (e.g. ``{"dice": .., "focal": ..}``), and after clipping,
:meth:`NonFiniteGuard.check_grad` with the gradient norm. A non-finite value skips the step and is
reported with the term and the batch it came from; after ``patience`` skipped steps in a row the
guard raises :class:`NonFiniteError` with the diagnosis. Gradient overflows that a GradScaler
handles itself (fp16 loss scaling) are counted separately and do not stop training.

Disabled (``--no-guard``), the guard skips nothing and stops nothing, as the experiment's loop did,
but still records what went non-finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

MAX_EVENTS = 50  # events kept for the summary (the counters count all of them)


class NonFiniteError(RuntimeError):
    """Training stopped: too many consecutive non-finite steps, or non-finite weights."""


def _describe(value: Tensor) -> str:
    v = float(value.detach().float())
    return "nan" if math.isnan(v) else ("+inf" if v > 0 else "-inf")


def _finite(value: Tensor) -> bool:
    return bool(torch.isfinite(value).all())


class NonFiniteGuard:
    """Decides whether a training step goes ahead, and explains the steps it skips.

    Args:
        patience: Consecutive non-finite steps tolerated before :class:`NonFiniteError`.
        enabled: False (``--no-guard``): never skip or stop, only record.
        scaler_active: A GradScaler with loss scaling is in use (fp16): it skips steps whose
            gradients overflowed by itself, and those are counted, not fatal.
        all_ranks: Under DDP, ``flag -> True iff flag on every rank``, so that every rank skips
            a step together (default: a single process).
        log: Called with each message; at most ``max_messages`` are sent.
    """

    def __init__(self, patience: int = 20, *, enabled: bool = True, scaler_active: bool = False,
                 all_ranks: Callable[[bool], bool] = bool, log: Callable[[str], Any] = print,
                 max_messages: int = 5) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1; received {patience!r}")
        self.patience, self.enabled, self.scaler_active = patience, enabled, scaler_active
        self.all_ranks, self.log, self.max_messages = all_ranks, log, max_messages
        self.skipped = 0
        self.scaler_skipped = 0
        self.in_a_row = 0
        self.events: list[str] = []
        self.streak_start = ""

    def check_loss(self, components: Mapping[str, Tensor], where: str) -> bool:
        """True: go on with the backward pass. False: the step is skipped (a term is not finite
        here or on another rank); the skip is recorded, naming the terms and ``where``."""
        bad = {name: _describe(v) for name, v in components.items() if not _finite(v)}
        if not self.enabled:
            if bad:
                self._record("unguarded: non-finite loss at " + where + ": " + ", ".join(
                    f"{k}={float(v.detach()):.4g}" for k, v in components.items()))
            return True
        if self.all_ranks(not bad):
            return True
        if bad:
            self.skip(", ".join(f"loss term {name!r} = {v}" for name, v in bad.items()) + f" at {where}")
        else:
            self.skip(f"loss non-finite on another rank at {where}")
        return False

    def check_grad(self, grad_norm: Tensor, where: str) -> bool:
        """True: call ``scaler.step`` (an active GradScaler still skips a step whose gradients
        overflowed, and lowers its scale). False: the step is skipped and recorded."""
        if _finite(grad_norm):
            self.in_a_row = 0
            return True
        if self.scaler_active:
            self.scaler_skipped += 1
            return True
        if not self.enabled:
            return True
        self.skip(f"gradient norm = {_describe(grad_norm)} at {where} (loss was finite)")
        return False

    def skip(self, message: str) -> None:
        """Record a skipped step; raise :class:`NonFiniteError` after ``patience`` in a row."""
        self.skipped += 1
        self.in_a_row += 1
        self._record(message)
        if self.in_a_row == 1:
            self.streak_start = message
        if self.skipped <= self.max_messages:
            self.log(f"non-finite: {message}; step skipped")
        if self.in_a_row >= self.patience:
            raise NonFiniteError(
                f"{self.in_a_row} consecutive non-finite steps ({self.skipped} skipped in all); "
                f"first: {self.streak_start}; last: {message}"
            )

    def _record(self, message: str) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(message)

    def state_dict(self) -> dict[str, Any]:
        """Counters and events, for checkpoints."""
        return {"skipped": self.skipped, "scaler_skipped": self.scaler_skipped, "in_a_row": self.in_a_row,
                "events": list(self.events), "streak_start": self.streak_start}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.skipped, self.scaler_skipped = int(state["skipped"]), int(state["scaler_skipped"])
        self.in_a_row, self.streak_start = int(state["in_a_row"]), str(state["streak_start"])
        self.events = list(state["events"])


def nonfinite_parameters(model: nn.Module) -> str | None:
    """Name of the first parameter or buffer holding NaN/inf, or None if all are finite."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not _finite(t):
            return name
    return None
