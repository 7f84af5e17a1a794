"""PNG figures of ``grad_norms.py`` (matplotlib, Agg backend; skipped with a note when missing)."""

from __future__ import annotations

import math
import os
import textwrap

import torch

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


def _save(fig, path: str, palette: bool = False) -> None:
    """Write ``fig`` as a PNG; ``palette``: 256 colours, no dithering (a noisy image shrinks 4x)."""
    def write(tmp: str) -> None:
        fig.savefig(tmp, dpi=80)
        if palette:
            from PIL import Image  # matplotlib's own dependency

            with Image.open(tmp) as image:
                small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            small.save(tmp, optimize=True)

    C.atomic_write(path, write)


def plot_sweep(plt, path: str, rows: list[dict], contexts: list[str]) -> None:
    """Gradient norm against logit scale: a row per precision context, a column per loss."""
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    norms = [r["grad_norm"] for r in rows if "error" not in r and math.isfinite(r["grad_norm"])]
    top = max([1e2] + [10 * n for n in norms])
    fig, axes = plt.subplots(len(contexts), len(losses), figsize=(2.6 * len(losses), 2.1 * len(contexts)),
                             sharex=True, sharey=True, squeeze=False)
    for i, context in enumerate(contexts):
        for j, loss in enumerate(losses):
            ax = axes[i][j]
            for source, color in COLORS.items():
                for direction, style in (("right", "-"), ("wrong", "--")):
                    pts = [r for r in rows if (r["loss"], r["source"], r["context"], r["direction"]) == (loss, source, context, direction)
                           and "error" not in r]
                    if not pts:
                        continue
                    xs = [r["scale"] for r in pts]
                    ys = [max(r["grad_norm"], FLOOR) if math.isfinite(r["grad_norm"]) else math.nan for r in pts]
                    ax.plot(xs, ys, style, color=color, lw=WIDTHS[source], label=f"{source} {direction}")
                    bad = [r["scale"] for r in pts if not r["loss_finite"] or r["nonfinite_grad"] > 0]
                    ax.plot(bad, [1e1] * len(bad), "x", color=color, ms=6)
            ax.axhline(FLOOR, color="0.6", lw=0.6, ls=":")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(FLOOR / 10, top)
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


def _bar(value: float) -> float:
    """A bar length for a log axis: non-finite values are left out (nan), zeros drawn at :data:`FLOOR`."""
    return max(value, FLOOR) if math.isfinite(value) else math.nan


def distinct_maps(maps: dict) -> dict:
    """``label -> (map, [other sources with the same map])``: one panel per loss and distinct gradient.

    Rows come grouped by loss, stableloss first; a later source's map that equals (1% relative) one
    already kept for the same loss is folded into it (smp's and MONAI's Dice have stableloss's gradient).
    """
    kept: dict = {}
    for label, grad in maps.items():
        source, loss = label.split(":", 1)
        twin = next((k for k, (g, _) in kept.items() if k.split(":", 1)[1] == loss
                     and torch.allclose(g, grad, rtol=1e-2, atol=1e-4)), None)
        if twin is None:
            kept[label] = (grad, [])
        else:
            kept[twin][1].append(source)
    return kept


def plot_boundary(plt, path: str, rows: list[dict], probe: dict) -> None:
    """Per implementation: the band ratio (left) and the far-island and near-shell gradients over the band's (right)."""
    rows = [r for r in rows if "error" not in r]
    labels = [f"{r['source']}:{r['loss']}" for r in rows]
    colors = [COLORS.get(r["source"], "0.5") for r in rows]
    ys = list(range(len(rows)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.3 * len(rows) + 1.6), sharey=True)
    left.barh(ys, [_bar(r["ratio"]) for r in rows], color=colors)
    left.set_xlabel(f"mean |grad| within {probe['band_px']} px of the surface / mean elsewhere", fontsize=8)
    left.set_title("Contour band vs the rest (soft prediction)", fontsize=9)
    right.barh([y - 0.2 for y in ys], [_bar(r["island_vs_band"]) for r in rows], height=0.4, color=colors,
               label=f"far island ({probe['island_distance_mean_px']:.0f} px)")
    right.barh([y + 0.2 for y in ys], [_bar(r["shell_vs_band"]) for r in rows], height=0.4, color=colors,
               alpha=0.4, hatch="//", label=f"near shell ({probe['shell_distance_mean_px']:.1f} px)")
    right.set_xlabel("mean |grad| on the error / mean |grad| on the band", fontsize=8)
    right.set_title(f"Confident false positives (logit {probe['island_logit']:+g})", fontsize=9)
    right.legend(fontsize=7, loc="lower right")
    for ax in (left, right):
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.tick_params(labelsize=7)
    left.set_yticks(ys)
    left.set_yticklabels(labels, fontsize=7)
    left.invert_yaxis()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _outline(ax, mask, pad: int) -> None:
    """A lime frame ``pad`` px outside the bounding box of ``mask`` (2D), leaving its pixels visible."""
    rows, cols = mask.nonzero(as_tuple=True)
    if rows.numel() == 0:
        return
    from matplotlib.patches import Rectangle

    top, left = int(rows.min()) - 0.5 - pad, int(cols.min()) - 0.5 - pad
    height, width = int(rows.max()) - int(rows.min()) + 1 + 2 * pad, int(cols.max()) - int(cols.min()) + 1 + 2 * pad
    ax.add_patch(Rectangle((left, top), width, height, fill=False, edgecolor="lime", linewidth=0.7))


def plot_grad_maps(plt, path: str, result: dict, columns: int = 5) -> None:
    """|gradient| of the first image on the far-error input, one panel per distinct loss gradient."""
    panels = distinct_maps(result["maps"])
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.3 * rows + 0.6), squeeze=False)
    image = None
    for ax, (label, (grad, twins)) in zip(axes.flat, panels.items(), strict=False):
        image = ax.imshow(grad.clamp_min(1e-30).log10().numpy(), cmap="magma", vmin=-3, vmax=2, interpolation="nearest")
        ax.contour(result["target"].numpy(), levels=[0.5], colors="cyan", linewidths=0.6)
        _outline(ax, result["island"], pad=3)
        title = textwrap.fill(label, 26) + (f"\n(= {', '.join(twins)})" if twins else "")
        ax.set_title(title, fontsize=6.5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.subplots_adjust(left=0.02, right=0.88, bottom=0.02, top=1 - 0.6 / (2.3 * rows + 0.6), wspace=0.08, hspace=0.45)
    if image is not None:
        cax = fig.add_axes((0.9, 0.15, 0.015, 0.6))
        fig.colorbar(image, cax=cax).set_label("log10 (|grad| / its mean on the band)", fontsize=8)
    probe = result["probe"]
    fig.suptitle(f"|gradient| of image 0 with a far island (green, logit {probe['island_logit']:+g}) and a near shell of "
                 "false positives; cyan: target surface", fontsize=9)
    _save(fig, path, palette=True)
    plt.close(fig)


def plot_underflow(plt, path: str, rows: list[dict]) -> None:
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


def plot_all(out: str, sweep_rows: list[dict], under_rows: list[dict], boundary: dict | None, contexts: list[str]) -> list[str]:
    """The figures of the measurements that ran; returns the file names written."""
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    if sweep_rows:
        plot_sweep(plt, os.path.join(out, "grad_norm_vs_scale.png"), sweep_rows, contexts)
        written.append("grad_norm_vs_scale.png")
    if boundary is not None and boundary["maps"]:
        plot_boundary(plt, os.path.join(out, "boundary_ratio.png"), boundary["rows"], boundary["probe"])
        plot_grad_maps(plt, os.path.join(out, "boundary_grad_maps.png"), boundary)
        written += ["boundary_ratio.png", "boundary_grad_maps.png"]
    if under_rows:
        plot_underflow(plt, os.path.join(out, "fp16_underflow.png"), under_rows)
        written.append("fp16_underflow.png")
    return written
