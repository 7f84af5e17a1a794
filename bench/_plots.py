"""PNG figures of ``grad_norms.py`` (matplotlib, Agg backend; skipped with a note when missing)."""

from __future__ import annotations

import math
import os
from typing import List

import _common as C

COLORS = {"stableloss": "tab:blue", "smp": "tab:orange", "monai": "tab:green", "stableloss-noval": "tab:purple"}
WIDTHS = {"stableloss": 3.5, "smp": 2.0, "monai": 1.0, "stableloss-noval": 1.0}
"""Line widths: thick to thin, so that coinciding curves all stay visible."""
FLOOR = 1e-12
"""Gradient norms below this (including exact zeros) are drawn at it, on the dotted line."""


def _pyplot():
    mpl = C.optional_import("matplotlib")
    if mpl is None:
        return None
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    C.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80))


def plot_sweep(plt, path: str, rows: List[dict], contexts: List[str]) -> None:
    """Gradient norm against logit scale: a row per precision context, a column per loss."""
    losses = [name for name in C.LOSSES if any(r["loss"] == name for r in rows)]
    fig, axes = plt.subplots(len(contexts), len(losses), figsize=(2.6 * len(losses), 2.1 * len(contexts)),
                             sharex=True, sharey=True, squeeze=False)
    for i, context in enumerate(contexts):
        for j, loss in enumerate(losses):
            ax = axes[i][j]
            for source in COLORS:
                for direction, style in (("right", "-"), ("wrong", "--")):
                    pts = [r for r in rows if (r["loss"], r["source"], r["context"], r["direction"]) == (loss, source, context, direction)
                           and "error" not in r]
                    if not pts:
                        continue
                    xs = [r["scale"] for r in pts]
                    ys = [max(r["grad_norm"], FLOOR) if math.isfinite(r["grad_norm"]) else math.nan for r in pts]
                    ax.plot(xs, ys, style, color=COLORS[source], lw=WIDTHS[source], label=f"{source} {direction}")
                    bad = [r["scale"] for r in pts if not r["loss_finite"] or r["nonfinite_grad"] > 0]
                    ax.plot(bad, [1e1] * len(bad), "x", color=COLORS[source], ms=6)
            ax.axhline(FLOOR, color="0.6", lw=0.6, ls=":")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(FLOOR / 10, 1e2)
            if i == 0:
                ax.set_title(loss, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{context}\n|grad|", fontsize=8)
            if i == len(contexts) - 1:
                ax.set_xlabel("logit scale", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.suptitle("Gradient norm vs logit scale (solid: right, dashed: wrong; x at top: non-finite; "
                 f"dotted: 0 or < {FLOOR:g})", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    _save(fig, path)
    plt.close(fig)


def plot_boundary(plt, path: str, rows: List[dict]) -> None:
    """Boundary-to-rest gradient ratio per implementation (1 = no emphasis)."""
    labels = [f"{r['source']}:{r['loss']}" for r in rows]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(rows) + 1.2))
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color=[COLORS.get(r["source"], "0.5") for r in rows])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("mean |grad| within 1.5 px of the surface / mean |grad| elsewhere", fontsize=8)
    ax.set_title("Boundary emphasis, blob target and soft prediction", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_underflow(plt, path: str, rows: List[dict]) -> None:
    """Fraction of float16-cast gradient elements that become 0, with and without GradScaler's scale."""
    shapes = sorted({r["shape"] for r in rows}, key=len)
    fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 0.25 * len(rows) / max(len(shapes), 1) + 1.6),
                             squeeze=False)
    for ax, shape in zip(axes[0], shapes, strict=False):
        sub = [r for r in rows if r["shape"] == shape]
        ys = range(len(sub))
        ax.barh([y - 0.2 for y in ys], [r["zero"] for r in sub], height=0.4, color="tab:red", label="no scaling")
        ax.barh([y + 0.2 for y in ys], [r["zero_scaled"] for r in sub], height=0.4, color="tab:gray", label="x 2**16")
        ax.set_yticks(list(ys))
        ax.set_yticklabels([f"{r['source']}:{r['loss']}" for r in sub], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of non-zero grads that are 0 in float16", fontsize=8)
        ax.set_title(shape, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_all(out: str, sweep_rows: List[dict], under_rows: List[dict], bound_rows: List[dict], contexts: List[str]) -> None:
    plt = _pyplot()
    if plt is None:
        return
    plot_sweep(plt, os.path.join(out, "grad_norm_vs_scale.png"), sweep_rows, contexts)
    plot_boundary(plt, os.path.join(out, "boundary_ratio.png"), bound_rows)
    plot_underflow(plt, os.path.join(out, "fp16_underflow.png"), under_rows)
