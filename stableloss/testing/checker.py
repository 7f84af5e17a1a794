"""``check_stability``: run any loss over a grid of precision contexts and input scenarios.

The grid has one **cell** per (scenario, context). A scenario is a kind of logits at a scale
(``"wrong x1e+05"``: confidently wrong logits of magnitude 1e5, which are ``+-inf`` once rounded to
float16); a cell runs it over every size and mask, smallest first, and stops at the first failing
example, which is therefore the smallest one. Contexts and the reference are described in
:mod:`stableloss.testing._evaluate`. Everything is seeded: the same call gives the same report.

Nothing counts as holding unless it ran: a cell holds when every one of its examples ran and passed.
A cell the time budget cut short is *incomplete* (shown ``part k/n`` or ``skipped``), and a report
with an incomplete cell is not :attr:`~StabilityReport.ok`, even when nothing failed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from stableloss._checks import (
    check_choices,
    check_int,
    check_mode,
    check_optional_number,
)
from stableloss.testing._conventions import DEFAULT_LAYOUTS, check_convention
from stableloss.testing._data import LOGIT_KINDS, MASK_KINDS, Example, example_seed
from stableloss.testing._evaluate import (
    CONTEXTS,
    DEFAULT_TOLERANCE,
    REFERENCE_FLOOR,
    LossFn,
    Outcome,
    evaluate,
)

Scenario = tuple[str, float]

SCENARIOS: tuple[Scenario, ...] = (
    ("noise", 1.0), ("right", 30.0), ("wrong", 30.0),
    ("noise", 65504.0), ("right", 65504.0), ("wrong", 65504.0),
    ("noise", 1e5), ("right", 1e5), ("wrong", 1e5),
)
"""Default rows ``(logit kind, scale)``, for ordinary logits, saturated ones, the float16 maximum and past it (inf in fp16)."""

QUICK_SIZES = ((2, 32, 32), (1, 8, 16, 16))
"""``--quick`` sizes ``(N, *spatial)``: a small 2D batch and a small 3D volume."""

SIZES = QUICK_SIZES + ((8, 256, 256), (1, 64, 64, 64))
"""Default sizes, the quick ones plus a real 2D batch and a real 3D volume."""

LARGE = 100_000
"""Examples with more pixels than this per channel use ``large_masks`` only (to keep runs short)."""

DEFAULT_CHANNELS = 3
"""``C`` of the multiclass and multilabel grid at every size (binary: 1)."""


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
        reference_notes: ``{note: examples}`` for the examples whose reference was weaker than
            float64 (see :attr:`Outcome.reference_note`).
    """

    scenario: Scenario
    context: str
    run: int = 0
    skipped: int = 0
    worst_error: float | None = None
    failure: Outcome | None = None
    reference_notes: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """An example failed."""
        return self.failure is not None

    @property
    def complete(self) -> bool:
        """Every example of the cell ran (or it stopped at a failure); none was skipped."""
        return self.skipped == 0 and (self.run > 0 or self.failed)

    @property
    def ok(self) -> bool:
        """True when the cell holds, that is every example ran and none failed."""
        return not self.failed and self.complete

    def add(self, outcome: Outcome) -> None:
        self.run += 1
        if outcome.error is not None:
            self.worst_error = max(self.worst_error or 0.0, outcome.error)
        if outcome.ok and outcome.reference_note is not None:
            self.reference_notes[outcome.reference_note] = self.reference_notes.get(outcome.reference_note, 0) + 1
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
        time_budget: The time budget in seconds, or None.
        elapsed: Seconds the run took (not shown in the table, which is deterministic).
    """

    title: str
    contexts: list[str]
    scenarios: list[Scenario]
    cells: dict[tuple[Scenario, str], Cell] = field(default_factory=dict)
    tolerance: float | None = DEFAULT_TOLERANCE
    time_budget: float | None = None
    elapsed: float = 0.0

    @property
    def failures(self) -> list[Cell]:
        """Cells where an example failed."""
        return [cell for cell in self.cells.values() if cell.failed]

    @property
    def incomplete(self) -> list[Cell]:
        """Cells that did not fail but did not run every example (the time budget ran out)."""
        return [cell for cell in self.cells.values() if not cell.failed and not cell.complete]

    @property
    def ok(self) -> bool:
        """True when every cell holds, that is every example ran and none failed."""
        return bool(self.cells) and all(cell.ok for cell in self.cells.values())

    @property
    def complete(self) -> bool:
        """True when no example was skipped."""
        return all(cell.complete for cell in self.cells.values())

    def table(self) -> str:
        """The grid as fixed-width text, then the smallest failing example of each failing cell."""
        head = ["scenario \\ context"] + self.contexts
        rows = [[scenario_label(s)] + [self.cells[(s, c)].text() for c in self.contexts] for s in self.scenarios]
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        def line(r: list[str]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        tol = "not checked" if self.tolerance is None else f"{self.tolerance:g}"
        incomplete = self.incomplete
        out = [self.title,
               "cell: ok <worst relative error vs the float64 reference>, or FAIL and why: loss or grad non-finite,",
               "      nograd (no gradient reached the logits), ref (no finite reference to check against),",
               f"      err above the tolerance ({tol}), or raised an exception"]
        if incomplete:
            out += ["      part k/n: only k of n examples ran, skipped: none ran (time budget); neither holds"]
        out += ["", line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
        failing = self.failures
        if failing:
            out += ["", "Smallest failing example per failing cell:"]
            out += [f"- {scenario_label(c.scenario)} / {c.context}: {c.failure.describe()}"
                    for c in failing if c.failure is not None]
        out += self._reference_notes()
        total = len(self.cells)
        summary = f"{total - len(failing) - len(incomplete)} of {total} cells hold, {len(failing)} fail"
        if incomplete:
            budget = "" if self.time_budget is None else f" of {self.time_budget:g} s"
            summary += f", {len(incomplete)} incomplete (the time budget{budget} ran out before all their examples ran)"
        return "\n".join(out + ["", summary])

    def _reference_notes(self, shown: int = 5) -> list[str]:
        """Lines on passing runs whose reference was weaker than float64, most frequent first."""
        counts: dict[str, int] = {}
        for cell in self.cells.values():
            for note, n in cell.reference_notes.items():
                counts[note] = counts.get(note, 0) + n
        if not counts:
            return []
        notes = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        out = ["", "Reference notes (passing runs whose reference was not a finite float64 value):"]
        out += [f"- {note} ({n} run{'s' if n > 1 else ''})" for note, n in notes[:shown]]
        if len(notes) > shown:
            out.append(f"- ... and {len(notes) - shown} other notes")
        return out

    def __str__(self) -> str:
        return self.table()


def _loss_name(loss: LossFn) -> str:
    """``module.QualName`` of a function, or of a module's class; the repr otherwise."""
    target = type(loss) if isinstance(loss, torch.nn.Module) else loss
    name = getattr(target, "__qualname__", None)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if name and module else repr(loss)[:120]


def _channels(channels: object, mode: str) -> int:
    """``C`` of every example: 1 for binary, ``DEFAULT_CHANNELS`` otherwise, unless given."""
    if channels is None:
        return 1 if mode == "binary" else DEFAULT_CHANNELS
    channels = check_int("channels", channels, low=1)
    if mode == "binary" and channels != 1:
        raise ValueError(f"channels must be 1 with mode='binary' (one sigmoid channel); received {channels}")
    if mode == "multiclass" and channels < 2:
        raise ValueError(f"channels must be >= 2 with mode='multiclass' (background and a class); received {channels}")
    return channels


def _shapes(sizes: object, channels: int) -> list[tuple[int, ...]]:
    """Full ``(N, C, *S)`` shapes from sizes given as ``(N, *S)``, smallest first."""
    expected = "a non-empty sequence of (N, *spatial) tuples of ints >= 1 with 1 to 3 spatial dims"
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise ValueError(f"sizes must be {expected}; received {sizes!r}")
    shapes = []
    for size in sizes:
        if (not isinstance(size, Sequence) or not 2 <= len(size) <= 4
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)):
            raise ValueError(f"sizes must be {expected}; received {size!r} in {list(sizes)!r}")
        shapes.append((size[0], channels) + tuple(size[1:]))
    return sorted(shapes, key=math.prod)


def _scenarios(scenarios: object) -> list[Scenario]:
    expected = f"a non-empty sequence of (kind in {LOGIT_KINDS}, scale >= 0) pairs"
    if isinstance(scenarios, (str, bytes)) or not isinstance(scenarios, Sequence) or not scenarios:
        raise ValueError(f"scenarios must be {expected}; received {scenarios!r}")
    for item in scenarios:
        kind, scale = item if isinstance(item, Sequence) and len(item) == 2 else (None, None)
        if kind not in LOGIT_KINDS or isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 0:
            raise ValueError(f"scenarios must be {expected}; received {item!r}")
    return [(kind, float(scale)) for kind, scale in scenarios]


def check_stability(
    loss: LossFn,
    *,
    mode: str,
    contexts: Sequence[str] | None = None,
    device: str = "cpu",
    sizes: Sequence[Sequence[int]] | None = None,
    scenarios: Sequence[Scenario] = SCENARIOS,
    masks: Sequence[str] = MASK_KINDS,
    large_masks: Sequence[str] = ("random",),
    channels: int | None = None,
    quick: bool = False,
    tolerance: float | None = DEFAULT_TOLERANCE,
    reference: LossFn | None = None,
    reference_floor: float | Callable[[Example], float] = REFERENCE_FLOOR,
    time_budget: float | None = None,
    seed: int = 0,
    title: str | None = None,
    input: str = "logits",
    target_layout: str | None = None,
) -> StabilityReport:
    """Check that ``loss`` and its gradient stay finite and accurate across precision contexts.

    Args:
        loss: Any callable ``(logits, target) -> tensor`` (an ``nn.Module`` from any library).
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``: which targets to build.
        contexts: Names from :data:`~stableloss.testing.CONTEXTS` (default: all five).
        device: ``"cpu"`` or ``"cuda"``; autocast contexts use this device's autocast.
        sizes: ``(N, *spatial)`` tuples (default :data:`SIZES`, or :data:`QUICK_SIZES` with ``quick``).
        scenarios: ``(logit kind, scale)`` rows (default :data:`SCENARIOS`).
        masks: Mask kinds for examples up to ``LARGE`` pixels per channel.
        large_masks: Mask kinds for larger examples (default: random, half the pixels
            foreground, which gives the largest sums).
        channels: ``C`` of every example (default 1 for binary, ``DEFAULT_CHANNELS`` = 3
            otherwise, at every size). Set it to the class count that per-class options
            (``alpha``, ``class_weights``) of the loss expect.
        quick: Use :data:`QUICK_SIZES` when ``sizes`` is not given (a few seconds).
        tolerance: Largest relative error vs the float64 reference, >= 0 (None: finiteness only).
        reference: A float64 reference ``(logits, target) -> loss`` (a textbook formula); default:
            ``loss`` itself on the same rounded logits in float64 (float32 if float64 raises).
            With a tolerance, an example where the loss is finite but the reference raises or is
            not finite fails its cell (``FAIL ref``): the accuracy is never left unchecked.
        reference_floor: Below this magnitude the error is judged absolutely, or a function of the
            example giving it (see :func:`~stableloss.testing.evaluate`); default 1e-4.
        time_budget: Seconds (> 0), or None; once spent, the remaining examples are skipped
            (largest sizes last) and their cells are incomplete: the report is then not ``ok``.
        seed: Base seed of every example.
        title: First line of the table (default: the loss's name, mode and device).
        input: ``"logits"`` (default) or ``"probabilities"``: the logits' float32 sigmoid (softmax in
            multiclass mode), rounded to each context's dtype; the gradient is checked against them.
        target_layout: ``None`` (the mode's own), ``"indices"`` ``(N, *S)``, ``"indices-channel"``
            ``(N, 1, *S)`` (MONAI's ``to_onehot_y``) or ``"one-hot"`` (float ``(N, C, *S)``). A given
            ``reference`` takes the same input and target conventions as ``loss``.

    Returns:
        A :class:`StabilityReport`; ``report.ok`` is True only when every example of every cell
        ran and held.

    Raises:
        ValueError, TypeError: For an argument it cannot honour (naming it).

    Example:
        >>> from stableloss import DiceLoss
        >>> report = check_stability(DiceLoss("binary"), mode="binary", sizes=[(1, 8, 8)])
        >>> report.ok, len(report.cells)
        (True, 45)
    """
    mode = check_mode(mode)
    input, target_layout = check_convention(mode, input, target_layout)
    contexts = list(dict.fromkeys(check_choices("contexts", tuple(CONTEXTS) if contexts is None else contexts, tuple(CONTEXTS))))
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be 'cpu' when no CUDA device is available; received {device!r}")
    scenarios = list(dict.fromkeys(_scenarios(scenarios)))
    masks = check_choices("masks", masks, MASK_KINDS)
    large_masks = check_choices("large_masks", large_masks, MASK_KINDS)
    channels = _channels(channels, mode)
    shapes = _shapes((QUICK_SIZES if quick else SIZES) if sizes is None else sizes, channels)
    tolerance = check_optional_number("tolerance", tolerance, low=0.0)
    if time_budget is not None and not (check_optional_number("time_budget", time_budget) or 0.0) > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, or None; received {time_budget!r}")
    where = f"channels={channels}, " if mode != "binary" else ""
    where += f"device={device}" + (" (cuda autocast)" if torch.device(device).type == "cuda" else "")
    if input != "logits":
        where += f", input={input}"
    if target_layout != DEFAULT_LAYOUTS[mode]:
        where += f", target_layout={target_layout}"
    title = title or f"stability of {_loss_name(loss)}, mode={mode!r}"
    report = StabilityReport(f"{title}, {where}", contexts, scenarios, tolerance=tolerance, time_budget=time_budget)
    for scenario in scenarios:
        for context in contexts:
            report.cells[(scenario, context)] = Cell(scenario, context)

    start = time.perf_counter()
    for shape in shapes:
        pixels = math.prod(shape[2:]) * shape[0]
        for scenario in scenarios:
            live = [c for c in contexts if not report.cells[(scenario, c)].failed]
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
                                       reference=reference, tensors=tensors, references=references,
                                       reference_floor=reference_floor, input=input, target_layout=target_layout)
                    report.cells[(scenario, context)].add(outcome)
                live = [c for c in live if not report.cells[(scenario, c)].failed]
    report.elapsed = time.perf_counter() - start
    return report


def assert_stable(loss: LossFn, **kwargs) -> StabilityReport:
    """:func:`check_stability` for tests: raise ``AssertionError`` with the table unless every cell holds.

    A failing cell raises, and so does an incomplete one (the time budget ran out): what did not run
    was not checked.

    Takes the keyword arguments of :func:`check_stability` (``mode`` is required).

    Example:
        >>> from stableloss import FocalLoss
        >>> assert_stable(FocalLoss("binary"), mode="binary", sizes=[(1, 8, 8)]).ok
        True
    """
    report = check_stability(loss, **kwargs)
    if report.failures:
        raise AssertionError("loss is not stable under mixed precision:\n" + report.table())
    if not report.ok:
        raise AssertionError("not every example was checked (the time budget ran out), so stability is not "
                             "shown:\n" + report.table())
    return report
