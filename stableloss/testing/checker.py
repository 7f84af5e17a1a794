"""``check_stability``: run any loss over a grid of precision contexts and input scenarios.

The grid has one **cell** per (scenario, context). A scenario is a kind of logits at a scale
(``"wrong x1e+05"``: confidently wrong logits of magnitude 1e5, which are ``+-inf`` once rounded to
float16); a cell runs it over every size and mask, smallest first, and stops at the first failing
example, which is therefore the smallest one. Contexts and the reference are described in
:mod:`stableloss.testing._evaluate`. Everything is seeded: the same call gives the same report.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from stableloss._checks import check_mode
from stableloss.testing._data import LOGIT_KINDS, MASK_KINDS, Example, example_seed
from stableloss.testing._evaluate import CONTEXTS, DEFAULT_TOLERANCE, LossFn, Outcome, evaluate

Scenario = Tuple[str, float]

SCENARIOS: Tuple[Scenario, ...] = (
    ("noise", 1.0), ("right", 30.0), ("wrong", 30.0),
    ("noise", 65504.0), ("right", 65504.0), ("wrong", 65504.0),
    ("noise", 1e5), ("right", 1e5), ("wrong", 1e5),
)
"""Default rows: ordinary logits, saturated ones, the float16 maximum, and past it (inf in fp16)."""

QUICK_SIZES = ((2, 32, 32), (1, 8, 16, 16))
"""``--quick`` sizes ``(N, *spatial)``: a small 2D batch and a small 3D volume."""

SIZES = QUICK_SIZES + ((8, 256, 256), (1, 64, 64, 64))
"""Default sizes: the quick ones plus a real 2D batch and a real 3D volume."""

LARGE = 100_000
"""Examples with more pixels than this per channel use ``large_masks`` only (to keep runs short)."""


@dataclass
class Cell:
    """The result of one scenario in one context, over all sizes and masks.

    Attributes:
        scenario: ``(logit kind, scale)``.
        context: Context name.
        run: Examples evaluated.
        skipped: Examples not evaluated because the time budget ran out.
        worst_error: Largest relative error seen, or None.
        failure: The first (smallest) failing :class:`Outcome`, or None.
    """

    scenario: Scenario
    context: str
    run: int = 0
    skipped: int = 0
    worst_error: Optional[float] = None
    failure: Optional[Outcome] = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def add(self, outcome: Outcome) -> None:
        self.run += 1
        if outcome.error is not None:
            self.worst_error = max(self.worst_error or 0.0, outcome.error)
        if not outcome.ok and self.failure is None:
            self.failure = outcome

    def text(self) -> str:
        """The cell as the table shows it."""
        if self.failure is not None:
            reason = self.failure.reason
            if reason == "err":
                return f"FAIL err {self.failure.error:.0e}"
            return f"FAIL {reason}"
        if self.run == 0:
            return "skipped"
        err = "" if self.worst_error is None else f" {self.worst_error:.0e}"
        return ("ok" if not self.skipped else f"part {self.run}/{self.run + self.skipped}") + err


def scenario_label(scenario: Scenario) -> str:
    return f"{scenario[0]} x{scenario[1]:g}"


@dataclass
class StabilityReport:
    """All cells of a run. ``str(report)`` is :meth:`table`.

    Attributes:
        title: What was checked (loss, mode, device).
        contexts: Column names.
        scenarios: Rows.
        cells: ``{(scenario, context): Cell}``.
        tolerance: Relative tolerance against the float64 reference.
        elapsed: Seconds the run took (not shown in the table, which is deterministic).
    """

    title: str
    contexts: List[str]
    scenarios: List[Scenario]
    cells: Dict[Tuple[Scenario, str], Cell] = field(default_factory=dict)
    tolerance: Optional[float] = DEFAULT_TOLERANCE
    elapsed: float = 0.0

    @property
    def failures(self) -> List[Cell]:
        return [cell for cell in self.cells.values() if not cell.ok]

    @property
    def ok(self) -> bool:
        """True when no cell failed (cells cut short by the time budget count as holding)."""
        return not self.failures

    @property
    def complete(self) -> bool:
        return all(cell.skipped == 0 for cell in self.cells.values())

    def table(self) -> str:
        """The grid as fixed-width text, followed by the smallest failing example of each failing cell."""
        head = ["scenario \\ context"] + self.contexts
        rows = [[scenario_label(s)] + [self.cells[(s, c)].text() for c in self.contexts] for s in self.scenarios]
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
        tol = "not checked" if self.tolerance is None else f"{self.tolerance:g}"
        out = [self.title,
               "cell: ok <worst relative error vs the float64 reference>, or FAIL: loss or grad non-finite,",
               f"      err above the tolerance ({tol}), or raised an exception", ""]
        out += [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
        failing = self.failures
        if failing:
            out += ["", "Smallest failing example per failing cell:"]
            out += [f"- {scenario_label(c.scenario)} / {c.context}: {c.failure.describe()}" for c in failing]
        total = len(self.cells)
        out += ["", f"{total - len(failing)} of {total} cells hold, {len(failing)} fail"
                + ("" if self.complete else " (time budget reached: some cells are partial)")]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _loss_name(loss: LossFn) -> str:
    """``module.QualName`` of a function, or of a module's class; the repr otherwise."""
    target = type(loss) if isinstance(loss, torch.nn.Module) else loss
    name = getattr(target, "__qualname__", None)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if name and module else repr(loss)[:120]


def _shapes(sizes: Sequence[Sequence[int]], mode: str, channels: Optional[int]) -> List[Tuple[int, ...]]:
    """Full ``(N, C, *S)`` shapes from sizes given as ``(N, *S)`` (or full shapes with ``channels``)."""
    shapes = []
    for size in sizes:
        size = tuple(int(s) for s in size)
        if len(size) < 2 or len(size) > 4:
            raise ValueError(f"sizes must hold (N, *spatial) tuples with 1 to 3 spatial dims; received {size}")
        c = channels
        if c is None:  # multi-class default: 3 classes, 2 above LARGE pixels to keep the run short
            c = 1 if mode == "binary" else (3 if math.prod(size) <= LARGE else 2)
        shapes.append((size[0], c) + size[1:])
    return sorted(shapes, key=math.prod)


def check_stability(
    loss: LossFn,
    *,
    mode: str,
    contexts: Optional[Sequence[str]] = None,
    device: str = "cpu",
    sizes: Optional[Sequence[Sequence[int]]] = None,
    scenarios: Sequence[Scenario] = SCENARIOS,
    masks: Sequence[str] = MASK_KINDS,
    large_masks: Sequence[str] = ("random",),
    channels: Optional[int] = None,
    quick: bool = False,
    tolerance: Optional[float] = DEFAULT_TOLERANCE,
    reference: Optional[LossFn] = None,
    time_budget: Optional[float] = None,
    seed: int = 0,
    title: Optional[str] = None,
) -> StabilityReport:
    """Check that ``loss`` and its gradient stay finite and accurate across precision contexts.

    Args:
        loss: Any callable ``(logits, target) -> tensor`` (an ``nn.Module`` from any library).
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``: which targets to build.
        contexts: Names from :data:`~stableloss.testing._evaluate.CONTEXTS` (default: all five).
        device: ``"cpu"`` or ``"cuda"``; autocast contexts use this device's autocast.
        sizes: ``(N, *spatial)`` tuples (default :data:`SIZES`, or :data:`QUICK_SIZES` with ``quick``).
        scenarios: ``(logit kind, scale)`` rows (default :data:`SCENARIOS`).
        masks: Mask kinds for examples up to :data:`LARGE` pixels per channel.
        large_masks: Mask kinds for larger examples (default: random, half the pixels
            foreground, which gives the largest sums).
        channels: ``C`` (default 1 for binary; otherwise 3, or 2 above :data:`LARGE` pixels).
        quick: Use :data:`QUICK_SIZES` when ``sizes`` is not given (a few seconds).
        tolerance: Largest relative error vs the float64 reference (None: finiteness only).
        reference: A float64 reference ``(logits, target) -> loss`` (a textbook formula); default:
            ``loss`` itself on the same rounded logits in float64 (float32 if float64 raises).
        time_budget: Seconds; once spent, the remaining examples are skipped (largest sizes last).
        seed: Base seed of every example.
        title: First line of the table (default: the loss's name, mode and device).

    Returns:
        A :class:`StabilityReport`.

    Example:
        >>> from stableloss import DiceLoss
        >>> report = check_stability(DiceLoss("binary"), mode="binary", sizes=[(1, 8, 8)])
        >>> report.ok, len(report.cells)
        (True, 45)
    """
    mode = check_mode(mode)
    contexts = list(CONTEXTS) if contexts is None else list(contexts)
    unknown = [c for c in contexts if c not in CONTEXTS]
    if unknown or not contexts:
        raise ValueError(f"contexts must be a non-empty list of {tuple(CONTEXTS)}; received {contexts}")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be 'cpu' when no CUDA device is available; received {device!r}")
    for kind, scale in scenarios:
        if kind not in LOGIT_KINDS or not scale >= 0:
            raise ValueError(f"scenarios must be (kind in {LOGIT_KINDS}, scale >= 0) pairs; received {(kind, scale)}")
    for name, values in (("masks", masks), ("large_masks", large_masks)):
        if not values or any(m not in MASK_KINDS for m in values):
            raise ValueError(f"{name} must be a non-empty list of {MASK_KINDS}; received {list(values)}")
    shapes = _shapes((QUICK_SIZES if quick else SIZES) if sizes is None else sizes, mode, channels)
    scenarios = list(scenarios)
    where = f"device={device}" + (" (cuda autocast)" if torch.device(device).type == "cuda" else "")
    title = title or f"stability of {_loss_name(loss)}, mode={mode!r}"
    report = StabilityReport(f"{title}, {where}", contexts, scenarios, tolerance=tolerance)
    for scenario in scenarios:
        for context in contexts:
            report.cells[(scenario, context)] = Cell(scenario, context)

    start = time.perf_counter()
    for shape in shapes:
        pixels = math.prod(shape[2:]) * shape[0]
        for scenario in scenarios:
            live = [c for c in contexts if report.cells[(scenario, c)].ok]
            for mask in masks if pixels <= LARGE else large_masks:
                if not live:
                    break
                if time_budget is not None and time.perf_counter() - start > time_budget:
                    for context in live:
                        report.cells[(scenario, context)].skipped += 1
                    continue
                kind, scale = scenario
                example = Example(mode, shape, mask, kind, float(scale), example_seed(seed, shape, mask, kind, scale))
                tensors = example.tensors(device)
                references: dict = {}
                for context in live:
                    outcome = evaluate(loss, example, context, device=device, tolerance=tolerance,
                                       reference=reference, tensors=tensors, references=references)
                    report.cells[(scenario, context)].add(outcome)
                live = [c for c in live if report.cells[(scenario, c)].ok]
    report.elapsed = time.perf_counter() - start
    return report


def assert_stable(loss: LossFn, **kwargs) -> StabilityReport:
    """:func:`check_stability` for tests: raise ``AssertionError`` with the table if a cell fails.

    Takes the keyword arguments of :func:`check_stability` (``mode`` is required).

    Example:
        >>> from stableloss import FocalLoss
        >>> assert_stable(FocalLoss("binary"), mode="binary", sizes=[(1, 8, 8)]).ok
        True
    """
    report = check_stability(loss, **kwargs)
    if not report.ok:
        raise AssertionError("loss is not stable under mixed precision:\n" + report.table())
    return report
