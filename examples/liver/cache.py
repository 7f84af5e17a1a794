"""The preprocessed-slice cache: float16 images, uint8 labels and float16 distance maps, memory-mapped.

Layout of one cache folder ``<root>/slices-<key>/``: ``images.f16`` ``(S, H, W)`` float16 (every
preprocessed slice of every volume, volume after volume), ``labels.u8`` ``(S, H, W)`` uint8 (the
raw LiTS labels, resized), and ``index.json`` (per case: id, first row, slice count, original
shape, voxel size in mm before and after resizing; the settings). ``key`` hashes the settings (HU
window, image size, format version) and every source file's path, size and modification time, so a
cache is reused exactly when it would be rebuilt identically.

Target distance maps, for the losses that use them, live beside it in ``<root>/maps-<key>-<target>/``:
``maps.f16`` ``(S, C, H, W)`` float16, the signed distance map of every slice's target
(:func:`stableloss.signed_distance_map`, ``C`` = 1, or 3 for ``multiclass``), in mm from the slice's
own pixel size after resizing, built once from the cached labels (:func:`slice_distance_maps`). A
cache without maps is reused as is when maps are first needed. float16 holds them: a map lies in
``[-B, B]`` with ``B`` the slice's extent diagonal (about 510 mm for the phantom, 500-700 mm for CT),
far below float16's 65504, and its relative rounding error is at most 2^-11 (0.25 mm at 500 mm,
0.002 mm near the surface, where the maps matter most); a slice whose ``B`` would not fit is refused.

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
    TARGETS,
    Case,
    load_case,
    make_target,
    open_case,
    preprocess,
    resize_slices,
    resized_spacing,
    slice_count,
    stack_25d,
    voxel_spacing,
)
from stableloss import signed_distance_map
from stableloss.distance import extent_diagonal

FORMAT = 2  # 2: voxel sizes in the index
MAPS_FORMAT = 1
FLOAT16_MAX = float(np.finfo(np.float16).max)


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
    """A built cache folder (and its maps folder, if any); arrays are memory-mapped on first use in each process."""

    def __init__(self, folder: Path, maps_folder: Path | None = None) -> None:
        self.folder = Path(folder)
        self.index = json.loads((self.folder / "index.json").read_text())
        self.img_size = int(self.index["img_size"])
        self.cases: dict[str, dict] = {c["case_id"]: c for c in self.index["cases"]}
        self.maps_folder = None if maps_folder is None else Path(maps_folder)
        self.maps_index = None if maps_folder is None else json.loads((Path(maps_folder) / "index.json").read_text())
        self._images: np.memmap | None = None
        self._labels: np.memmap | None = None
        self._maps: np.memmap | None = None

    def __getstate__(self) -> dict:  # do not pickle memmaps into DataLoader workers
        return {**self.__dict__, "_images": None, "_labels": None, "_maps": None}

    @property
    def maps_target(self) -> str | None:
        """The target whose distance maps this cache holds, or None without maps."""
        return None if self.maps_index is None else self.maps_index["target"]

    def voxel_mm(self, case_id: str) -> tuple[float, float, float]:
        """The ``(Z, Y, X)`` voxel size in mm of the cached (resized) slices of one case."""
        return tuple(self.cases[case_id]["voxel_mm"])  # type: ignore[return-value]

    def distance_maps(self, case_id: str) -> np.ndarray:
        """The ``(Z, C, H, W)`` float16 signed distance maps (mm) of one case's slices (a memmap view)."""
        if self.maps_index is None:
            raise ValueError(f"cache {str(self.folder)!r} was opened without distance maps")
        if self._maps is None:
            shape = (int(self.index["total_slices"]), int(self.maps_index["channels"]), self.img_size, self.img_size)
            self._maps = np.memmap(self.maps_folder / "maps.f16", np.float16, "r", shape=shape)  # type: ignore[operator]
        c = self.cases[case_id]
        return self._maps[c["start"]:c["start"] + c["slices"]]

    def _open(self) -> tuple[np.memmap, np.memmap]:
        shape = (int(self.index["total_slices"]), self.img_size, self.img_size)
        self._images = np.memmap(self.folder / "images.f16", np.float16, "r", shape=shape)
        self._labels = np.memmap(self.folder / "labels.u8", np.uint8, "r", shape=shape)
        return self._images, self._labels

    def volume(self, case_id: str) -> np.ndarray:
        """The preprocessed ``(Z, H, W)`` float16 slices of one case (a memmap view)."""
        images = self._images if self._images is not None else self._open()[0]
        c = self.cases[case_id]
        return images[c["start"]:c["start"] + c["slices"]]

    def labels(self, case_id: str) -> np.ndarray:
        """The resized ``(Z, H, W)`` uint8 labels of one case (a memmap view)."""
        labels = self._labels if self._labels is not None else self._open()[1]
        c = self.cases[case_id]
        return labels[c["start"]:c["start"] + c["slices"]]


def build_cache(cases: Sequence[Case], root: Path, img_size: int, hu_window: Sequence[float] = HU_WINDOW,
                *, maps_for: str | None = None, progress: bool = True) -> SliceCache:
    """Return the cache for these cases and settings, building it if needed (see module doc).

    Args:
        maps_for: A target (:data:`liver.data.TARGETS`): also build (or reuse) the signed distance
            maps of that target's slices. None: no maps.
    """
    cache = _build_slices(cases, root, img_size, hu_window, progress=progress)
    return cache if maps_for is None else _build_maps(cache, maps_for, progress=progress)


def _build_slices(cases: Sequence[Case], root: Path, img_size: int, hu_window: Sequence[float], *,
                  progress: bool) -> SliceCache:
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
        for case, n in tqdm(list(zip(cases, counts, strict=True)), desc="caching slices", unit="vol", disable=not progress):
            hu, lab, img = load_case(case)
            if lab is None:
                raise ValueError(f"case {case.case_id!r} has no segmentation; the training cache needs one per volume")
            images[start:start + n] = preprocess(hu, img_size, hu_window).astype(np.float16)
            lab_small = resize_slices(lab, img_size, labels=True)
            labels[start:start + n] = lab_small
            spacing = voxel_spacing(img)
            entries.append({"case_id": case.case_id, "image": str(case.image), "label": str(case.label),
                            "start": start, "slices": n, "shape_zyx": list(hu.shape),
                            "source_voxel_mm": list(spacing), "voxel_mm": list(resized_spacing(spacing, hu.shape, img_size)),
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


def slice_distance_maps(labels: np.ndarray, target: str, spacing: Sequence[float]) -> np.ndarray:
    """Signed distance maps of each slice's target: ``(Z, H, W)`` labels -> ``(Z, C, H, W)`` float16, in mm.

    :func:`stableloss.signed_distance_map` per slice (2D, ``spacing`` = the slice's ``(row, column)``
    pixel size, ``inside_shift=0``, ``no_surface="bound"``), of :func:`liver.data.make_target`'s
    target: one channel for ``liver`` and ``tumor``, one per class (3) for ``multiclass``. Slices
    without any target pixel all have the same map (the no-surface bound), computed once.

    Raises:
        ValueError: the slice's extent diagonal (the maps' bound) does not fit in float16.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; received {target!r}")
    bound = extent_diagonal(labels.shape[1:], spacing)
    if not bound < FLOAT16_MAX:
        raise ValueError(f"spacing {tuple(spacing)} gives distance maps up to {bound:.6g}, beyond float16's "
                         f"{FLOAT16_MAX:g}: express the pixel size in larger units")
    t = torch.from_numpy(make_target(labels, target))
    multiclass = target == "multiclass"

    def maps(mask: torch.Tensor) -> np.ndarray:
        if multiclass:
            phi = signed_distance_map(mask.long(), num_classes=3, spacing=tuple(spacing))
        else:
            phi = signed_distance_map(mask[:, None], spacing=tuple(spacing), validate_args=False)
        return phi.numpy().astype(np.float16)

    present = (t.reshape(len(t), -1) > 0).any(1).numpy()
    out = np.empty((len(t), 3 if multiclass else 1, *labels.shape[1:]), np.float16)
    if present.any():
        out[present] = maps(t[present])
    if not present.all():
        out[~present] = maps(t[~present][:1])
    return out


def _build_maps(cache: SliceCache, target: str, *, progress: bool) -> SliceCache:
    """``cache`` with the distance maps of ``target`` attached, built next to it if needed (module doc)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; received {target!r}")
    key = cache.folder.name.removeprefix("slices-")
    final = cache.folder.parent / f"maps-{key}-{target}"
    if (final / "index.json").is_file():
        return SliceCache(cache.folder, final)
    channels = 3 if target == "multiclass" else 1

    def build(tmp: Path) -> None:
        tmp.mkdir()
        shape = (int(cache.index["total_slices"]), channels, cache.img_size, cache.img_size)
        maps = np.memmap(tmp / "maps.f16", np.float16, "w+", shape=shape)
        for cid, c in tqdm(cache.cases.items(), desc="distance maps", unit="vol", disable=not progress):
            maps[c["start"]:c["start"] + c["slices"]] = slice_distance_maps(np.asarray(cache.labels(cid)), target,
                                                                            cache.voxel_mm(cid)[1:])
        maps.flush()
        del maps
        index = {"format": MAPS_FORMAT, "target": target, "channels": channels, "slices": cache.folder.name,
                 "units": "mm", "map": "stableloss.signed_distance_map, inside_shift=0, no_surface='bound'"}
        (tmp / "index.json").write_text(json.dumps(index))

    atomic_write(final, build)
    return SliceCache(cache.folder, final)


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
    """2.5D training samples ``(x (3, H, W) float32, y)``, or ``(x, y, phi)``, from a :class:`SliceCache`.

    ``y`` is ``(1, H, W)`` float32 for binary targets, ``(H, W)`` int64 for ``multiclass``; ``phi``,
    when the cache holds distance maps, is the target's ``(C, H, W)`` float32 signed distance map in mm.
    Safe with DataLoader workers: each worker maps the cache files itself.

    Raises:
        ValueError: the cache's maps are of another target.
    """

    def __init__(self, cache: SliceCache, items: Sequence[tuple], target: str) -> None:
        if cache.maps_target is not None and cache.maps_target != target:
            raise ValueError(f"the cache holds distance maps of target {cache.maps_target!r}; received target {target!r}")
        self.cache, self.items, self.target = cache, list(items), target

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        cid, z = self.items[i]
        x = torch.from_numpy(stack_25d(self.cache.volume(cid), z).astype(np.float32))
        t = make_target(np.asarray(self.cache.labels(cid)[z]), self.target)
        y = torch.from_numpy(t.astype(np.int64)) if self.target == "multiclass" else torch.from_numpy(t.astype(np.float32))[None]
        if self.cache.maps_target is None:
            return x, y
        return x, y, torch.from_numpy(self.cache.distance_maps(cid)[z].astype(np.float32))
