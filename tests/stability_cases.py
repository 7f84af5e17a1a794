"""The loss configurations of the stability tests, taken from the registry (``tests/registry.py``).

Each :class:`Case` is one registry ``(LossInfo, variant)`` pair: ``build(mode)`` makes the loss
module as users build it, ``input`` says what it takes (``"logits"``, or ``"probabilities"`` for
MCC: pass it to the checker), and ``reference_for(mode)`` is its float64 textbook formula
(``tests/reference.py``, on the same input) as a ``(x, target) -> loss`` callable for
:func:`stableloss.testing.check_stability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from tests.registry import LossInfo, cases


@dataclass(frozen=True)
class Case:
    name: str
    info: LossInfo
    options: Dict

    def build(self, mode: str):
        return self.info.native(mode, **self.options)

    @property
    def input(self) -> str:
        return self.info.input

    def reference_for(self, mode: str):
        """The float64 textbook formula, evaluated on the CPU: the references build their constants
        there and the distance maps come from SciPy (the checker compares values only)."""
        return lambda logits, target: self.info.reference(logits.cpu(), target.cpu(), mode=mode, **self.options)

    @property
    def reference_floor(self):
        return self.info.reference_floor(self.options)


_pairs, _ids = cases()
ALL = [Case(name, info, options) for (info, options), name in zip(_pairs, _ids, strict=False)]
"""Every registry loss and variant."""

CORE_NAMES = ("dice-0", "tversky-0", "tversky-1", "tversky-2", "jaccard-0", "focal-0", "focal-1", "logcosh-0", "seed-0",
              "boundary-0", "hausdorff-0", "dou-0", "hybrid-0", "lovasz-0", "softbce-0", "mcc-0")
CORE = [case for case in ALL if case.name in CORE_NAMES]
"""One case per loss that takes binary targets, plus focal-Tversky gamma 0.75 and 2 and focal gamma 0.5 (the
real-size tests)."""


def describe(case: Case) -> str:
    """``TverskyLoss(alpha=0.7, beta=0.3, gamma=0.75)``: the class and options of a case."""
    options = ", ".join(f"{k}={v!r}" for k, v in case.options.items())
    return f"{type(case.build(case.info.modes[0])).__name__}({options})"
