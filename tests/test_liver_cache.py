"""Liver example: the float16 slice cache (contents, reuse, interrupted build), its distance maps, and the epoch policy."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

import nibabel as nib  # noqa: E402

import liver.cache as cache_mod  # noqa: E402
from liver.atomic import temporary_path  # noqa: E402
from liver.cache import SliceDataset, build_cache, epoch_slices  # noqa: E402
from liver.data import find_cases, load_case, preprocess  # noqa: E402
from liver.phantom import phantom_volume, write_phantom  # noqa: E402
from stableloss import signed_distance_map  # noqa: E402


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = write_phantom(tmp_path_factory.mktemp("phantom") / "p", 3, size=32, slices=8, seed=1)
    return find_cases(folder)


def test_cache_holds_preprocessed_slices(cases, tmp_path):
    cache = build_cache(cases, tmp_path, 32, progress=False)
    for case in cases:
        hu, labels, _ = load_case(case)
        np.testing.assert_allclose(cache.volume(case.case_id), preprocess(hu, 32), atol=1e-3)
        np.testing.assert_array_equal(cache.labels(case.case_id), labels)
        assert cache.volume(case.case_id).dtype == np.float16


def test_cache_is_reused_when_settings_match(cases, tmp_path, monkeypatch):
    first = build_cache(cases, tmp_path, 32, progress=False)

    def fail(case):
        raise AssertionError("cache rebuilt although the settings match")

    monkeypatch.setattr(cache_mod, "load_case", fail)
    assert build_cache(cases, tmp_path, 32, progress=False).folder == first.folder
    with pytest.raises(AssertionError, match="cache rebuilt"):
        build_cache(cases, tmp_path, 32, (-100.0, 300.0), progress=False)  # another window: a new cache


def test_interrupted_build_leaves_no_finished_cache(cases, tmp_path, monkeypatch):
    real = cache_mod.load_case
    calls = []

    def interrupted(case):
        calls.append(case)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(case)

    monkeypatch.setattr(cache_mod, "load_case", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_cache(cases, tmp_path, 32, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither a finished folder nor a temporary one
    monkeypatch.setattr(cache_mod, "load_case", real)
    cache = build_cache(cases, tmp_path, 32, progress=False)
    hu, _, _ = load_case(cases[-1])
    np.testing.assert_allclose(cache.volume(cases[-1].case_id), preprocess(hu, 32), atol=1e-3)


def test_dead_build_leftover_is_removed(cases, tmp_path):
    name = f"slices-{cache_mod.cache_key(cases, 32, (-160.0, 240.0))}"
    leftover = temporary_path(tmp_path / name, pid=999999999)  # a build whose process died
    leftover.mkdir()
    (leftover / "images.f16").write_bytes(b"half written")
    build_cache(cases, tmp_path, 32, progress=False)
    assert not leftover.exists()


def test_epoch_policy_all_liver_slices_and_some_without(cases, tmp_path):
    cache = build_cache(cases, tmp_path, 32, progress=False)
    ids = [c.case_id for c in cases]
    pos = {(cid, z) for cid in ids for z in cache.cases[cid]["liver_slices"]}
    total = sum(cache.cases[cid]["slices"] for cid in ids)
    items = epoch_slices(cache, ids, neg_ratio=0.25, seed=0, epoch=1)
    assert pos <= set(items) and len(set(items)) == len(items)
    assert len(items) - len(pos) == min(total - len(pos), round(0.25 * len(pos)))
    assert items == epoch_slices(cache, ids, neg_ratio=0.25, seed=0, epoch=1)
    assert items != epoch_slices(cache, ids, neg_ratio=0.25, seed=0, epoch=2)


def test_dataset_with_workers_matches_main_process(cases, tmp_path):
    cache = build_cache(cases, tmp_path, 32, progress=False)
    items = epoch_slices(cache, [c.case_id for c in cases], neg_ratio=1.0, seed=0, epoch=1)[:6]
    ds = SliceDataset(cache, items, "liver")
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.shape == (1, 32, 32)
    serial = [b for b in torch.utils.data.DataLoader(ds, batch_size=3)]
    parallel = [b for b in torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)]
    for (xs, ys), (xp, yp) in zip(serial, parallel, strict=False):
        assert torch.equal(xs, xp) and torch.equal(ys, yp)
    _, ym = SliceDataset(cache, items, "multiclass")[0]
    assert ym.shape == (32, 32) and ym.dtype == torch.int64


def _save(folder, index, hu, labels, affine):
    nib.save(nib.Nifti1Image(hu, affine), folder / f"volume-{index}.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), folder / f"segmentation-{index}.nii.gz")


@pytest.fixture(scope="module")
def anisotropic(tmp_path_factory):
    """Two volumes with different anisotropic in-plane pixels and non-square slices, one stored LPS."""
    folder = tmp_path_factory.mktemp("anisotropic")
    hu, labels, _ = phantom_volume(2, 0, 48, 8)  # RAS voxel order (x, y, z)
    lps = np.diag([-0.7, -0.9, 2.5, 1.0])  # x flipped, y flipped: 0.7 mm along x, 0.9 mm along y
    _save(folder, 0, np.ascontiguousarray(hu[::-1, 4:44][:, ::-1]), np.ascontiguousarray(labels[::-1, 4:44][:, ::-1]), lps)
    _save(folder, 1, np.ascontiguousarray(hu[4:44]), np.ascontiguousarray(labels[4:44]), np.diag([1.1, 0.6, 3.0, 1.0]))
    return find_cases(folder)


def test_cache_maps_are_the_slices_signed_distance_maps_in_mm(anisotropic, tmp_path):
    cache = build_cache(anisotropic, tmp_path, 32, maps_for="liver", progress=False)
    # (Z, Y, X) voxel after resizing to 32x32: volume 0 is 48 x 40 (x, y) voxels of 0.7 x 0.9 mm, volume 1 40 x 48 of 1.1 x 0.6
    voxels = {"lits-0": (2.5, 0.9 * 40 / 32, 0.7 * 48 / 32), "lits-1": (3.0, 0.6 * 48 / 32, 1.1 * 40 / 32)}
    for cid, voxel in voxels.items():
        assert cache.voxel_mm(cid) == pytest.approx(voxel)
        labels = np.asarray(cache.labels(cid))
        liver = (labels > 0).reshape(len(labels), -1).any(1)
        assert liver.any() and not liver.all()  # slices with liver and slices without
        expected = signed_distance_map(torch.from_numpy((labels > 0).astype(np.uint8))[:, None], spacing=voxel[1:])
        maps = np.asarray(cache.distance_maps(cid))
        assert maps.dtype == np.float16 and maps.shape == tuple(expected.shape)
        np.testing.assert_allclose(maps.astype(np.float32), expected.numpy(), rtol=2.0**-11, atol=0)  # float16 rounding


def test_multiclass_maps_hold_one_channel_per_class(cases, tmp_path):
    cache = build_cache(cases, tmp_path, 32, maps_for="multiclass", progress=False)
    for case in cases:
        labels = torch.from_numpy(np.asarray(cache.labels(case.case_id)).astype(np.int64))
        expected = signed_distance_map(labels, num_classes=3, spacing=cache.voxel_mm(case.case_id)[1:])
        maps = np.asarray(cache.distance_maps(case.case_id)).astype(np.float32)
        assert maps.shape == (len(labels), 3, 32, 32)
        np.testing.assert_allclose(maps, expected.numpy(), rtol=2.0**-11, atol=0)


def test_maps_join_an_existing_cache_and_are_reused(cases, tmp_path, monkeypatch):
    plain = build_cache(cases, tmp_path, 32, progress=False)
    assert plain.maps_target is None

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although it exists")

    monkeypatch.setattr(cache_mod, "load_case", fail)
    with_maps = build_cache(cases, tmp_path, 32, maps_for="liver", progress=False)  # slices reused, maps built
    assert with_maps.folder == plain.folder and with_maps.maps_target == "liver"
    monkeypatch.setattr(cache_mod, "slice_distance_maps", fail)
    assert build_cache(cases, tmp_path, 32, maps_for="liver", progress=False).maps_folder == with_maps.maps_folder
    with pytest.raises(AssertionError, match="rebuilt although it exists"):
        build_cache(cases, tmp_path, 32, maps_for="tumor", progress=False)  # another target: other maps


def test_interrupted_maps_build_leaves_no_finished_maps(cases, tmp_path, monkeypatch):
    real, calls = cache_mod.slice_distance_maps, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "slice_distance_maps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_cache(cases, tmp_path, 32, maps_for="liver", progress=False)
    assert [p.name.startswith("slices-") for p in tmp_path.iterdir()] == [True]  # the slices survive, no maps folder


def test_maps_that_float16_cannot_hold_are_refused():
    with pytest.raises(ValueError, match=r"spacing \(1000.0, 1000.0\) gives distance maps up to 90509.7, beyond "
                                         r"float16's 65504: express the pixel size in larger units"):
        cache_mod.slice_distance_maps(np.zeros((2, 64, 64), np.uint8), "liver", (1000.0, 1000.0))


def test_dataset_and_loader_pass_the_maps(cases, tmp_path):
    cache = build_cache(cases, tmp_path, 32, maps_for="liver", progress=False)
    items = epoch_slices(cache, [c.case_id for c in cases], neg_ratio=1.0, seed=0, epoch=1)[:6]
    ds = SliceDataset(cache, items, "liver")
    for i, (cid, z) in enumerate(items):
        _, y, phi = ds[i]
        assert phi.dtype == torch.float32 and phi.shape == y.shape == (1, 32, 32)
        assert torch.equal(phi, torch.from_numpy(np.asarray(cache.distance_maps(cid)[z], np.float32)))
    for _, yb, phib in torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2):
        assert phib.shape == (3, 1, 32, 32) and torch.equal(phib < 0, yb == 1)  # negative exactly inside the liver
    with pytest.raises(ValueError, match=r"the cache holds distance maps of target 'liver'; received target 'tumor'"):
        SliceDataset(cache, items, "tumor")


def test_cache_timing_script_runs(tmp_path, capsys):
    import liver_cache_timing

    result = liver_cache_timing.main(["--volumes", "2", "--size", "32", "--slices", "4", "--img-size", "32",
                                      "--repeats", "1", "--json", str(tmp_path / "t.json")])
    out = capsys.readouterr().out
    assert "wall clock: without maps" in out and "ratio" in out
    assert result["wall"]["ratio"] > 0 and json.loads((tmp_path / "t.json").read_text())["volumes"] == 2
