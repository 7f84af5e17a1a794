"""The comparison's figure: HD95 against Dice per run, one marker per recipe, one panel per regime."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liver.atomic import atomic_write
from liver.paired import finite

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def plot_hd95_vs_dice(path: Path, rows: Sequence[dict[str, Any]], regimes: Sequence[str], losses: Sequence[str]) -> None:
    """Write a PNG: per regime a panel of final-epoch HD95 (mm, log scale) against Dice, one point per
    run (seed); filled markers raw, hollow markers after keeping the largest connected component.

    Args:
        path: The PNG to write (atomically).
        rows: Run rows with ``regime``, ``loss``, ``val_dice``, ``val_hd95_mm`` and their ``_lcc`` twins.
        regimes: One panel per regime, in this order.
        losses: One marker per recipe, in this order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(regimes), figsize=(5.2 * len(regimes), 4.4), squeeze=False)
    for ax, regime in zip(axes[0], regimes, strict=True):
        for k, loss in enumerate(losses):
            mine = [r for r in rows if r.get("regime", "default") == regime and r["loss"] == loss]
            color, marker = f"C{k % 10}", MARKERS[k % len(MARKERS)]
            for suffix, face in (("", color), ("_lcc", "none")):
                points = [(r[f"val_dice{suffix}"], r[f"val_hd95_mm{suffix}"]) for r in mine
                          if finite(r.get(f"val_dice{suffix}")) and finite(r.get(f"val_hd95_mm{suffix}"))]
                if points:
                    ax.scatter(*zip(*points, strict=True), marker=marker, facecolors=face, edgecolors=color,
                               label=loss if suffix == "" else None, s=36)
        ax.set_title(f"{regime} (filled: raw, hollow: largest component)", fontsize=9)
        ax.set_xlabel("Dice (final epoch)")
        ax.set_ylabel("HD95 (mm)")
        if ax.has_data():
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    legend: dict[str, Any] = {}
    for ax in axes[0]:  # one entry per recipe, whichever panel holds it
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    if legend:
        axes[0][-1].legend(legend.values(), legend.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    finally:
        plt.close(fig)
