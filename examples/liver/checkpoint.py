"""Atomic checkpoints: write to a temporary file in the same folder, then ``os.replace``.

A crash while saving leaves the previous checkpoint intact. A model whose weights are not
finite is never saved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn

from liver.guard import nonfinite_parameters


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: Path, model: nn.Module, **state: Any) -> None:
    """Save ``model``'s weights with ``state`` (optimizer, epoch, config, ...), atomically.

    Raises:
        ValueError: a parameter or buffer is not finite (naming it); nothing is written.
    """
    bad = nonfinite_parameters(model)
    if bad is not None:
        raise ValueError(f"refusing to save {str(path)!r}: parameter {bad!r} is not finite")
    atomic_save({"model": model.state_dict(), **state}, path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint on the CPU; a clear error if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {type(err).__name__}: {err}") from err
