"""Loss-weight schedules for hybrid losses: a ``step()`` per epoch, state in ``state_dict``.

A schedule gives two factors per epoch, one for the region terms (Dice, Focal) and one for the
boundary term of :class:`~stableloss.BoundaryAwareLoss`; the loss multiplies its base weights by
them. ``schedule.step()`` (or ``loss.step()``) is called once per epoch, from any training loop,
and a schedule's state travels in the loss's ``state_dict``, so a resumed run continues it.
"""

from __future__ import annotations

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

    def factors(self) -> Tuple[float, float]:
        """``(region factor, boundary factor)`` for the current epoch."""
        return 1.0, 1.0

    def step(self) -> None:
        """Advance one epoch."""
        self.epoch += 1

    def state_dict(self) -> Dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epoch = _checks.check_int("state['epoch']", state.get("epoch"), low=0)

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

    def factors(self) -> Tuple[float, float]:
        moved = self.increment * self.epoch
        return max(1.0 - moved, self.region_floor), self.start + moved

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(start={self.start}, increment={self.increment}, "
                f"region_floor={self.region_floor}, epoch={self.epoch})")


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
