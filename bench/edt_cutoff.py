"""Where the torch distance transform should switch from "dense" to "envelope": both timed per size.

The exact transform (``stableloss._edt``) scans the last axis, then takes every other axis with one of
two algorithms: ``dense`` (the minimum over every position at once, O(n^2) per line, branch-free) or
``envelope`` (Felzenszwalb-Huttenlocher's lower envelope, O(n) per line but one Python step per
position). Which is faster depends on the line length ``n`` and on how many lines ``L`` share each
step. This script times both, forced on every axis, on the signed-map workload (each image's mask and
its complement, ``L`` counts both) over a grid of 2-D and 3-D sizes, and prints each ratio beside the
algorithm :func:`stableloss._edt.default_algorithm` picks, so a cutoff is read from measurement.

Usage::

    python bench/edt_cutoff.py --threads 1 --clock thread     # the CPU grid
    python bench/edt_cutoff.py --device cuda                  # the CUDA grid
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C
from stableloss import _edt

GRID = {
    "cpu": [(8, 1, 32, 32), (8, 1, 48, 48), (8, 1, 64, 64), (8, 1, 96, 96), (1, 1, 64, 64), (1, 1, 128, 128),
            (32, 1, 64, 64), (1, 1, 16, 16, 16), (1, 1, 24, 24, 24), (1, 1, 32, 32, 32), (1, 1, 48, 48, 48),
            (4, 1, 32, 32, 32)],
    "cuda": [(8, 1, 256, 256), (8, 1, 512, 512), (8, 1, 1024, 1024), (2, 1, 2048, 2048), (1, 1, 64, 64, 64),
             (1, 1, 128, 128, 128), (1, 1, 256, 256, 256)],
}
QUICK = [(2, 1, 16, 16), (1, 1, 8, 8, 8)]
COLUMNS = ("shape", "device", "n", "lines", "dense_ms", "envelope_ms", "dense_over_envelope", "default", "faster")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--quick", action="store_true", help="two tiny sizes (seconds)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per algorithm and size (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall",
                        help="wall time, or this thread's CPU time (CPU only, needs --threads 1)")
    parser.add_argument("--out", default="bench_results", help="output folder (default bench_results/)")
    args = parser.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread needs --threads 1 (it counts the main thread's CPU time only)")
    return args


def time_algorithm(seeds: torch.Tensor, spacing: list[float], algorithm: str, device: torch.device, args) -> float:
    """Median milliseconds of the squared transform with ``algorithm`` on every axis after the first."""
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    _edt.squared_distance_to_seeds(seeds, spacing, algorithm=algorithm)  # warm-up
    samples = []
    for _ in range(args.repeats):
        C.sync(device)
        start = clock()
        _edt.squared_distance_to_seeds(seeds, spacing, algorithm=algorithm)
        C.sync(device)
        samples.append(clock() - start)
    return 1e3 * C.spread(samples)[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = C.timing_device(args)
    grid = QUICK if args.quick else GRID["cpu" if device.type == "cpu" else "cuda"]
    meta = C.metadata(device)
    meta.update(clock=args.clock, repeats=args.repeats)
    rows = []
    for shape in grid:
        mask = C.ball_target(shape, generator=torch.Generator().manual_seed(0))[0].bool().to(device)
        seeds = torch.cat([mask, ~mask])[:, 0]  # the signed map's two transforms per image
        n = shape[2]
        lines = seeds.numel() // n
        spacing = [1.0] * (len(shape) - 2)
        dense = time_algorithm(seeds, spacing, "dense", device, args)
        envelope = time_algorithm(seeds, spacing, "envelope", device, args)
        rows.append({"shape": "x".join(map(str, shape)), "device": device.type, "n": n, "lines": lines,
                     "dense_ms": dense, "envelope_ms": envelope, "dense_over_envelope": dense / envelope,
                     "default": _edt.default_algorithm(device, n, lines),
                     "faster": "dense" if dense < envelope else "envelope"})
        print(f"{rows[-1]['shape']}: dense {dense:.1f} ms, envelope {envelope:.1f} ms", flush=True)
    print(f"device {meta['device']} ({meta['device_name']}), torch {torch.__version__}, {meta['torch_threads']} threads, "
          f"{args.clock} clock, median of {args.repeats}")
    print(C.format_table(rows, COLUMNS))
    agree = sum(r["default"] == r["faster"] for r in rows)
    print(f"the default picks the faster algorithm at {agree} of {len(rows)} sizes")
    os.makedirs(args.out, exist_ok=True)
    C.atomic_write(os.path.join(args.out, "edt_cutoff.json"), json.dumps({"metadata": meta, "rows": rows}, indent=1))
    print(f"wrote {os.path.join(args.out, 'edt_cutoff.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
