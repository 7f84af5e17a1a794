"""Tools to test any segmentation loss for mixed-precision stability.

- :func:`check_stability` runs a loss (any callable ``(logits, target) -> tensor``, including an
  ``nn.Module`` from another library) over a grid of precision contexts and input scenarios and
  returns a :class:`StabilityReport`; :func:`assert_stable` raises ``AssertionError`` with the report.
- :class:`Example` describes one input (mode, shape, mask, logits, scale, seed) and builds it;
  :func:`evaluate` runs a loss on one example in one context.
- :mod:`stableloss.testing.strategies` holds Hypothesis strategies for the same inputs. It needs
  Hypothesis (``pip install "stableloss[test]"``) and is not imported here, so this package works
  with torch alone.
- The command line ``python -m stableloss.check MODULE:ATTR --mode binary`` prints the report.
"""

from stableloss.testing._data import FP16_MAX, LOGIT_KINDS, MASK_KINDS, Example
from stableloss.testing._evaluate import (
    CONTEXTS,
    DEFAULT_TOLERANCE,
    REFERENCE_FLOOR,
    Outcome,
    evaluate,
)
from stableloss.testing.checker import (
    QUICK_SIZES,
    SCENARIOS,
    SIZES,
    Cell,
    StabilityReport,
    assert_stable,
    check_stability,
)

__all__ = [
    "CONTEXTS",
    "DEFAULT_TOLERANCE",
    "FP16_MAX",
    "LOGIT_KINDS",
    "MASK_KINDS",
    "QUICK_SIZES",
    "REFERENCE_FLOOR",
    "SCENARIOS",
    "SIZES",
    "Cell",
    "Example",
    "Outcome",
    "StabilityReport",
    "assert_stable",
    "check_stability",
    "evaluate",
]
