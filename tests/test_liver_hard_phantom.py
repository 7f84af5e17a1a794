"""Liver example, issue 18: the hard phantom (deterministic, distractors in the liver's window), the
default phantom unchanged, and the presets that select them."""

import hashlib
import json

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
ndimage = pytest.importorskip("scipy.ndimage")

from liver.config import HARD_LOW_DATA, parse_args  # noqa: E402
from liver.hard_phantom import PARTS, hard_phantom_case, hard_phantom_volume, write_hard_phantom  # noqa: E402
from liver.phantom import phantom_volume, write_phantom  # noqa: E402

# SHA-256 of phantom_volume's (hu, labels, spacing) bytes, computed with the phantom as it was before issue 18
# (commit b575fd0), so that adding the hard phantom cannot change the default one's volumes.
DEFAULT_DIGESTS = {(0, 0, 32, 8): "64b4e559f7f575dfa5b5924617a0329da4b31af5a0278a2bdaebc02b071ae4c4",
                   (7, 2, 48, 12): "0fea53eb141593702a4a4d295e003dd5fad8aa6abe82ae848730c3d4fef4deae"}


def _digest(hu, labels, spacing):
    h = hashlib.sha256()
    for part in (hu, labels, np.asarray(spacing)):
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("key", sorted(DEFAULT_DIGESTS))
def test_default_phantom_is_unchanged(key):
    seed, index, size, slices = key
    assert _digest(*phantom_volume(seed, index, size=size, slices=slices)) == DEFAULT_DIGESTS[key]


def test_default_phantom_files_are_the_volumes_and_keep_their_manifest(tmp_path):
    out = write_phantom(tmp_path / "p", 2, size=32, slices=8, seed=0)
    assert json.loads((out / "phantom.json").read_text()) == {"version": 1, "volumes": 2, "size": 32, "slices": 8, "seed": 0}
    hu, labels, _ = phantom_volume(0, 0, size=32, slices=8)  # volume 0 is stored as generated (RAS)
    np.testing.assert_array_equal(np.asarray(nib.load(str(out / "volume-0.nii.gz")).dataobj), hu)
    np.testing.assert_array_equal(np.asarray(nib.load(str(out / "segmentation-0.nii.gz")).dataobj), labels)


def test_hard_phantom_is_deterministic_by_seed_and_differs_from_the_default():
    a = hard_phantom_case(3, 1, size=40, slices=12)
    b = hard_phantom_case(3, 1, size=40, slices=12)
    c = hard_phantom_case(4, 1, size=40, slices=12)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.spacing == b.spacing and all(np.array_equal(a.parts[k], b.parts[k]) for k in PARTS)
    assert not np.array_equal(a.hu, c.hu)
    assert not np.array_equal(a.hu, phantom_volume(3, 1, size=40, slices=12)[0])
    hu, labels, spacing = hard_phantom_volume(3, 1, size=40, slices=12)
    np.testing.assert_array_equal(hu, a.hu)
    assert spacing == a.spacing and hu.dtype == np.int16 and labels.dtype == np.uint8


def test_hard_phantom_distractors_sit_in_the_liver_window_far_from_the_liver():
    case = hard_phantom_case(0, 0, size=64, slices=24)
    liver = case.labels == 1
    low, high = np.percentile(case.hu[liver], [5, 95])  # the liver's own intensity window in this volume
    distance = ndimage.distance_transform_edt(case.labels == 0, sampling=case.spacing)
    for name in PARTS:  # each distractor is largely liver-like in intensity (thin walls blur into their content)
        inside = (case.hu[case.parts[name]] >= low) & (case.hu[case.parts[name]] <= high)
        assert case.parts[name].sum() > 100 and inside.mean() > (0.6 if name in ("spleen", "kidneys", "heart") else 0.3), (
            name, inside.mean())
    far = np.zeros_like(liver)
    for name in PARTS:
        far |= case.parts[name] & (distance > 40)
    far_liver_like = far & (case.hu >= low) & (case.hu <= high)
    assert far_liver_like.sum() > 0.2 * liver.sum()  # liver-like voxels more than 40 mm from the liver
    above = slice(int(np.nonzero(liver.any((0, 1)))[0].max()) + 1, None)  # the slices above the liver's dome
    assert case.parts["heart"][..., above].any()


def test_hard_phantom_varies_its_anatomy_noise_and_lesions():
    cases = [hard_phantom_case(0, i, size=48, slices=16) for i in range(6)]
    volumes = [int((c.labels > 0).sum()) for c in cases]
    centres = [np.argwhere(c.labels > 0).mean(0) for c in cases]
    assert max(volumes) > 1.3 * min(volumes)
    assert np.ptp([centre[0] for centre in centres]) > 2  # in-plane position drawn per volume (voxels)
    assert len({round(c.liver_hu) for c in cases}) == len(cases)
    background = [np.std(c.hu[:4, :4, :].astype(float)) for c in cases]  # air corner: noise only
    assert max(background) > 1.5 * min(background)
    lesions = [c.labels == 2 for c in cases]
    assert any(lesion.any() for lesion in lesions)
    for c, lesion in zip(cases, lesions, strict=True):
        if lesion.any():  # low contrast: within 25 HU (plus the blur and noise) of the liver's density
            assert abs(np.median(c.hu[lesion]) - c.liver_hu) < 40


def test_hard_phantom_blurs_the_liver_boundary():
    case = hard_phantom_case(1, 0, size=64, slices=16)
    liver = case.labels > 0
    plane = np.ones((3, 3, 1), bool)  # in-plane: the slices are thicker than the pixels
    rim = liver & ~ndimage.binary_erosion(liver, plane)
    core = ndimage.binary_erosion(liver, plane, iterations=3) & (case.labels == 1)
    assert abs(np.median(case.hu[rim]) - np.median(case.hu[core])) > 10  # the boundary voxels mix in their neighbours


def test_hard_phantom_refuses_sizes_too_small():
    with pytest.raises(ValueError, match=r"size must be >= 16 and slices >= 4; received size=8, slices=8"):
        hard_phantom_case(0, 0, size=8, slices=8)


def test_write_hard_phantom_layout_and_reuse(tmp_path):
    out = write_hard_phantom(tmp_path / "h", 2, size=32, slices=8, seed=5)
    assert json.loads((out / "phantom.json").read_text())["kind"] == "hard"
    mtime = (out / "volume-0.nii.gz").stat().st_mtime_ns
    write_hard_phantom(tmp_path / "h", 2, size=32, slices=8, seed=5)
    assert (out / "volume-0.nii.gz").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(np.asarray(nib.load(str(out / "volume-0.nii.gz")).dataobj),
                                  hard_phantom_case(5, 0, size=32, slices=8).hu)


def test_presets_select_the_phantom_and_the_training_volumes():
    default = parse_args([])
    assert (default.preset, default.phantom, default.train_volumes) == ("default", "default", None)
    hard = parse_args(["--preset", "hard-low-data"])
    assert (hard.phantom, hard.train_volumes, hard.phantom_volumes) == ("hard", 2, HARD_LOW_DATA["phantom_volumes"])
    assert parse_args(["--preset", "hard-low-data", "--train-volumes", "3"]).train_volumes == 3
    assert parse_args(["--quick"]).preset == "quick" and parse_args(["--preset", "quick"]).quick
    assert parse_args(["--phantom", "hard"]).phantom_volumes == 16  # the hard phantom at the default sizes


@pytest.mark.parametrize(("argv", "message"), [
    (["--quick", "--preset", "hard-low-data"], "--quick is --preset quick; it cannot be combined with --preset hard-low-data"),
    (["--train-volumes", "0"], "--train-volumes must be >= 1; received 0"),
])
def test_conflicting_or_bad_preset_options_are_refused(argv, message):
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)
