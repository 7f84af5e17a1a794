"""Time of the distance engine: signed distance maps against SciPy, MONAI and kornia, and surface
metrics (HD95) against MONAI, each with its error.

**Signed maps** (``--kinds signed``): every implementation computes the signed distance map of a batch of
binary masks (negative inside: ``-edt(mask)`` inside, ``edt(~mask)`` outside, two Euclidean distance
transforms per image), one blob per image, at ``8x1x256x256``, ``16x1x512x512``, ``1x1x64^3``,
``1x1x96^3`` and ``1x1x128^3`` (``--quick``: small stand-ins of each):

- ``stableloss:auto``: ``stableloss.signed_distance_map(target)``: SciPy on CPU tensors when it
  is installed, the torch transform otherwise and on CUDA;
- ``stableloss:torch``: ``signed_distance_map(target, backend="torch")``, the pure-torch transform;
- ``scipy:2xedt``: ``scipy.ndimage.distance_transform_edt`` twice per image (the baseline; on CUDA
  it includes the copies to the host and back);
- ``monai:edt``: ``monai.transforms.utils.distance_transform_edt`` twice on the ``(N*C, *S)`` batch
  (SciPy underneath on CPU; cuCIM on CUDA when installed, else SciPy through the host);
- ``kornia:cascade``: ``kornia.contrib.distance_transform`` of the mask and of its complement
  (a convolution cascade: an approximation, not Euclidean).

``x_scipy``: median time over SciPy's; ``max_err``: the largest absolute difference from SciPy's
float64 map (from stableloss's torch map when SciPy is missing), in pixels.

**Surface metrics** (``--kinds surface``): the 95th-percentile Hausdorff distance of a prediction with
far false positives against a ball (``bench/_surface.py``) at ``8x1x256x256``, ``1x1x96^3``,
``1x1x128^3`` and ``1x1x256^3``: ``stableloss:auto`` (CPU: k-d trees of SciPy on each row's crop;
CUDA: the batched torch transform), ``stableloss:torch`` (CPU: the torch transform of each crop) and
``monai:hd95`` (``monai.metrics.compute_hausdorff_distance``, the baseline). ``x_monai``: median time
over MONAI's; ``max_err``: the largest absolute difference from MONAI's values.

Time: median and interquartile range of ``--repeats`` calls after ``--warmup`` calls, the
implementations interleaved (A B C A B C ...) so that a shared machine's noise falls on all alike,
with a device sync around each call on CUDA; an implementation whose first call takes longer than
``--budget`` seconds gets fewer timed calls (the ``runs`` column).

Prints the tables and writes ``distance.json`` (rows and metadata) and ``distance.csv`` to ``--out``.

Usage::

    python bench/distance.py --quick                       # seconds, CPU
    python bench/distance.py --threads 1 --clock thread    # the full tables on CPU, one thread
    python bench/distance.py --device cuda
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _surface

import _common as C
import stableloss as sl

SHAPES = {"2d-256": (8, 1, 256, 256), "2d-512": (16, 1, 512, 512), "3d-64": (1, 1, 64, 64, 64),
          "3d-96": (1, 1, 96, 96, 96), "3d-128": (1, 1, 128, 128, 128)}
QUICK_SHAPES = {"2d-256": (4, 1, 64, 64), "2d-512": (2, 1, 96, 96), "3d-64": (1, 1, 16, 16, 16),
                "3d-96": (1, 1, 20, 20, 20), "3d-128": (1, 1, 24, 24, 24)}
IMPLS = ("stableloss:auto", "stableloss:torch", "scipy:2xedt", "monai:edt", "kornia:cascade")
KINDS = ("signed", "surface")
COLUMNS = ("shape", "device", "impl", "ms", "iqr_ms", "min_ms", "runs", "x_scipy", "max_err")
SURFACE_COLUMNS = ("shape", "device", "impl", "ms", "iqr_ms", "min_ms", "runs", "x_monai", "max_err")

MapFn = Callable[[Tensor], Tensor]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small stand-ins for every shape (seconds)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma list of " + ", ".join(KINDS))
    parser.add_argument("--shapes", default=None,
                        help="comma list of shape keys (default: all; signed: " + ", ".join(SHAPES)
                        + "; surface: " + ", ".join(_surface.SHAPES) + ")")
    parser.add_argument("--impls", default=",".join(IMPLS), help="signed maps: comma list of " + ", ".join(IMPLS))
    parser.add_argument("--surface-impls", default=",".join(_surface.IMPLS),
                        help="surface metrics: comma list of " + ", ".join(_surface.IMPLS))
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per implementation (default 7, quick 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per implementation first")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds of timed calls per implementation and shape at most (slow ones get fewer runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall",
                        help="wall time, or this thread's CPU time (CPU only, needs --threads 1)")
    parser.add_argument("--out", default="bench_results", help="output folder (default bench_results/)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 7)
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread needs --threads 1 (it counts the main thread's CPU time only)")
    return args


def build_impls(names: list[str]) -> dict[str, MapFn]:
    """The signed-map implementations asked for and available."""
    unknown = [n for n in names if n not in IMPLS]
    if unknown:
        raise SystemExit(f"--impls must be from {list(IMPLS)}; received {unknown}")
    fns: dict[str, MapFn] = {
        "stableloss:auto": lambda t: sl.signed_distance_map(t, backend="auto"),
        "stableloss:torch": lambda t: sl.signed_distance_map(t, backend="torch"),
    }
    ndimage = C.optional_import("scipy.ndimage")
    if ndimage is not None:
        fns["scipy:2xedt"] = lambda t: _scipy_signed(ndimage, t)
    if C.optional_import("monai") is not None:
        from monai.transforms.utils import distance_transform_edt

        fns["monai:edt"] = lambda t: _monai_signed(distance_transform_edt, t)
    kornia = C.optional_import("kornia")
    if kornia is not None:
        fns["kornia:cascade"] = lambda t: _kornia_signed(kornia, t)
    return {n: fns[n] for n in names if n in fns}


def _scipy_signed(ndimage, target: Tensor) -> Tensor:
    masks = target.detach().cpu().numpy().astype(bool)
    flat = masks.reshape((-1,) + masks.shape[2:])
    out = np.stack([np.where(m, -ndimage.distance_transform_edt(m), ndimage.distance_transform_edt(~m)) for m in flat])
    return torch.from_numpy(out.reshape(masks.shape).astype(np.float32)).to(target.device)


def _monai_signed(edt, target: Tensor) -> Tensor:
    mask = target.flatten(0, 1) > 0.5  # MONAI's transform takes one channel-first sample: (N*C, *S)
    inside, outside = edt(mask), edt(~mask)
    return torch.where(mask, -torch.as_tensor(inside), torch.as_tensor(outside)).float().reshape(target.shape).to(target.device)


def _kornia_signed(kornia, target: Tensor) -> Tensor:
    mask = target.float()
    # kornia measures to the nearest positive pixel: the outside distance from the mask, the inside one from ~mask
    outside = kornia.contrib.distance_transform(mask)
    inside = kornia.contrib.distance_transform(1 - mask)
    return torch.where(mask > 0.5, -inside, outside)


def bench_shape(fns: dict, inputs, label: str, device: torch.device, args, *, baseline: str,
                ratio: str, exact: Tensor) -> list[dict]:
    """Rows for every implementation on ``inputs``: time, spread, ratio to ``baseline``, error to ``exact``."""
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    errors, runs, failed = {}, {}, {}
    for name, fn in list(fns.items()):
        try:
            C.sync(device)
            start = clock()
            out = fn(inputs)
            C.sync(device)
            first = clock() - start
            errors[name] = float((out.float().to(exact.device) - exact).abs().max())
            runs[name] = max(1, min(args.repeats, int(args.budget // max(first, 1e-9))))
            for _ in range(args.warmup - 1 if first > args.budget / args.repeats else args.warmup):
                fn(inputs)
        except Exception as err:  # noqa: BLE001 - an anchor that cannot run here (e.g. a device it does not support)
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"
    times: dict[str, list[float]] = {name: [] for name in errors}
    for i in range(args.repeats):
        for name in errors:
            if i >= runs[name]:
                continue
            C.sync(device)
            start = clock()
            fns[name](inputs)
            C.sync(device)
            times[name].append(clock() - start)
    rows = []
    for name, samples in times.items():
        median, iqr = C.spread(samples)
        rows.append({"shape": label, "device": device.type, "impl": name, "ms": 1e3 * median, "iqr_ms": 1e3 * iqr,
                     "min_ms": 1e3 * min(samples), "runs": len(samples), "max_err": errors[name]})
    base = next((r["ms"] for r in rows if r["impl"] == baseline), None)
    for row in rows:
        row[ratio] = row["ms"] / base if base else None
    rows += [{"shape": label, "device": device.type, "impl": name, "error": why} for name, why in failed.items()]
    return rows


def signed_rows(fns: dict[str, MapFn], shape, device: torch.device, args) -> list[dict]:
    """The signed-map rows at one shape (the error against SciPy's float64 map)."""
    target = C.ball_target(shape, generator=torch.Generator().manual_seed(0))[0].to(device)
    exact = fns["scipy:2xedt"](target) if "scipy:2xedt" in fns else sl.signed_distance_map(target, backend="torch")
    rows = bench_shape(fns, target, "x".join(map(str, shape)), device, args, baseline="scipy:2xedt",
                       ratio="x_scipy", exact=exact)
    return [dict(row, kind="signed") for row in rows]


def surface_rows(fns: dict, shape, device: torch.device, args) -> list[dict]:
    """The HD95 rows at one shape (the error against MONAI's values, else stableloss's automatic ones)."""
    pair = _surface.make_pair(shape, device)
    anchor = _surface.BASELINE if _surface.BASELINE in fns else "stableloss:auto"
    exact = sl.hausdorff_distance(*pair) if anchor not in fns else fns[anchor](pair)
    rows = bench_shape(fns, pair, "x".join(map(str, shape)), device, args, baseline=_surface.BASELINE,
                       ratio="x_monai", exact=exact.float().cpu())
    return [dict(row, kind="surface") for row in rows]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = C.timing_device(args)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise SystemExit(f"--kinds must be a comma list of {list(KINDS)}; received {args.kinds!r}")
    tables = {"signed": QUICK_SHAPES if args.quick else SHAPES,
              "surface": _surface.QUICK_SHAPES if args.quick else _surface.SHAPES}
    keys = None if args.shapes is None else [k.strip() for k in args.shapes.split(",") if k.strip()]
    if keys is not None:
        unknown = [k for k in keys if not any(k in tables[kind] for kind in kinds)]
        if unknown:
            raise SystemExit(f"--shapes must be from {sorted(set().union(*(tables[k] for k in kinds)))}; "
                             f"received {unknown}")
    meta = C.metadata(device)
    for name in ("scipy", "kornia"):
        mod = sys.modules.get(name)
        meta["versions"][name] = getattr(mod, "__version__", None) if mod else None
    meta.update(clock=args.clock, repeats=args.repeats, warmup=args.warmup, budget_s=args.budget)
    print(f"device {meta['device']} ({meta['device_name']}), torch {torch.__version__}, {meta['torch_threads']} threads, "
          f"up to {args.repeats} timed calls after {args.warmup} warm-up, {args.clock} clock, commit {meta['commit']}")
    rows: list[dict] = []
    if "signed" in kinds:
        fns = build_impls([n.strip() for n in args.impls.split(",") if n.strip()])
        for key, shape in tables["signed"].items():
            if keys is None or key in keys:
                rows.extend(signed_rows(fns, shape, device, args))
        print("signed distance maps (x_scipy: time over SciPy's two EDTs)")
        print(C.format_table([r for r in rows if "ms" in r and r["kind"] == "signed"], COLUMNS))
    if "surface" in kinds:
        surface_fns = _surface.build_impls([n.strip() for n in args.surface_impls.split(",") if n.strip()])
        for key, shape in tables["surface"].items():
            if keys is None or key in keys:
                rows.extend(surface_rows(surface_fns, shape, device, args))
        print("surface metrics, HD95 (x_monai: time over MONAI's compute_hausdorff_distance)")
        print(C.format_table([r for r in rows if "ms" in r and r["kind"] == "surface"], SURFACE_COLUMNS))
    for row in rows:
        if "error" in row:
            print(f"skipped {row['impl']} at {row['shape']}: {row['error']}")
    _print_targets(rows)
    os.makedirs(args.out, exist_ok=True)
    C.atomic_write(os.path.join(args.out, "distance.json"), json.dumps({"metadata": meta, "rows": rows}, indent=1))
    C.atomic_write(os.path.join(args.out, "distance.csv"), _csv(rows))
    print(f"wrote {os.path.join(args.out, 'distance.json')} and distance.csv")
    return 0


def _print_targets(rows: list[dict]) -> None:
    """Issue 17's CPU targets: signed maps with the torch backend at most 2x SciPy's two EDTs, surface
    metrics at most 1.0x MONAI's time."""
    for row in rows:
        if row.get("device") != "cpu" or "ms" not in row:
            continue
        if row["kind"] == "signed" and row["impl"] == "stableloss:torch" and row.get("x_scipy") is not None:
            verdict = "meets" if row["x_scipy"] <= 2 else "misses"
            print(f"target (signed map, torch backend <= 2x scipy) at {row['shape']}: {row['x_scipy']:.2f}x, {verdict} it")
        if row["kind"] == "surface" and row["impl"] == "stableloss:auto" and row.get("x_monai") is not None:
            verdict = "meets" if row["x_monai"] <= 1 else "misses"
            print(f"target (HD95 <= 1.0x MONAI) at {row['shape']}: {row['x_monai']:.2f}x, {verdict} it")


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["kind"] + list(COLUMNS) + ["x_monai", "error"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
