"""Draw the default and the hard liver phantom side by side: three axial slices of one volume each.

    cd examples && python phantom_picture.py                       # docs/img/liver_phantoms.png
    cd examples && python phantom_picture.py --seed 3 --index 1 --out /tmp/phantoms.png

Each panel is one axial slice in the abdominal window (level 40, width 400 HU) with the liver's
contour (liver and tumours) in green: a slice near the liver's top, its middle and its bottom,
in the radiological view (the patient's right on the image's left, anterior up).
The hard phantom's organs of the liver's density (spleen, kidneys, heart above the dome, stomach
wall, bowel loops), its blurred boundaries, bias field and noise are what make an undertrained
network predict liver far from the liver.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from liver.data import HU_WINDOW
from liver.hard_phantom import hard_phantom_volume
from liver.phantom import phantom_volume

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default %(default)s)")
    p.add_argument("--index", type=int, default=0, help="volume number (default %(default)s)")
    p.add_argument("--size", type=int, default=128, help="in-plane voxels (default %(default)s)")
    p.add_argument("--slices", type=int, default=48, help="slices (default %(default)s)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "liver_phantoms.png",
                   help="image to write (default docs/img/liver_phantoms.png)")
    args = p.parse_args(argv)
    if args.size < 16 or args.slices < 4:
        p.error(f"--size must be at least 16 and --slices at least 4; received {args.size} and {args.slices}")
    return args


def liver_slices(labels: np.ndarray) -> list[int]:
    """Three slice indices (axis 2) through the liver: near its top, its middle, near its bottom.

    >>> labels = np.zeros((4, 4, 10), np.uint8); labels[1:3, 1:3, 2:8] = 1
    >>> liver_slices(labels)
    [2, 4, 7]
    """
    present = np.flatnonzero((labels > 0).any(axis=(0, 1)))
    if present.size == 0:
        raise ValueError("the volume holds no liver")
    low, high = int(present[0]), int(present[-1])
    return [low + (high - low) // 6, (low + high) // 2, high - (high - low) // 6]


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args = parse_args(argv)
    volumes = {"default phantom": phantom_volume(args.seed, args.index, args.size, args.slices),
               "hard phantom": hard_phantom_volume(args.seed, args.index, args.size, args.slices)}
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.6), constrained_layout=True)
    for row, (name, (hu, labels, _)) in zip(axes, volumes.items(), strict=True):
        for ax, z in zip(row, liver_slices(labels), strict=True):
            image = np.clip((hu[:, :, z].astype(np.float32) - HU_WINDOW[0]) / (HU_WINDOW[1] - HU_WINDOW[0]), 0, 1)
            ax.imshow(image.T, cmap="gray", origin="lower")  # y (anterior) up
            ax.contour((labels[:, :, z] > 0).T, levels=[0.5], colors="lime", linewidths=0.8, origin="lower")
            ax.invert_xaxis()  # the radiological view: the patient's right (+x) on the image's left
            ax.set_title(f"{name}, slice {z}", fontsize=9)
            ax.set_axis_off()
    fig.suptitle(f"Liver phantoms (seed {args.seed}, volume {args.index}): liver contour in green, "
                 "radiological view", fontsize=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
