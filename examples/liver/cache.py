"""The preprocessed-slice cache: float16 images and uint8 labels in memory-mapped files.

Layout of one cache folder ``<root>/slices-<key>/``: ``images.f16`` ``(S, H, W)`` float16 (every
preprocessed slice of every volume, volume after volume), ``labels.u8`` ``(S, H, W)`` uint8 (the
raw LiTS labels, resized), and ``index.json`` (per case: id, first row, slice count, original
shape; the settings). ``key`` hashes the settings (HU window, image size, format version) and
every source file's path, size and modification time, so a cache is reused exactly when it would
be rebuilt identically.

Atomic build (:func:`liver.atomic.atomic_write`): the folder is written under a temporary name and
renamed when complete, so an interrupted build never leaves a folder that looks finished; leftovers
of dead builds are removed by the next build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from liver.atomic import atomic_write
from liver.data import (
    HU_WINDOW,
    Case,
    load_case,
    make_target,
    open_case,
    preprocess,
    resize_slices,
    slice_count,
    stack_25d,
)

FORMAT = 1


def cache_key(cases: Sequence[Case], img_size: int, hu_window: Sequence[float]) -> str:
    """Hash of the settings and of every source file's path, size and mtime."""
    files = []
    for c in cases:
        for p in (c.image, c.label):
            if p is not None:
                st = Path(p).stat()
                files.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"format": FORMAT, "img_size": img_size, "hu_window": list(map(float, hu_window)), "files": files})
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class SliceCache:
    """A built cache folder; arrays are memory-mapped on first use in each process."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.index = json.loads((self.folder / "index.json").read_text())
        self.img_size = int(self.index["img_size"])
        self.cases: dict[str, dict] = {c["case_id"]: c for c in self.index["cases"]}
        self._images: np.memmap | None = None
        self._labels: np.memmap | None = None

    def __getstate__(self) -> dict:  # do not pickle memmaps into DataLoader workers
        return {**self.__dict__, "_images": None, "_labels": None}

    def _open(self) -> None:
        shape = (int(self.index["total_slices"]), self.img_size, self.img_size)
        self._images = np.memmap(self.folder / "images.f16", np.float16, "r", shape=shape)
        self._labels = np.memmap(self.folder / "labels.u8", np.uint8, "r", shape=shape)

    def volume(self, case_id: str) -> np.ndarray:
        """The preprocessed ``(Z, H, W)`` float16 slices of one case (a memmap view)."""
        if self._images is None:
            self._open()
        c = self.cases[case_id]
        return self._images[c["start"]:c["start"] + c["slices"]]

    def labels(self, case_id: str) -> np.ndarray:
        """The resized ``(Z, H, W)`` uint8 labels of one case (a memmap view)."""
        if self._labels is None:
            self._open()
        c = self.cases[case_id]
        return self._labels[c["start"]:c["start"] + c["slices"]]


def build_cache(cases: Sequence[Case], root: Path, img_size: int, hu_window: Sequence[float] = HU_WINDOW,
                *, progress: bool = True) -> SliceCache:
    """Return the cache for these cases and settings, building it if needed (see module doc)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"slices-{cache_key(cases, img_size, hu_window)}"
    final = root / name
    if (final / "index.json").is_file():
        return SliceCache(final)
    counts = []
    for case in cases:  # headers only: shapes checked, total size known before any data is read
        img, _ = open_case(case)
        counts.append(slice_count(img))

    def build(tmp: Path) -> None:
        tmp.mkdir()
        shape = (sum(counts), img_size, img_size)
        images = np.memmap(tmp / "images.f16", np.float16, "w+", shape=shape)
        labels = np.memmap(tmp / "labels.u8", np.uint8, "w+", shape=shape)
        entries, start = [], 0
        for case, n in tqdm(list(zip(cases, counts, strict=False)), desc="caching slices", unit="vol", disable=not progress):
            hu, lab, _ = load_case(case)
            images[start:start + n] = preprocess(hu, img_size, hu_window).astype(np.float16)
            lab_small = resize_slices(lab, img_size, labels=True)
            labels[start:start + n] = lab_small
            entries.append({"case_id": case.case_id, "image": str(case.image), "label": str(case.label),
                            "start": start, "slices": n, "shape_zyx": list(hu.shape),
                            "liver_slices": np.flatnonzero(lab_small.reshape(n, -1).max(1) > 0).tolist()})
            start += n
        images.flush()
        labels.flush()
        del images, labels
        index = {"format": FORMAT, "img_size": img_size, "hu_window": list(map(float, hu_window)),
                 "total_slices": start, "cases": entries}
        (tmp / "index.json").write_text(json.dumps(index))

    atomic_write(final, build)
    return SliceCache(final)


def epoch_slices(cache: SliceCache, case_ids: Sequence[str], *, neg_ratio: float, seed: int, epoch: int) -> list[tuple]:
    """The ``(case_id, slice)`` pairs of one training epoch.

    Policy for slices without liver: every slice with liver is used each epoch, plus
    ``neg_ratio`` times as many slices without liver drawn at random (fresh each epoch, all of
    them if there are fewer), so the model still learns to predict nothing on them without
    spending most of the epoch there. The order is shuffled; both depend only on seed and epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    pos: list[tuple] = []
    neg: list[tuple] = []
    for cid in case_ids:
        c = cache.cases[cid]
        liver = set(c["liver_slices"])
        for z in range(c["slices"]):
            (pos if z in liver else neg).append((cid, z))
    take = min(len(neg), round(neg_ratio * len(pos)))
    chosen = [neg[i] for i in rng.choice(len(neg), take, replace=False)] if take else []
    items = pos + chosen
    return [items[i] for i in rng.permutation(len(items))]


class SliceDataset(Dataset):
    """2.5D training samples ``(x (3, H, W) float32, y)`` from a :class:`SliceCache`.

    ``y`` is ``(1, H, W)`` float32 for binary targets, ``(H, W)`` int64 for ``multiclass``.
    Safe with DataLoader workers: each worker maps the cache files itself.
    """

    def __init__(self, cache: SliceCache, items: Sequence[tuple], target: str) -> None:
        self.cache, self.items, self.target = cache, list(items), target

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        cid, z = self.items[i]
        x = torch.from_numpy(stack_25d(self.cache.volume(cid), z).astype(np.float32))
        y = make_target(np.asarray(self.cache.labels(cid)[z]), self.target)
        if self.target == "multiclass":
            return x, torch.from_numpy(y.astype(np.int64))
        return x, torch.from_numpy(y.astype(np.float32))[None]
