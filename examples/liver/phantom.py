"""A synthetic abdominal CT phantom in the LiTS layout, deterministic by seed.

Each volume is written with nibabel as ``volume-N.nii.gz`` (int16 Hounsfield units) and
``segmentation-N.nii.gz`` (0 background, 1 liver, 2 tumour), so the real loading path always runs.
What a volume holds: air, a body outline with subcutaneous fat and a muscle wall, abdominal soft
tissue with a smooth texture, a liver of random lobed shape and size on the patient's right (in
only part of the slices, tapering at both ends), 0-3 hypodense tumours inside it, a spleen and two
kidneys of similar density, the spine and the aorta, and Gaussian noise. One volume in three is
stored flipped in-plane (LPS-like) and one in three with the slices in reverse order, with
affines saying so, so reorientation is exercised as it is on real scans.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from liver.atomic import atomic_write

VERSION = 1


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _smooth_field(rng: np.random.Generator, shape: tuple, cells: int = 6) -> np.ndarray:
    """Low-frequency texture in [-1, 1]: coarse noise upsampled by linear interpolation."""
    coarse = rng.uniform(-1, 1, (cells, cells))
    idx = np.linspace(0, cells - 1, shape[0])
    rows = np.array([np.interp(idx, np.arange(cells), coarse[:, j]) for j in range(cells)]).T
    idx = np.linspace(0, cells - 1, shape[1])
    return np.array([np.interp(idx, np.arange(cells), r) for r in rows])


def torso_slice(x: np.ndarray, y: np.ndarray, z: float, body_a: float, body_b: float, texture: np.ndarray, *,
                spinal_canal: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """One axial slice's body wall, fat, textured soft tissue, spine and aorta, in HU.

    The body's half-axes ``body_a``, ``body_b`` breathe with ``z`` (in [0, 1], the slice's height) by 5 %.

    Returns:
        ``(hu, inner, spine_y)``: the slice, the mask inside the abdominal wall (where organs go) and
        the spine's y coordinate.
    """
    scale = 1.0 + 0.05 * np.sin(2 * np.pi * z)
    a, b = body_a * scale, body_b * scale
    inner = _ellipse(x, y, 0, 0, a - 0.11, b - 0.11)
    sl = np.full(x.shape, -1000.0)
    sl[_ellipse(x, y, 0, 0, a, b)] = -100.0
    sl[_ellipse(x, y, 0, 0, a - 0.07, b - 0.07)] = 45.0
    sl[inner] = -20.0 + 40.0 * texture[inner]
    spine_y = -b + 0.22
    sl[_ellipse(x, y, 0, spine_y, 0.11, 0.1)] = 700.0
    sl[_ellipse(x, y, 0, spine_y, 0.08, 0.07)] = 250.0
    if spinal_canal:
        sl[_ellipse(x, y, 0, spine_y - 0.13, 0.04, 0.04)] = 20.0
    sl[_ellipse(x, y, -0.08, spine_y + 0.17, 0.05, 0.05)] = 160.0  # aorta
    return sl, inner, spine_y


def phantom_volume(seed: int, index: int, size: int = 128, slices: int = 48) -> tuple:
    """One phantom volume in RAS voxel order.

    Args:
        seed: Base seed; the volume depends only on ``(seed, index, size, slices)``.
        index: Volume number.
        size: In-plane voxels per side.
        slices: Number of axial slices.

    Returns:
        ``(hu, labels, spacing)``: int16 ``(size, size, slices)`` HU, uint8 labels of the same
        shape, and the voxel spacing in mm.
    """
    rng = np.random.default_rng([seed, index])
    lin = np.linspace(-1, 1, size)
    x, y = np.meshgrid(lin, lin, indexing="ij")  # x: patient right (+), y: anterior (+)
    hu = np.full((size, size, slices), -1000.0)
    labels = np.zeros((size, size, slices), np.uint8)
    body_a, body_b = rng.uniform(0.82, 0.92), rng.uniform(0.58, 0.7)
    texture = _smooth_field(rng, (size, size))
    liver_lo, liver_hi = rng.uniform(0.15, 0.35), rng.uniform(0.7, 0.9)
    cx, cy = rng.uniform(0.25, 0.4), rng.uniform(-0.1, 0.1)
    sx, sy = rng.uniform(0.28, 0.42), rng.uniform(0.3, 0.45)
    amps, phases, drift = rng.uniform(0.03, 0.12, 3), rng.uniform(0, 2 * np.pi, 3), rng.uniform(-2, 2, 3)
    lobe = rng.uniform(0.6, 1.0)
    spleen = (rng.uniform(-0.62, -0.5), rng.uniform(-0.25, -0.05), rng.uniform(0.1, 0.16), rng.uniform(0.15, 0.24))
    hu_liver, hu_spleen, hu_kidney = rng.normal(60, 5), rng.normal(55, 5), rng.normal(90, 10)
    for k in range(slices):
        z = (k + 0.5) / slices
        sl, inner, spine_y = torso_slice(x, y, z, body_a, body_b, texture)
        if 0.1 < z < 0.55:
            for side in (-1, 1):
                sl[_ellipse(x, y, side * 0.33, spine_y + 0.12, 0.09, 0.13)] = hu_kidney
        if 0.45 < z < 0.95:
            sx_, sy_, rx, ry = spleen
            sl[_ellipse(x, y, sx_, sy_, rx, ry)] = hu_spleen
        if liver_lo < z < liver_hi:
            t = (z - liver_lo) / (liver_hi - liver_lo)
            r = np.sin(np.pi * t) ** 0.6
            theta = np.arctan2(y - cy, x - cx)
            wobble = 1 + sum(amps[i] * np.cos((i + 1) * theta + phases[i] + drift[i] * z) for i in range(3))
            rho = np.hypot((x - cx) / (sx * r), (y - cy) / (sy * r))
            liver = (rho <= wobble) & inner
            if t > 0.4:  # left lobe reaching toward the midline in the upper part
                liver |= _ellipse(x, y, cx - 0.3 * lobe, cy + 0.12, 0.22 * lobe * r, 0.12 * r) & inner
            sl[liver] = hu_liver
            labels[..., k][liver] = 1
        hu[..., k] = sl
    for _ in range(rng.integers(0, 4)):
        candidates = np.argwhere(labels == 1)
        if len(candidates) == 0:
            break
        c = candidates[rng.integers(len(candidates))]
        radius = rng.uniform(0.03, 0.09) * size
        zz = np.arange(slices)[None, None, :]
        ball = ((x[..., None] * size / 2 - (c[0] - size / 2)) ** 2 + (y[..., None] * size / 2 - (c[1] - size / 2)) ** 2
                + ((zz - c[2]) * 2.0) ** 2) <= radius**2
        tumour = ball & (labels > 0)
        hu[tumour] = hu_liver - rng.uniform(25, 45)
        labels[tumour] = 2
    hu += rng.normal(0, 12, hu.shape)
    spacing = (360.0 / size, 360.0 / size, float(rng.choice([2.5, 3.0, 5.0])) * 48 / slices)
    return np.clip(hu, -1024, 3071).astype(np.int16), labels, spacing


def _stored(hu: np.ndarray, labels: np.ndarray, spacing: tuple, index: int) -> tuple:
    """Store the volume in one of three orientations, returning arrays and their affine."""
    affine = np.diag([*spacing, 1.0])
    if index % 3 == 1:  # LPS-like: x and y flipped, as DICOM converters often write
        hu, labels = hu[::-1, ::-1], labels[::-1, ::-1]
        affine[0, 0], affine[1, 1] = -spacing[0], -spacing[1]
        affine[0, 3], affine[1, 3] = spacing[0] * (hu.shape[0] - 1), spacing[1] * (hu.shape[1] - 1)
    elif index % 3 == 2:  # slices stored from superior to inferior
        hu, labels = hu[..., ::-1], labels[..., ::-1]
        affine[2, 2], affine[2, 3] = -spacing[2], spacing[2] * (hu.shape[2] - 1)
    return np.ascontiguousarray(hu), np.ascontiguousarray(labels), affine


def write_phantom(out_dir: Path, volumes: int, *, size: int = 128, slices: int = 48, seed: int = 0) -> Path:
    """Write ``volumes`` phantom cases into ``out_dir`` (LiTS layout), atomically.

    The folder is built under a temporary name and renamed when complete; an existing complete
    folder with the same parameters is reused as is.

    Returns:
        ``out_dir``.
    """
    params = {"version": VERSION, "volumes": volumes, "size": size, "slices": slices, "seed": seed}
    return write_volumes(out_dir, params, lambda i: phantom_volume(seed, i, size, slices))


def write_volumes(out_dir: Path, params: dict, make_volume: Callable[[int], tuple]) -> Path:
    """Write ``params["volumes"]`` cases made by ``make_volume(index) -> (hu, labels, spacing)``.

    The writer shared by the phantoms: each case is stored in one of three orientations
    (:func:`_stored`) as ``volume-N.nii.gz`` and ``segmentation-N.nii.gz``, and ``params`` as
    ``phantom.json``; the folder is built under a temporary name and renamed when complete, and a
    complete folder whose ``phantom.json`` equals ``params`` is reused as is.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    manifest = out_dir / "phantom.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == params:
        return out_dir

    def write(tmp: Path) -> None:
        tmp.mkdir()
        for i in range(params["volumes"]):
            hu, labels, spacing = make_volume(i)
            hu, labels, affine = _stored(hu, labels, spacing, i)
            nib.save(nib.Nifti1Image(hu, affine), tmp / f"volume-{i}.nii.gz")
            nib.save(nib.Nifti1Image(labels, affine), tmp / f"segmentation-{i}.nii.gz")
        (tmp / "phantom.json").write_text(json.dumps(params))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir, write)
    return out_dir
