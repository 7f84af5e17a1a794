"""Time the liver example's slice cache with and without the targets' distance maps.

    python examples/liver_cache_timing.py                 # the default phantom: 16 x 128x128x48, slices at 96x96
    python examples/liver_cache_timing.py --data-dir /data/LiTS --img-size 256 --repeats 3

Each repeat builds the cache from nothing twice, into fresh folders: once without maps and once
with them (the slices, then the maps), in alternating order, in this one process; the script prints
the median of each over the repeats and their ratio, on the wall clock and on this process's CPU
clock (the time other jobs hold the cores is left out of the second). The phantom is generated once
beforehand and is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from liver.cache import build_cache
from liver.data import HU_WINDOW, TARGETS, find_cases
from liver.phantom import write_phantom


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, help="real CT (LiTS/MSD); default: a phantom in a temporary folder")
    p.add_argument("--volumes", type=int, default=16, help="phantom volumes (default %(default)s)")
    p.add_argument("--size", type=int, default=128, help="phantom in-plane voxels (default %(default)s)")
    p.add_argument("--slices", type=int, default=48, help="phantom slices (default %(default)s)")
    p.add_argument("--img-size", type=int, default=96, help="cached slice size (default %(default)s)")
    p.add_argument("--target", choices=TARGETS, default="liver")
    p.add_argument("--repeats", type=int, default=5, help="builds of each kind (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def time_build(cases, root: Path, args: argparse.Namespace, maps: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one build from nothing into ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    wall, cpu = time.perf_counter(), time.process_time()
    build_cache(cases, root, args.img_size, HU_WINDOW, maps_for=args.target if maps else None, progress=False)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="liver-cache-timing-") as tmp:
        data = args.data_dir or write_phantom(Path(tmp) / "phantom", args.volumes, size=args.size, slices=args.slices)
        cases = find_cases(data)
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for r in range(args.repeats):
            for maps in ((False, True) if r % 2 == 0 else (True, False)):
                times[maps].append(time_build(cases, Path(tmp) / f"cache-{int(maps)}", args, maps))
        result = {"volumes": len(cases), "img_size": args.img_size, "target": args.target, "repeats": args.repeats,
                  "threads": args.threads, "load_average_before": load,
                  "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
                  "python": sys.version.split()[0], "torch": torch.__version__, "machine": platform.platform()}
        for k, clock in enumerate(("wall", "cpu")):
            without = statistics.median(t[k] for t in times[False])
            with_maps = statistics.median(t[k] for t in times[True])
            result[clock] = {"without_maps_s": round(without, 3), "with_maps_s": round(with_maps, 3),
                             "ratio": round(with_maps / without, 3)}
    print(f"{result['volumes']} volumes at {args.img_size}x{args.img_size}, maps of target {args.target!r}, "
          f"median of {args.repeats} builds each, {args.threads} thread(s), load average {load}")
    for clock in ("wall", "cpu"):
        r = result[clock]
        print(f"{clock:4s} clock: without maps {r['without_maps_s']:.3f} s | with maps {r['with_maps_s']:.3f} s | "
              f"ratio {r['ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
