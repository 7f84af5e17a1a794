"""CT volumes: discovery (LiTS, MSD), loading in one orientation, preprocessing, 2.5D stacking.

Orientation: every volume is brought to the closest canonical (RAS+) orientation with
``nibabel.as_closest_canonical`` and sliced along its third (inferior -> superior) axis, so a
volume stored LPS or superior-first gives the same slices. Arrays are ``(Z, Y, X)``.
:func:`to_original_orientation` undoes this for writing predictions with the input's affine.

Preprocessing (:func:`preprocess`): clip to the HU window, scale to [0, 1], resize each slice to
``img_size`` x ``img_size`` (bilinear with antialiasing for the image, nearest for labels).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

HU_WINDOW = (-160.0, 240.0)  # abdominal soft-tissue window: level 40, width 400
TARGETS = ("liver", "tumor", "multiclass")
_LITS = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")


@dataclass(frozen=True)
class Case:
    """One CT volume and, for training data, its segmentation."""

    case_id: str
    image: Path
    label: Path | None


def find_cases(data_dir: Path, *, require_labels: bool = True) -> list[Case]:
    """Volume/segmentation pairs under ``data_dir``: LiTS (``volume-N`` + ``segmentation-N``,
    anywhere below, paired by N) or MSD (``imagesTr/x.nii.gz`` + ``labelsTr/x.nii.gz``).

    Raises:
        FileNotFoundError: ``data_dir`` is missing, or holds no pair (naming the folder and the
            patterns looked for).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {str(data_dir)!r} is not an existing folder")
    cases: list[Case] = []
    unpaired: list[Case] = []
    segs = {}
    for p in data_dir.rglob("segmentation-*.nii*"):
        m = re.match(r"^segmentation-(\d+)\.nii(\.gz)?$", p.name)
        if m:
            segs[m.group(1)] = p
    for p in sorted(data_dir.rglob("volume-*.nii*")):
        m = _LITS.match(p.name)
        if m:
            label = segs.get(m.group(1))
            (cases if label or not require_labels else unpaired).append(Case(f"lits-{m.group(1)}", p, label))
    for images in sorted(data_dir.rglob("imagesTr")):
        for p in sorted(images.glob("*.nii*")):
            if p.name.startswith("._"):  # macOS metadata files shipped in the MSD archives
                continue
            label = images.parent / "labelsTr" / p.name
            has = label.is_file()
            (cases if has or not require_labels else unpaired).append(Case(f"msd-{p.name.split('.')[0]}", p, label if has else None))
    if unpaired:
        print(f"note: {len(unpaired)} volume(s) without a segmentation skipped, e.g. {unpaired[0].image}")
    if not cases:
        raise FileNotFoundError(
            f"no volume/segmentation pairs under {str(data_dir)!r}: expected LiTS files volume-N.nii[.gz] with "
            "segmentation-N.nii[.gz], or MSD folders imagesTr/ and labelsTr/ with matching names"
        )
    cases.sort(key=lambda c: (c.case_id.split("-")[0], int(c.case_id.split("-")[1]) if c.case_id.split("-")[1].isdigit() else 0, c.case_id))
    return cases


def _load(path: Path) -> nib.Nifti1Image:
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types for unreadable files
        raise ValueError(f"cannot read NIfTI file {str(path)!r}: {type(err).__name__}: {err}") from err
    if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise ValueError(f"{str(path)!r} must be a NIfTI image; nibabel read it as {type(img).__name__}")
    if len(img.shape) != 3:
        raise ValueError(f"{str(path)!r} must hold a 3D volume; received shape {img.shape}")
    return img


def canonical_slices(img: nib.Nifti1Image, path: Path, dtype=np.float32) -> np.ndarray:
    """The image data in RAS+ orientation as ``(Z, Y, X)``."""
    try:
        data = np.asarray(nib.as_closest_canonical(img).dataobj, dtype=dtype)
    except Exception as err:
        raise ValueError(f"cannot read the data of {str(path)!r} (corrupt or truncated?): {type(err).__name__}: {err}") from err
    return np.ascontiguousarray(data.transpose(2, 1, 0))


def slice_count(img: nib.Nifti1Image) -> int:
    """Number of axial slices after reorientation, from the header alone."""
    ornt = nib.orientations.io_orientation(img.affine)
    return int(img.shape[int(np.flatnonzero(ornt[:, 0] == 2)[0])])


def voxel_spacing(img: nib.Nifti1Image) -> tuple[float, float, float]:
    """The voxel size in mm along the ``(Z, Y, X)`` axes of :func:`canonical_slices`, from the affine."""
    sizes = nib.affines.voxel_sizes(img.affine)
    ornt = nib.orientations.io_orientation(img.affine)
    ras = [0.0, 0.0, 0.0]
    for axis, size in enumerate(sizes[:3]):
        ras[int(ornt[axis, 0])] = float(size)
    return ras[2], ras[1], ras[0]


def resized_spacing(spacing_zyx: Sequence[float], shape_zyx: Sequence[int], img_size: int) -> tuple[float, float, float]:
    """The voxel size ``(Z, Y, X)`` in mm after :func:`resize_slices` brings each slice to ``img_size`` squared.

    >>> resized_spacing((2.5, 0.8, 0.7), (40, 512, 480), 256)
    (2.5, 1.6, 1.3125)
    """
    return float(spacing_zyx[0]), spacing_zyx[1] * shape_zyx[1] / img_size, spacing_zyx[2] * shape_zyx[2] / img_size


def open_case(case: Case) -> tuple[nib.Nifti1Image, nib.Nifti1Image | None]:
    """Open the image (and label) headers, checking that their shapes match."""
    img = _load(case.image)
    if case.label is None:
        return img, None
    lab = _load(case.label)
    if lab.shape != img.shape:
        raise ValueError(
            f"segmentation {str(case.label)!r} has shape {lab.shape} but its volume {str(case.image)!r} has shape {img.shape}"
        )
    return img, lab


def load_case(case: Case) -> tuple[np.ndarray, np.ndarray | None, nib.Nifti1Image]:
    """HU ``(Z, Y, X)`` float32, labels ``(Z, Y, X)`` uint8 (or None), and the original image."""
    img, lab = open_case(case)
    hu = canonical_slices(img, case.image)
    labels = None
    if lab is not None and case.label is not None:
        labels = canonical_slices(lab, case.label, np.float32).round().astype(np.uint8)
    return hu, labels, img


def to_original_orientation(mask_zyx: np.ndarray, original: nib.Nifti1Image) -> np.ndarray:
    """Inverse of :func:`canonical_slices`: a ``(Z, Y, X)`` array in the original voxel order."""
    ornt = nib.orientations.io_orientation(original.affine)
    canonical = mask_zyx.transpose(2, 1, 0)
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), ornt)
    return nib.orientations.apply_orientation(canonical, back)


def window(hu: np.ndarray, hu_window: Sequence[float] = HU_WINDOW) -> np.ndarray:
    """Clip to ``[low, high]`` HU and scale linearly to [0, 1] (float32)."""
    low, high = float(hu_window[0]), float(hu_window[1])
    if not high > low:
        raise ValueError(f"hu_window must be (low, high) with high > low; received {tuple(hu_window)}")
    return ((np.clip(hu, low, high) - low) / (high - low)).astype(np.float32)


def resize_slices(volume: np.ndarray, img_size: int, *, labels: bool = False) -> np.ndarray:
    """Resize every ``(Y, X)`` slice of a ``(Z, Y, X)`` array to ``img_size`` squared."""
    t = torch.from_numpy(np.ascontiguousarray(volume)).float()[:, None]
    if tuple(t.shape[-2:]) != (img_size, img_size):
        if labels:
            t = F.interpolate(t, size=(img_size, img_size), mode="nearest-exact")
        else:
            t = F.interpolate(t, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True)
    out = t[:, 0].numpy()
    return out.round().astype(np.uint8) if labels else out


def preprocess(hu: np.ndarray, img_size: int, hu_window: Sequence[float] = HU_WINDOW) -> np.ndarray:
    """Window then resize: ``(Z, Y, X)`` HU -> ``(Z, img_size, img_size)`` float32 in [0, 1]."""
    return resize_slices(window(hu, hu_window), img_size)


def stack_25d(volume: np.ndarray, index: int) -> np.ndarray:
    """Slices ``index - 1, index, index + 1`` of ``(Z, H, W)`` as 3 channels.

    At the first and last slice the missing neighbour is replaced by the edge slice itself
    (replicate padding), so every slice gets a full stack.
    """
    last = volume.shape[0] - 1
    if not 0 <= index <= last:
        raise IndexError(f"slice index must be in [0, {last}]; received {index}")
    return np.stack([volume[max(index - 1, 0)], volume[index], volume[min(index + 1, last)]])


def make_target(labels: np.ndarray, target: str) -> np.ndarray:
    """LiTS labels (0, 1 liver, 2 tumour) -> the training target.

    ``liver``: liver and tumour together (binary, as in the experiment); ``tumor``: tumour only;
    ``multiclass``: the labels as they are.
    """
    if target == "liver":
        return (labels > 0).astype(np.uint8)
    if target == "tumor":
        return (labels == 2).astype(np.uint8)
    if target == "multiclass":
        return labels.astype(np.uint8)
    raise ValueError(f"target must be one of {TARGETS}; received {target!r}")
