"""The pre-declared rule that chooses ``BoundaryAwareLoss``'s default from the liver comparison (issue 18).

The rule is written in docs/liver-example.md, section "The rule that will choose
`BoundaryAwareLoss`'s default (written before the runs)"; this module applies it as written:

1. **Data**: the hard low-data regime; recipes ``dice``, ``seed``, ``boundary``, ``boundary-loss``,
   ``hausdorff``, ``boundary-dou``, ``nnunet``; at least 5 seeds, paired; final epoch's raw scores.
   Comparisons that do not hold these data are not judged (outcome ``insufficient-data``).
2. **Gate**: ``dice``'s mean raw HD95 in the hard regime is at least twice its mean raw HD95 on
   the default phantom at the same seeds; otherwise ``gate-failed``.
3. **Eligible**: mean paired raw Dice difference to ``dice`` not below -0.005, and the 95 %
   Student-t interval of the mean paired raw HD95 difference to ``dice`` entirely below 0.
4. **Choice**: the eligible recipe with the lowest mean raw HD95 (``chosen``); if that is
   ``nnunet``, the default stays as it is (``nnunet-best``).
5. **No eligible recipe**: the default stays as it is (``none-eligible``).

Post-processed scores do not enter the rule.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from liver.paired import PairedDifference, finite, paired_difference

RECIPES = ("dice", "seed", "boundary", "boundary-loss", "hausdorff", "boundary-dou", "nnunet")
REFERENCE = "dice"
HARD_REGIME, DEFAULT_REGIME = "hard-low-data", "default"
MIN_SEEDS = 5
GATE_RATIO = 2.0
DICE_MARGIN = -0.005
OUTCOMES = ("insufficient-data", "gate-failed", "chosen", "nnunet-best", "none-eligible")


@dataclass(frozen=True)
class Candidate:
    """One recipe judged against ``dice`` in the hard regime (raw scores of the final epoch)."""

    recipe: str
    hd95_mean: float | None
    dice_diff: PairedDifference
    hd95_diff: PairedDifference
    eligible: bool
    reason: str


@dataclass(frozen=True)
class RuleOutcome:
    """What the rule decided.

    Attributes:
        status: One of :data:`OUTCOMES`.
        choice: The recipe that becomes the default (status ``chosen``), else None.
        best: The eligible recipe with the lowest mean raw HD95, if any (``nnunet`` under ``nnunet-best``).
        message: One paragraph saying what was decided and why.
        gate: ``dice``'s mean raw HD95 in both regimes, their ratio and the seeds, when computed.
        candidates: Each recipe's eligibility, when the gate passed.
    """

    status: str
    choice: str | None
    best: str | None
    message: str
    gate: dict[str, Any] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()


def _scores(rows: Sequence[dict[str, Any]], regime: str, recipe: str, key: str) -> dict[int, Any]:
    return {int(r["seed"]): r.get(key) for r in rows if r.get("regime", DEFAULT_REGIME) == regime and r["loss"] == recipe}


def _missing_data(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Why the comparison does not hold the rule's data (empty when it does)."""
    reasons = []
    reference = set(_scores(rows, HARD_REGIME, REFERENCE, "val_hd95_mm"))
    for recipe in RECIPES:
        seeds = set(_scores(rows, HARD_REGIME, recipe, "val_hd95_mm")) & reference
        paired = "" if recipe == REFERENCE else f" paired with `{REFERENCE}`"
        if len(seeds) < MIN_SEEDS:
            reasons.append(f"`{recipe}` has {len(seeds)} seed(s){paired} in {HARD_REGIME} (at least {MIN_SEEDS} needed)")
    both = reference & set(_scores(rows, DEFAULT_REGIME, REFERENCE, "val_hd95_mm"))
    if len(both) < MIN_SEEDS:
        reasons.append(f"`dice` has {len(both)} seed(s) in both {HARD_REGIME} and {DEFAULT_REGIME} (at least "
                       f"{MIN_SEEDS} needed for the gate)")
    return reasons


def _gate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Step 2: ``dice``'s mean raw HD95 in the hard regime against the default regime's, at the seeds both have."""
    hard = _scores(rows, HARD_REGIME, REFERENCE, "val_hd95_mm")
    default = _scores(rows, DEFAULT_REGIME, REFERENCE, "val_hd95_mm")
    seeds = sorted(s for s in hard if s in default and finite(hard[s]) and finite(default[s]))
    hard_mean = statistics.fmean(float(hard[s]) for s in seeds) if seeds else None
    default_mean = statistics.fmean(float(default[s]) for s in seeds) if seeds else None
    ratio = hard_mean / default_mean if hard_mean is not None and default_mean else None
    return {"seeds": seeds, "hard_hd95_mean": hard_mean, "default_hd95_mean": default_mean, "ratio": ratio,
            "passed": ratio is not None and ratio >= GATE_RATIO}


def judge(rows: Sequence[dict[str, Any]], recipe: str) -> Candidate:
    """Step 3 for one recipe: its paired raw Dice and HD95 differences to ``dice`` and whether it is eligible."""
    dice_diff = paired_difference(_scores(rows, HARD_REGIME, recipe, "val_dice"),
                                  _scores(rows, HARD_REGIME, REFERENCE, "val_dice"))
    hd95 = _scores(rows, HARD_REGIME, recipe, "val_hd95_mm")
    hd95_diff = paired_difference(hd95, _scores(rows, HARD_REGIME, REFERENCE, "val_hd95_mm"))
    mean = statistics.fmean(float(hd95[s]) for s in hd95_diff.seeds) if hd95_diff.seeds else None
    if dice_diff.mean is None or dice_diff.mean < DICE_MARGIN:
        reason = ("no paired Dice" if dice_diff.mean is None
                  else f"mean paired Dice difference {dice_diff.mean:+.4f} is below {DICE_MARGIN}")
        return Candidate(recipe, mean, dice_diff, hd95_diff, False, reason)
    if not hd95_diff.has_interval:
        return Candidate(recipe, mean, dice_diff, hd95_diff, False, f"{hd95_diff.n} paired HD95 value(s): no interval")
    interval = f"[{hd95_diff.low:+.2f}, {hd95_diff.high:+.2f}] mm"
    if hd95_diff.high >= 0:  # type: ignore[operator]
        return Candidate(recipe, mean, dice_diff, hd95_diff, False, f"HD95 difference interval {interval} is not entirely below 0")
    return Candidate(recipe, mean, dice_diff, hd95_diff, True,
                     f"Dice difference {dice_diff.mean:+.4f} >= {DICE_MARGIN} and HD95 difference interval {interval} below 0")


def apply_default_rule(rows: Sequence[dict[str, Any]]) -> RuleOutcome:
    """Apply the pre-declared rule (module docstring) to the comparison's run rows.

    Args:
        rows: One dict per run with ``regime`` (a row without one is of the default regime),
            ``loss``, ``seed``, and the final epoch's raw ``val_dice`` and ``val_hd95_mm``
            (None for a run stopped before its first validation).

    Returns:
        A :class:`RuleOutcome`.

    Example:
        >>> apply_default_rule([]).status
        'insufficient-data'
    """
    missing = _missing_data(rows)
    if missing:
        return RuleOutcome("insufficient-data", None, None,
                           "The rule is not applied: " + "; ".join(missing) + ". No default is chosen from these runs.")
    gate = _gate(rows)
    seeds = ", ".join(map(str, gate["seeds"]))
    if gate["ratio"] is None:
        shown = "cannot be compared (no finite HD95)"
    else:
        shown = (f"is {gate['hard_hd95_mean']:.2f} mm in {HARD_REGIME}, {gate['ratio']:.2f} x its "
                 f"{gate['default_hd95_mean']:.2f} mm on the {DEFAULT_REGIME} phantom at seeds {seeds}")
    said = f"Gate: Dice alone's mean raw HD95 {shown}"
    if not gate["passed"]:
        return RuleOutcome("gate-failed", None, None, f"{said}; the rule needs at least {GATE_RATIO:g} x. The regime does "
                           "not reproduce the far false positives: no default is chosen from it.", gate)
    said += f" (at least {GATE_RATIO:g} x: passed)."
    candidates = tuple(judge(rows, recipe) for recipe in RECIPES if recipe != REFERENCE)
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        return RuleOutcome("none-eligible", None, None, f"{said} No recipe is eligible: the default stays as it is, and "
                           "the README says that the data cannot decide.", gate, candidates)
    best = min(eligible, key=lambda c: c.hd95_mean)  # type: ignore[arg-type,return-value]
    others = ", ".join(f"`{c.recipe}`" for c in eligible if c is not best)
    listed = f" (also eligible: {others})" if others else ""
    if best.recipe == "nnunet":
        return RuleOutcome("nnunet-best", None, "nnunet", f"{said} The eligible recipe with the lowest mean raw HD95 is "
                           f"`nnunet` ({best.hd95_mean:.2f} mm){listed}, which has no boundary term: no boundary term "
                           "earns the name, the default stays as it is and the docs say so.", gate, candidates)
    today = " (it is today's default already)" if best.recipe in ("boundary", "boundary-dou") else ""
    return RuleOutcome("chosen", best.recipe, best.recipe, f"{said} The eligible recipe with the lowest mean raw HD95 is "
                       f"`{best.recipe}` ({best.hd95_mean:.2f} mm){listed}: it becomes `BoundaryAwareLoss`'s default (its "
                       f"terms, weights and schedule){today}.", gate, candidates)
