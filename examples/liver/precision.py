"""``--precision``: the autocast context and the GradScaler, chosen in one place.

- ``auto``: fp16 autocast with a GradScaler on CUDA (the experiment's AMP); float32 on CPU.
  CPU autocast in bf16 is faster only on processors with native bf16 (AVX512-BF16/AMX) and much
  slower elsewhere, so float32 is the default that behaves the same on every machine.
- ``fp32``: no autocast, no scaler.
- ``bf16``: autocast, no scaler (bfloat16 has float32's exponent range: nothing underflows).
- ``fp16``: autocast with a GradScaler, on CUDA or CPU: the setting that reproduces the
  experiment's fp16 failure.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision on a device. ``str(p)`` is its name: ``fp32``, ``bf16`` or ``fp16``."""

    name: str
    device: torch.device

    @classmethod
    def resolve(cls, requested: str, device: torch.device) -> Precision:
        """``auto`` becomes ``fp16`` on CUDA and ``fp32`` elsewhere; other names are kept."""
        if requested not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; received {requested!r}")
        if requested == "auto":
            requested = "fp16" if device.type == "cuda" else "fp32"
        return cls(requested, torch.device(device))

    def __str__(self) -> str:
        return self.name

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for float32 (no autocast)."""
        return _DTYPES[self.name]

    def autocast(self) -> AbstractContextManager:
        """The forward pass's context: ``torch.autocast`` in :attr:`dtype`, a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled for fp16 only (a disabled one passes every call through)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")
