"""Run-folder outputs besides checkpoints: the per-epoch CSV and the validation PNG."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from liver.atomic import atomic_write

COLUMNS = ("epoch", "train_loss", "val_dice", "val_dice_global", "val_hd95_mm", "val_assd_mm", "val_dice_lcc",
           "val_hd95_mm_lcc", "val_assd_mm_lcc", "best", "lr", "skipped", "scaler_skipped", "seconds")
"""history.csv: validation scores are means over the validation volumes (HD95 and ASSD in mm, 3D),
raw, and with ``_lcc`` after keeping the prediction's largest connected component;
``best`` is 1 on the epochs that wrote best.pt (the highest validation Dice so far); ``seconds``
times the training pass (validation not included)."""


def write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """Write all rows (rewritten each epoch, atomically, so a resume continues the same file)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows({k: r.get(k, "") for k in COLUMNS} for r in rows)
    atomic_write(path, text.getvalue())


def save_contours(path: Path, volumes: dict[str, np.ndarray], preds: dict[str, np.ndarray],
                  trues: dict[str, np.ndarray], max_cases: int = 4) -> None:
    """One panel per validation case: the slice with most true foreground, true contour in green
    and predicted contour in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = list(volumes)[:max_cases]
    if not ids:
        return
    fig, axes = plt.subplots(1, len(ids), figsize=(4 * len(ids), 4.6), squeeze=False)
    for ax, cid in zip(axes[0], ids, strict=False):
        z = int(np.argmax((trues[cid] > 0).reshape(len(trues[cid]), -1).sum(1)))
        ax.imshow(np.asarray(volumes[cid][z], np.float32), cmap="gray", origin="lower")
        for mask, color in ((trues[cid][z], "lime"), (preds[cid][z], "red")):
            if mask.any():
                ax.contour(mask > 0, levels=[0.5], colors=color, linewidths=1.2, origin="lower")
        ax.set_title(f"{cid}, slice {z}\ngreen: truth, red: prediction", fontsize=9)
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    finally:
        plt.close(fig)
