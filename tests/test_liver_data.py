"""Liver example, data path: NIfTI round trip, orientation, windowing, 2.5D stacking, bad input."""

import gzip

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

from liver.data import Case, find_cases, load_case, make_target, stack_25d, to_original_orientation, window  # noqa: E402


def _save(path, array, affine):
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _lps(array, spacing=(2.0, 3.0, 5.0)):
    """The same anatomy stored with x and y flipped and the slices reversed, and its affine."""
    affine = np.diag([-spacing[0], -spacing[1], -spacing[2], 1.0])
    affine[:3, 3] = [spacing[i] * (array.shape[i] - 1) for i in range(3)]
    return np.ascontiguousarray(array[::-1, ::-1, ::-1]), affine


def test_nifti_round_trip_any_orientation_gives_same_slices(tmp_path):
    ras = np.random.default_rng(0).integers(-1000, 1000, (6, 5, 4)).astype(np.int16)
    _save(tmp_path / "volume-0.nii.gz", ras, np.diag([2.0, 3.0, 5.0, 1.0]))
    flipped, affine = _lps(ras)
    _save(tmp_path / "volume-1.nii.gz", flipped, affine)
    a, _, _ = load_case(Case("a", tmp_path / "volume-0.nii.gz", None))
    b, _, original = load_case(Case("b", tmp_path / "volume-1.nii.gz", None))
    assert a.shape == (4, 5, 6)  # (Z, Y, X)
    np.testing.assert_array_equal(a, ras.transpose(2, 1, 0))
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(to_original_orientation(b, original), flipped)


def test_stack_25d_repeats_edge_slices():
    volume = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 2), np.float32)
    assert stack_25d(volume, 0)[:, 0, 0].tolist() == [0, 0, 1]
    assert stack_25d(volume, 2)[:, 0, 0].tolist() == [1, 2, 3]
    assert stack_25d(volume, 4)[:, 0, 0].tolist() == [3, 4, 4]
    with pytest.raises(IndexError, match=r"\[0, 4\]; received 5"):
        stack_25d(volume, 5)


def test_window_clips_and_scales():
    out = window(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0]), (-160, 240))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"hu_window .* received \(10.0, 10.0\)"):
        window(np.zeros(3), (10.0, 10.0))


def test_make_target_liver_tumor_multiclass():
    labels = np.array([0, 1, 2], np.uint8)
    assert make_target(labels, "liver").tolist() == [0, 1, 1]
    assert make_target(labels, "tumor").tolist() == [0, 0, 1]
    assert make_target(labels, "multiclass").tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="received 'lung'"):
        make_target(labels, "lung")


def test_find_cases_lits_nested_and_msd(tmp_path):
    vol = np.zeros((4, 4, 3), np.int16)
    (tmp_path / "batch1").mkdir()
    for n, folder in ((10, tmp_path / "batch1"), (2, tmp_path)):
        _save(folder / f"volume-{n}.nii", vol, np.eye(4))
        _save(folder / f"segmentation-{n}.nii", vol.astype(np.uint8), np.eye(4))
    for sub in ("Task03_Liver/imagesTr", "Task03_Liver/labelsTr"):
        (tmp_path / sub).mkdir(parents=True)
        _save(tmp_path / sub / "liver_7.nii.gz", vol, np.eye(4))
    cases = find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["lits-2", "lits-10", "msd-liver_7"]
    assert cases[1].label == tmp_path / "batch1" / "segmentation-10.nii"


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_cases(tmp_path / "nowhere")


def test_no_pairs_names_the_folder(tmp_path):
    _save(tmp_path / "volume-0.nii.gz", np.zeros((2, 2, 2), np.int16), np.eye(4))
    with pytest.raises(FileNotFoundError, match=f"no volume/segmentation pairs under '{tmp_path}'"):
        find_cases(tmp_path)


def test_mask_shape_mismatch_names_both_files(tmp_path):
    _save(tmp_path / "volume-0.nii.gz", np.zeros((4, 4, 3), np.int16), np.eye(4))
    _save(tmp_path / "segmentation-0.nii.gz", np.zeros((4, 4, 2), np.uint8), np.eye(4))
    (case,) = find_cases(tmp_path)
    with pytest.raises(ValueError, match=r"segmentation-0.nii.gz' has shape \(4, 4, 2\) but its volume .*volume-0.nii.gz"):
        load_case(case)


def test_corrupt_header_names_the_file(tmp_path):
    bad = tmp_path / "volume-0.nii.gz"
    bad.write_bytes(gzip.compress(b"this is not a NIfTI file" * 20))
    with pytest.raises(ValueError, match=f"cannot read NIfTI file '{bad}'"):
        load_case(Case("x", bad, None))


def test_truncated_data_names_the_file(tmp_path):
    path = tmp_path / "volume-0.nii"
    _save(path, np.ones((32, 32, 16), np.int16), np.eye(4))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=f"cannot read the data of '{path}'"):
        load_case(Case("x", path, None))
