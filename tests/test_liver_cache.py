"""Liver example: the float16 slice cache (contents, reuse, interrupted build) and the epoch policy."""

import numpy as np
import pytest
import torch

pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

import liver.cache as cache_mod  # noqa: E402
from liver.atomic import temporary_path  # noqa: E402
from liver.cache import SliceDataset, build_cache, epoch_slices  # noqa: E402
from liver.data import find_cases, load_case, preprocess  # noqa: E402
from liver.phantom import write_phantom  # noqa: E402


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
