"""A harder synthetic abdominal CT phantom: real CT's failure modes, deterministic by seed (issue 18).

Same layout and writer as :mod:`liver.phantom` (LiTS files, one volume in three stored LPS and one
in three superior-first), but each volume draws what makes real CT hard for a model trained on
little data:

- **Distractors in the liver's intensity window**, away from the liver: a spleen, two kidneys, the
  heart above the liver's dome (blood pool and myocardium), the stomach wall and bowel loops
  (walls of near-liver density around fluid or air; collapsed loops solid). Their HU are drawn around the liver's own, so
  intensity alone cannot separate them; only shape and position can.
- **Partial volume**: the whole volume is blurred (Gaussian, sigma drawn per volume, in voxels)
  before the noise, so boundary voxels mix the liver's and its neighbours' intensities, while the
  labels stay hard.
- **Low-contrast lesions**, hypodense or hyperdense by 8-25 HU, half of them centred on the liver's
  boundary (a lesion touching the boundary blurs where the liver ends).
- **Intensity bias and noise drawn per volume**: a smooth additive bias field (up to 35 HU) and
  Gaussian noise of 8-28 HU.
- **Variable anatomy**: the liver's position, size, rotation, lobulation, left lobe and slice
  extent are drawn from wider ranges than the default phantom's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from liver.phantom import _ellipse, _smooth_field, torso_slice, write_volumes

VERSION = 1
PARTS = ("spleen", "kidneys", "heart", "stomach", "bowel")


@dataclass(frozen=True)
class HardCase:
    """One hard phantom volume in RAS voxel order.

    Attributes:
        hu: int16 ``(size, size, slices)`` Hounsfield units.
        labels: uint8, same shape: 0 background, 1 liver, 2 lesion.
        spacing: Voxel size in mm.
        parts: Each distractor's boolean mask (the names in :data:`PARTS`), same shape.
        liver_hu: The liver's drawn density (HU, before blur, bias and noise).
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing: tuple
    parts: dict
    liver_hu: float


def _ring(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, wall: float) -> tuple:
    """An elliptic wall of thickness ``wall`` and its lumen: ``(wall mask, lumen mask)``."""
    outer = _ellipse(x, y, cx, cy, rx, ry)
    lumen = _ellipse(x, y, cx, cy, max(rx - wall, 1e-3), max(ry - wall, 1e-3))
    return outer & ~lumen, lumen


def _liver_slice(x: np.ndarray, y: np.ndarray, t: float, shape: dict) -> np.ndarray:
    """The liver's cross-section at relative height ``t`` in (0, 1) of its extent, before clipping to the body."""
    r = np.sin(np.pi * t) ** 0.6
    c, s = np.cos(shape["angle"]), np.sin(shape["angle"])
    u, v = c * (x - shape["cx"]) + s * (y - shape["cy"]), -s * (x - shape["cx"]) + c * (y - shape["cy"])
    theta = np.arctan2(v, u)
    wobble = 1 + sum(shape["amps"][i] * np.cos((i + 1) * theta + shape["phases"][i] + shape["drift"][i] * t)
                     for i in range(3))
    liver = np.hypot(u / (shape["sx"] * r), v / (shape["sy"] * r)) <= wobble
    if t > shape["lobe_from"]:  # left lobe reaching toward the midline in the upper part
        lobe = shape["lobe"]
        liver |= _ellipse(x, y, shape["cx"] - 0.3 * lobe, shape["cy"] + 0.12, 0.22 * lobe * r, 0.12 * r)
    return liver


def _draw_liver(rng: np.random.Generator) -> dict:
    return {"lo": rng.uniform(0.1, 0.4), "hi": rng.uniform(0.6, 0.92), "cx": rng.uniform(0.18, 0.42),
            "cy": rng.uniform(-0.2, 0.15), "sx": rng.uniform(0.22, 0.48), "sy": rng.uniform(0.25, 0.5),
            "angle": rng.uniform(-0.45, 0.45), "amps": rng.uniform(0.03, 0.18, 3),
            "phases": rng.uniform(0, 2 * np.pi, 3), "drift": rng.uniform(-3, 3, 3), "lobe": rng.uniform(0.4, 1.2),
            "lobe_from": rng.uniform(0.3, 0.6)}


def _lesions(rng: np.random.Generator, hu: np.ndarray, labels: np.ndarray, liver_hu: float) -> None:
    """0-4 low-contrast lesions inside the liver, half of them centred on its boundary (in place)."""
    size, slices = labels.shape[0], labels.shape[2]
    ii, jj, kk = np.meshgrid(np.arange(size), np.arange(size), np.arange(slices), indexing="ij")
    for _ in range(rng.integers(0, 5)):
        liver = labels > 0
        edge = liver & ~ndimage.binary_erosion(liver)
        candidates = np.argwhere(edge if rng.random() < 0.5 else liver)
        if len(candidates) == 0:
            break
        c = candidates[rng.integers(len(candidates))]
        radius = rng.uniform(0.03, 0.1) * size
        ball = (ii - c[0]) ** 2 + (jj - c[1]) ** 2 + ((kk - c[2]) * 2.0) ** 2 <= radius**2
        lesion = ball & liver
        contrast = rng.uniform(8, 25) * (1 if rng.random() < 0.25 else -1)
        hu[lesion] = liver_hu + contrast
        labels[lesion] = 2


def hard_phantom_case(seed: int, index: int, size: int = 128, slices: int = 48) -> HardCase:
    """One hard phantom volume and its distractors' masks (see the module docstring).

    Args:
        seed: Base seed; the volume depends only on ``(seed, index, size, slices)``.
        index: Volume number.
        size: In-plane voxels per side (the field of view is 360 mm, as the default phantom's).
        slices: Number of axial slices.

    Returns:
        A :class:`HardCase`.

    Raises:
        ValueError: ``size`` < 16 or ``slices`` < 4 (too small to hold the anatomy).

    Example:
        >>> case = hard_phantom_case(0, 0, size=32, slices=8)
        >>> case.hu.shape, case.labels.dtype.name, sorted(case.parts) == sorted(PARTS)
        ((32, 32, 8), 'uint8', True)
    """
    if size < 16 or slices < 4:
        raise ValueError(f"size must be >= 16 and slices >= 4; received size={size}, slices={slices}")
    rng = np.random.default_rng([seed, index, 18])
    lin = np.linspace(-1, 1, size)
    x, y = np.meshgrid(lin, lin, indexing="ij")  # x: patient right (+), y: anterior (+)
    hu = np.full((size, size, slices), -1000.0)
    labels = np.zeros((size, size, slices), np.uint8)
    parts = {name: np.zeros((size, size, slices), bool) for name in PARTS}
    body_a, body_b = rng.uniform(0.8, 0.94), rng.uniform(0.56, 0.72)
    texture = _smooth_field(rng, (size, size))
    liver = _draw_liver(rng)
    liver_hu = float(rng.uniform(60, 120))
    near = lambda sd: liver_hu + rng.normal(0, sd)  # noqa: E731 (a density close to the liver's)
    spleen = (rng.uniform(-0.62, -0.45), rng.uniform(-0.3, 0.0), rng.uniform(0.1, 0.18), rng.uniform(0.15, 0.28))
    hu_spleen, hu_kidney = near(6), liver_hu + rng.uniform(-10, 30)
    heart = (rng.uniform(-0.25, 0.05), rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.38), rng.uniform(0.22, 0.32))
    hu_blood, hu_myo, heart_from = near(8), near(8), rng.uniform(0.72, 0.85)
    stomach = (rng.uniform(-0.45, -0.2), rng.uniform(0.05, 0.3), rng.uniform(0.12, 0.2), rng.uniform(0.1, 0.18))
    hu_wall, stomach_air = near(8), rng.random() < 0.5
    loops = [(rng.uniform(-0.5, 0.5), rng.uniform(-0.1, 0.4), rng.uniform(0.05, 0.1), rng.uniform(0.0, 0.5),
              near(10), rng.choice(["air", "fluid", "collapsed"], p=[0.3, 0.3, 0.4]), rng.uniform(0.03, 0.055))
             for _ in range(rng.integers(4, 9))]
    for k in range(slices):
        z = (k + 0.5) / slices
        sl, inner, spine_y = torso_slice(x, y, z, body_a, body_b, texture, spinal_canal=False)
        painted = {}
        if 0.1 < z < 0.55:
            painted["kidneys"] = (_ellipse(x, y, -0.33, spine_y + 0.12, 0.09, 0.13)
                                  | _ellipse(x, y, 0.33, spine_y + 0.12, 0.09, 0.13)) & inner
            sl[painted["kidneys"]] = hu_kidney
        if 0.4 < z < 0.95:
            painted["spleen"] = _ellipse(x, y, *spleen) & inner
            sl[painted["spleen"]] = hu_spleen
        if 0.45 < z < 0.85:
            wall, lumen = _ring(x, y, *stomach, wall=0.04)
            painted["stomach"] = wall & inner
            sl[lumen & inner] = -900.0 if stomach_air else 10.0
            sl[painted["stomach"]] = hu_wall
        if z < 0.5:
            painted["bowel"] = np.zeros((size, size), bool)
            for lx, ly, radius, top, hu_loop, content, thickness in loops:
                if z < top:
                    wall, lumen = _ring(x, y, lx, ly, radius, radius, wall=thickness)
                    if content == "collapsed":  # no lumen: a solid loop of wall density
                        wall, lumen = wall | lumen, lumen & False
                    sl[lumen & inner] = -900.0 if content == "air" else 15.0
                    sl[wall & inner] = hu_loop
                    painted["bowel"] |= wall & inner
        if z > heart_from:
            t = (z - heart_from) / (1 - heart_from)
            grow = np.sqrt(np.clip(t * 1.5, 0.3, 1.0))
            wall, lumen = _ring(x, y, heart[0], heart[1], heart[2] * grow, heart[3] * grow, wall=0.05)
            painted["heart"] = (wall | lumen) & inner
            sl[lumen & inner] = hu_blood
            sl[wall & inner] = hu_myo
        if liver["lo"] < z < liver["hi"]:
            mask = _liver_slice(x, y, (z - liver["lo"]) / (liver["hi"] - liver["lo"]), liver) & inner
            sl[mask] = liver_hu
            labels[..., k][mask] = 1
            for name in painted:
                painted[name] &= ~mask
        for name, mask in painted.items():
            parts[name][..., k] = mask
        hu[..., k] = sl
    _lesions(rng, hu, labels, liver_hu)
    blur = (rng.uniform(0.6, 1.3),) * 2 + (rng.uniform(0.3, 0.8),)
    hu = ndimage.gaussian_filter(hu, blur)  # partial volume: boundary voxels mix their neighbours
    bias = _smooth_field(rng, (size, size), cells=4)[..., None] * (1 + rng.uniform(-0.5, 0.5) * np.linspace(-1, 1, slices))
    hu += rng.uniform(10, 35) * bias
    hu += rng.normal(0, rng.uniform(8, 28), hu.shape)
    spacing = (360.0 / size, 360.0 / size, float(rng.choice([2.5, 3.0, 5.0])) * 48 / slices)
    return HardCase(np.clip(hu, -1024, 3071).astype(np.int16), labels, spacing, parts, liver_hu)


def hard_phantom_volume(seed: int, index: int, size: int = 128, slices: int = 48) -> tuple:
    """``(hu, labels, spacing)`` of :func:`hard_phantom_case`, as :func:`liver.phantom.phantom_volume` returns."""
    case = hard_phantom_case(seed, index, size, slices)
    return case.hu, case.labels, case.spacing


def write_hard_phantom(out_dir: Path, volumes: int, *, size: int = 128, slices: int = 48, seed: int = 0) -> Path:
    """Write ``volumes`` hard phantom cases into ``out_dir`` (LiTS layout), atomically; reused when complete.

    Returns:
        ``out_dir``.
    """
    params = {"kind": "hard", "version": VERSION, "volumes": volumes, "size": size, "slices": slices, "seed": seed}
    return write_volumes(out_dir, params, lambda i: hard_phantom_volume(seed, i, size, slices))
