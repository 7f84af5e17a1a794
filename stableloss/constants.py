"""The mode names, as ``segmentation_models_pytorch.losses`` exports them.

``mode=`` takes one of three strings; these constants spell them, so code written against
``smp.losses.BINARY_MODE`` keeps working after ``import stableloss as smp_losses``.

- :data:`BINARY_MODE`: one foreground class. Prediction ``(N, 1, *S)``, target ``(N, 1, *S)`` or
  ``(N, *S)`` of 0/1 (soft labels allowed).
- :data:`MULTICLASS_MODE`: ``C`` mutually exclusive classes (a softmax over them). Prediction
  ``(N, C, *S)``, target ``(N, *S)`` of class indices.
- :data:`MULTILABEL_MODE`: ``C`` independent classes (a sigmoid each). Prediction and target
  ``(N, C, *S)``.
"""

from __future__ import annotations

from typing import Final

BINARY_MODE: Final = "binary"
"""One foreground class, a sigmoid channel: target ``(N, 1, *S)`` or ``(N, *S)`` of 0/1."""

MULTICLASS_MODE: Final = "multiclass"
"""Mutually exclusive classes, a softmax over ``C`` channels: target ``(N, *S)`` of class indices."""

MULTILABEL_MODE: Final = "multilabel"
"""Independent classes, a sigmoid per channel: target ``(N, C, *S)`` of 0/1."""
