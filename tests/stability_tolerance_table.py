"""Print the worst relative error of each stableloss loss against its float64 textbook reference.

Run: ``python -m tests.stability_tolerance_table`` from the repository root. It uses the stability checker's quick
grid (2x C x32x32 and 1x C x8x16x16, five masks) over the default scenarios plus logits of 8 to 17,
where float32 keeps few digits of ``1 - sigmoid(x)``. The error is
``|loss - ref| / max(|ref|, REFERENCE_FLOOR)`` (see ``stableloss/testing/_evaluate.py``), the same
measure ``tests/test_stability.py`` holds to ``TOLERANCE``.
"""

from stableloss.testing import SCENARIOS, check_stability
from tests.registry import MODES
from tests.stability_cases import ALL, describe

NEAR_SATURATION = [("right", 8.0), ("right", 12.0), ("right", 17.0), ("wrong", 12.0), ("noise", 12.0)]
GROUPS = {"float32": ["float32"], "fp16": ["fp16-autocast", "fp16"], "bf16": ["bf16-autocast", "bf16"]}


def main() -> None:
    print(f"| {'loss':52s} | {'mode':10s} | " + " | ".join(f"{g:>7s}" for g in GROUPS) + " | finite |")
    print("|" + "|".join("-" * w for w in (54, 12, 9, 9, 9, 8)) + "|")
    for case in ALL:
        for mode in (m for m in MODES if m in case.info.modes):
            report = check_stability(case.build(mode), mode=mode, quick=True, scenarios=list(SCENARIOS) + NEAR_SATURATION,
                                     reference=case.reference_for(mode), tolerance=None, input=case.input)
            worst = {g: max(report.cells[(s, c)].worst_error or 0.0 for s in report.scenarios for c in cs)
                     for g, cs in GROUPS.items()}
            finite = "yes" if report.ok else "NO"
            print(f"| {describe(case):52s} | {mode:10s} | " + " | ".join(f"{worst[g]:7.1e}" for g in GROUPS) + f" | {finite:6s} |",
                  flush=True)


if __name__ == "__main__":
    main()
