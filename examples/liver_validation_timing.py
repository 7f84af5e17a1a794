"""Time the liver example's per-epoch validation scoring (HD95 and ASSD) on the CPU, two routes side by side.

    python examples/liver_validation_timing.py                       # the default run's 4 validation volumes
    python examples/liver_validation_timing.py --img-size 256 --slices 120 --volumes 8

Every epoch the trainer scores each validation volume with
``liver.metrics.surface_distances`` (``stableloss.surface_metrics`` in 3-D, the volume's voxel
spacing). This script times that scoring for one epoch's volumes by two routes, interleaved in this
one process:

- ``cropped``: today's CPU route: each volume cropped to the box of its two masks, the surfaces'
  distances from SciPy's k-d trees (``backend="auto"``), or the torch transform of the crop with
  ``--backend torch``;
- ``batched``: the full-volume torch transform of the batch, which CUDA tensors take, and which the
  CPU took before (the route the metrics used until this change).

The volumes are the example's phantom (liver masks after the same resizing as training); each
prediction is the liver shifted by 2 voxels in-plane plus scattered single-voxel false positives
(1 in 10,000 voxels), the far islands an undertrained network makes. The script prints each route's
median seconds per epoch over ``--repeats``, their ratio and both HD95 values (they must agree), on
the wall clock and on this process's CPU clock.
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import numpy as np
import torch

import stableloss.surface as surface_module
from liver.data import make_target, resize_slices, resized_spacing
from liver.metrics import surface_distances
from liver.phantom import phantom_volume
from stableloss import _surface_stats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--volumes", type=int, default=4, help="validation volumes per epoch (default %(default)s: "
                   "the default run's 16 phantom volumes in 4 folds)")
    p.add_argument("--size", type=int, default=128, help="phantom in-plane voxels (default %(default)s)")
    p.add_argument("--slices", type=int, default=48, help="phantom slices (default %(default)s)")
    p.add_argument("--img-size", type=int, default=96, help="validation slice size (default %(default)s)")
    p.add_argument("--backend", choices=("auto", "torch"), default="auto", help="the cropped route's transform")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per route (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args(argv)
    for name in ("volumes", "size", "slices", "img_size", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1; received {getattr(args, name)}")
    return args


def validation_volumes(args) -> list[tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    """``(pred, true, spacing_zyx)`` per validation volume (module docstring)."""
    volumes = []
    for index in range(args.volumes):
        _, labels, spacing_xyz = phantom_volume(0, index, size=args.size, slices=args.slices)
        labels_zyx = np.ascontiguousarray(labels.transpose(2, 1, 0))
        true = make_target(resize_slices(labels_zyx, args.img_size, labels=True), "liver")
        spacing = resized_spacing(spacing_xyz[::-1], labels_zyx.shape, args.img_size)
        rng = np.random.default_rng(index)
        pred = np.roll(true, 2, axis=2) | (rng.random(true.shape) < 1e-4).astype(np.uint8)
        volumes.append((pred, true, spacing))
    return volumes


def score_epoch(volumes, route: str, backend: str) -> tuple[float, float, float]:
    """Wall and CPU seconds to score every volume by ``route``, and the mean HD95."""
    def batched(pred, target, spacing, q, tau, backend):
        return _surface_stats.batched_stats(pred, target, spacing, q, tau)

    original = surface_module.surface_metrics

    def with_backend(*a, **k):
        return original(*a, **k, backend=backend)

    patches = [mock.patch.object(surface_module, "cropped_stats", batched)] if route == "batched" else []
    patches.append(mock.patch("liver.metrics.surface_metrics", with_backend))
    for patch in patches:
        patch.start()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        hd95 = [surface_distances(pred, true, (1,), spacing)[0] for pred, true, spacing in volumes]
        return time.perf_counter() - wall, time.process_time() - cpu, float(np.mean(hd95))
    finally:
        for patch in reversed(patches):
            patch.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    volumes = validation_volumes(args)
    shape = "x".join(map(str, volumes[0][1].shape))
    print(f"{args.volumes} validation volumes of {shape} (Z, Y, X), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, cropped route backend={args.backend!r}")
    samples: dict[str, list[tuple[float, float, float]]] = {"batched": [], "cropped": []}
    for repeat in range(args.repeats + 1):  # the first pass of each route is a warm-up
        for route in (("batched", "cropped") if repeat % 2 else ("cropped", "batched")):
            result = score_epoch(volumes, route, args.backend)
            if repeat:
                samples[route].append(result)
    medians = {route: [statistics.median(s[i] for s in runs) for i in range(3)] for route, runs in samples.items()}
    for route, (wall, cpu, hd95) in medians.items():
        print(f"{route:8s}: {wall:7.3f} s per epoch (wall), {cpu:7.3f} s (CPU), mean HD95 {hd95:.4f} mm")
    print(f"cropped / batched: {medians['cropped'][0] / medians['batched'][0]:.3f} (wall), "
          f"{medians['cropped'][1] / medians['batched'][1]:.3f} (CPU), median of {args.repeats}")
    if abs(medians["cropped"][2] - medians["batched"][2]) > 1e-3 * max(1.0, medians["batched"][2]):
        raise SystemExit("the two routes disagree on HD95: a bug, not a timing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
