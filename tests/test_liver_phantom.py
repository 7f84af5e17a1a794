"""Liver example: the synthetic phantom is deterministic and looks like what it claims."""

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from liver.phantom import phantom_volume, write_phantom  # noqa: E402


def test_phantom_is_deterministic_by_seed():
    a = phantom_volume(3, 1, size=48, slices=12)
    b = phantom_volume(3, 1, size=48, slices=12)
    c = phantom_volume(4, 1, size=48, slices=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_phantom_anatomy():
    hu, labels, _ = phantom_volume(0, 0, size=64, slices=32)
    per_slice = labels.reshape(-1, labels.shape[2]).max(0)
    assert 0 < (per_slice > 0).sum() < labels.shape[2]  # liver in only part of the slices
    assert (labels == 2).any()  # seed 0, volume 0 has a tumour
    liver_hu = np.median(hu[labels == 1])
    assert abs(np.median(hu[labels == 2]) - liver_hu) >= 20  # hypodense tumour
    body = hu[hu > -500]
    assert ((body > liver_hu - 30) & (body < liver_hu + 30)).sum() > 1.5 * (labels == 1).sum()  # similar-density tissue


def test_write_phantom_lits_layout_and_reuse(tmp_path):
    out = write_phantom(tmp_path / "p", 2, size=32, slices=8, seed=0)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["phantom.json", "segmentation-0.nii.gz", "segmentation-1.nii.gz", "volume-0.nii.gz", "volume-1.nii.gz"]
    mtime = (out / "volume-0.nii.gz").stat().st_mtime_ns
    write_phantom(tmp_path / "p", 2, size=32, slices=8, seed=0)
    assert (out / "volume-0.nii.gz").stat().st_mtime_ns == mtime
    img = nib.load(str(out / "volume-1.nii.gz"))
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")  # stored flipped, as DICOM converters do
    assert img.get_data_dtype() == np.int16
