"""Loss-weight schedules for hybrid losses: a ``step()`` per epoch, state in ``state_dict``.

A schedule gives two factors per epoch, one for the region terms (Dice, Focal) and one for the
boundary term of :class:`~stableloss.BoundaryAwareLoss`; the loss multiplies its base weights by
them. ``schedule.step()`` (or ``loss.step()``) is called once per epoch, from any training loop,
and a schedule's state travels in the loss's ``state_dict``, so a resumed run continues it.

The state holds the schedule's kind and its full configuration besides the epoch, and loading a
state into a schedule of another kind or configuration raises a ``ValueError`` that names both (as
``torch.nn.Module.load_state_dict`` does for a shape): a checkpoint of ``RebalanceSchedule(start=0.5,
increment=0.1)`` resumed by a default rebalance loss would otherwise continue with other weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, Tuple

from stableloss import _checks


class ConstantSchedule:
    """Constant weights: the factors are ``(1, 1)`` at every epoch.

    Example:
        >>> schedule = ConstantSchedule()
        >>> schedule.step(); schedule.factors()
        (1.0, 1.0)
    """

    def __init__(self) -> None:
        self.epoch = 0

    def config(self) -> Dict[str, float]:
        """The settings that, with the epoch, determine the factors (none for constant weights)."""
        return {}

    def factors(self) -> Tuple[float, float]:
        """``(region factor, boundary factor)`` for the current epoch."""
        return 1.0, 1.0

    def step(self) -> None:
        """Advance one epoch."""
        self.epoch += 1

    def state_dict(self) -> Dict[str, Any]:
        """``{"kind": class name, "config": {...}, "epoch": e}``: everything that determines the factors."""
        return {"kind": type(self).__name__, "config": self.config(), "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue from ``state``; a state of another kind or configuration raises ``ValueError``."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping from {type(self).__name__}.state_dict(); "
                            f"received {type(state).__name__}")
        if "kind" not in state or "config" not in state:
            raise ValueError(
                f"state must hold the schedule's kind and configuration besides the epoch (stableloss >= 0.3 "
                f"saves them); received keys {sorted(state)}, which cannot be checked against this "
                f"{self._describe()}. To resume such a state, set schedule.epoch = state['epoch'] yourself."
            )
        saved = f"{state['kind']}({_format_config(state['config'])})"
        if state["kind"] != type(self).__name__ or dict(state["config"]) != self.config():
            raise ValueError(f"schedule state mismatch: the state was saved by {saved}, but this schedule is "
                             f"{self._describe()}; build the loss with the saved schedule to resume it")
        self.epoch = _checks.check_int("state['epoch']", state.get("epoch"), low=0)

    def _describe(self) -> str:
        return f"{type(self).__name__}({_format_config(self.config())})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epoch={self.epoch})"


class RebalanceSchedule(ConstantSchedule):
    """Kervadec et al.'s rebalancing: weight moves from the region terms to the boundary term.

    .. math::

        w_{region}(e) = \\max(1 - \\delta e, w_{min}), \\qquad w_{boundary}(e) = w_0 + \\delta e

    at epoch ``e`` (0 before the first ``step()``): region 1 and boundary 0.01 at the start, 0.01
    moved from region to boundary each epoch, the region weight floored at 0.1 (the defaults).

    Args:
        start: ``w_0``, the boundary factor at epoch 0, >= 0.
        increment: ``delta``, moved per epoch, >= 0.
        region_floor: ``w_min``, the smallest region factor, in [0, 1].

    Example:
        >>> schedule = RebalanceSchedule()
        >>> for _ in range(3): schedule.step()
        >>> [round(f, 2) for f in schedule.factors()]
        [0.97, 0.04]

    References:
        Kervadec et al. Boundary loss for highly unbalanced segmentation. MIDL 2019 / MedIA 2021.
    """

    def __init__(self, start: float = 0.01, increment: float = 0.01, region_floor: float = 0.1) -> None:
        super().__init__()
        self.start = _checks.check_number("start", start, low=0.0)
        self.increment = _checks.check_number("increment", increment, low=0.0)
        self.region_floor = _checks.check_number("region_floor", region_floor, low=0.0, high=1.0)

    def config(self) -> Dict[str, float]:
        return {"start": self.start, "increment": self.increment, "region_floor": self.region_floor}

    def factors(self) -> Tuple[float, float]:
        moved = self.increment * self.epoch
        return max(1.0 - moved, self.region_floor), self.start + moved

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(start={self.start}, increment={self.increment}, "
                f"region_floor={self.region_floor}, epoch={self.epoch})")


def _format_config(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in config.items())


SCHEDULES = {"constant": ConstantSchedule, "rebalance": RebalanceSchedule}


def make_schedule(schedule: object) -> ConstantSchedule:
    """A schedule from ``None`` / ``"constant"`` / ``"rebalance"`` or a schedule object."""
    if schedule is None:
        return ConstantSchedule()
    if isinstance(schedule, str):
        return SCHEDULES[_checks.check_choice("schedule", schedule, tuple(SCHEDULES))]()
    if all(hasattr(schedule, name) for name in ("factors", "step", "state_dict", "load_state_dict")):
        return schedule  # type: ignore[return-value]
    raise TypeError("schedule must be None, 'constant', 'rebalance' or an object with factors(), step(), "
                    f"state_dict() and load_state_dict(); received {type(schedule).__name__}")
