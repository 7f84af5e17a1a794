"""The training state and its checkpoint: :func:`save_checkpoint` and :func:`load_checkpoint` own the schema.

A checkpoint is one ``torch.save`` dict:

- ``format``: :data:`FORMAT`; ``config``: the run's settings (``predict_liver.py`` rebuilds the
  network and its preprocessing from them);
- one ``state_dict()`` per stateful part of :class:`TrainState` (:data:`PARTS`): ``model`` (the
  bare network, never the DDP wrapper), ``optimizer``, ``scheduler``, ``scaler``, ``criterion``
  (whatever the loss module keeps in its ``state_dict``: buffers, or ``get_extra_state`` for
  e.g. the position of a loss-weight schedule) and ``guard`` (its counters and events);
- ``epoch``, ``step``, ``best``, ``history`` and ``rng`` (PyTorch's CPU generator state, and
  the current CUDA device's when there is one).

A new stateful part of training (an EMA model, a curriculum) is one more field of
:class:`TrainState` and one more name in :data:`PARTS`; nothing else changes. Checkpoints are
written atomically (a crash keeps the previous one) and never with non-finite weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from liver.atomic import atomic_write
from liver.guard import NonFiniteGuard, nonfinite_parameters
from stableloss import CombinedLoss

FORMAT = 3  # 2: history rows with HD95, ASSD and the best-epoch flag; the loss recipes of issue 8. 3: loss state
# with the schedule's configuration and the base weights (stableloss 0.3)
PARTS = ("model", "optimizer", "scheduler", "scaler", "criterion", "guard")


@dataclass
class TrainState:
    """Everything a run restores from a checkpoint.

    ``model`` is what training calls: the network, or its DistributedDataParallel wrapper.
    ``epoch`` is the last epoch finished, ``step`` the number of batches trained on (skipped
    steps included: they advance the schedule too).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: CombinedLoss
    guard: NonFiniteGuard
    epoch: int = 0
    step: int = 0
    best: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def network(self) -> nn.Module:
        """The bare network (unwrapped from DistributedDataParallel)."""
        model = self.model
        return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

    def part(self, name: str) -> Any:
        """The object whose ``state_dict`` is saved under ``name`` (one of :data:`PARTS`)."""
        return self.network if name == "model" else getattr(self, name)


def save_checkpoint(path: Path, state: TrainState, config: dict[str, Any]) -> None:
    """Write ``state`` and ``config`` to ``path``, atomically.

    Raises:
        ValueError: a parameter or buffer is not finite (naming it); nothing is written.
    """
    bad = nonfinite_parameters(state.network)
    if bad is not None:
        raise ValueError(f"refusing to save {str(path)!r}: parameter {bad!r} is not finite")
    ckpt: dict[str, Any] = {"format": FORMAT, "config": config, "epoch": state.epoch, "step": state.step,
                            "best": state.best, "history": state.history, "rng": _rng_state()}
    ckpt.update({name: state.part(name).state_dict() for name in PARTS})
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_checkpoint(path: Path, state: TrainState) -> None:
    """Restore every part of ``state``, its counters and the random number generators from ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable, or not a checkpoint of this format (naming what is missing).
    """
    ckpt = read_checkpoint(path)
    missing = [name for name in (*PARTS, "epoch", "step", "best", "history", "rng") if name not in ckpt]
    if missing or ckpt.get("format") != FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} cannot resume this run: format {ckpt.get('format')!r} "
                         f"(expected {FORMAT}), missing {missing}")
    for name in PARTS:
        state.part(name).load_state_dict(ckpt[name])
    state.epoch, state.step, state.best, state.history = ckpt["epoch"], ckpt["step"], ckpt["best"], ckpt["history"]
    _set_rng_state(ckpt["rng"])


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict, loaded on the CPU; a clear error if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {type(err).__name__}: {err}") from err


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
