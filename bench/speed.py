"""Forward+backward time and peak extra memory of each loss: stableloss against smp and MONAI.

For each input shape (2D ``16x1x512x512``, 3D ``2x1x128x128x128``; ``--quick``: ``8x1x256x256`` and
``1x1x64x64x64``) and precision (float32; fp16 autocast, where the logits are float16 as an
autocast network produces them), every implementation runs on the same logits and blob target:

- time: median and interquartile range of ``--repeats`` forward+backward passes after
  ``--warmup`` passes, the implementations interleaved (A B C A B C ...) so that the noise of a
  shared machine falls on all of them alike, with a device sync around each pass on CUDA;
- memory: peak bytes allocated during one pass above what was allocated before it (including the
  input's gradient): ``torch.cuda.max_memory_allocated`` on CUDA, the profiler's allocation
  events on CPU;
- ratios: time and memory over the smp implementation of the same loss (smp has no log-cosh
  Dice: its counterpart is ``log(cosh(smp DiceLoss))``; the hybrid is ``0.7 smp Dice + 0.3 smp
  Focal``), and time over the floor, ``sigmoid(x).sum()`` forward+backward, the one elementwise
  pass every probabilistic loss makes at least.

Prints a table and writes ``speed.json`` (rows and the run's metadata: versions, device,
threads, commit) to ``--out``.

Usage::

    python bench/speed.py --quick                     # 8x1x256x256 and 1x1x64^3, a few minutes on CPU
    python bench/speed.py                             # 16x1x512x512 and 2x1x128^3
    python bench/speed.py --quick --profile focal     # where stableloss's and smp's time goes
    python bench/speed.py --quick --variant ignore    # ignore_index=255 (or multiclass16: 16 softmax classes)
    python bench/speed.py --device cuda --sources stableloss-eager,stableloss-fused,fused-1read,smp,smp-compiled --unet

The last line is the CUDA comparison (``_fused_rows.py``): eager against fused stableloss and
``torch.compile``d smp per loss, then the loss's share of a U-Net EfficientNet-B0 training step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

import _common as C
import _fused_rows
import _variants

SHAPES = {"2d": (16, 1, 512, 512), "3d": (2, 1, 128, 128, 128)}
QUICK_SHAPES = {"2d": (8, 1, 256, 256), "3d": (1, 1, 64, 64, 64)}
PRECISIONS = {"float32": None, "fp16": torch.float16}
COLUMNS = ("shape", "precision", "impl", "ms", "iqr_ms", "min_ms", "x_smp", "x_smp_min", "x_floor", "peak_MiB", "mem_x_smp", "finite")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (8x1x256x256, 1x1x64^3)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--shapes", default="2d,3d", help="comma list of 2d, 3d")
    parser.add_argument("--precisions", default="float32,fp16", help="comma list of float32, fp16")
    parser.add_argument("--losses", default=",".join(C.LOSSES), help="comma list of " + ", ".join(C.LOSSES))
    parser.add_argument("--sources", default=",".join(C.SOURCES),
                        help="comma list of " + ", ".join(C.SOURCES) + ", stableloss-noval (validate_args=False), "
                             "stableloss-eager, stableloss-fused, fused-1read, smp-compiled (see _fused_rows.py)")
    parser.add_argument("--repeats", type=int, default=None, help="timed passes per implementation (default 20, quick 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes per implementation first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall",
                        help="wall time, or this thread's CPU time (CPU only, needs --threads 1): on a shared "
                             "machine it leaves out the time other processes hold the core")
    parser.add_argument("--profile", default=None, metavar="LOSS", help="print a torch.profiler table for LOSS instead")
    parser.add_argument("--out", default="bench_results", help="output folder (default bench_results/)")
    parser.add_argument("--shape", default=None, metavar="NxCxHxW[xD]", help="one custom shape instead of --shapes")
    parser.add_argument("--unet", action="store_true",
                        help="also time a smp.Unet('efficientnet-b0') training step per loss (2D shapes)")
    parser.add_argument("--variant", choices=_variants.VARIANTS, default="binary",
                        help="binary (default); ignore: ignore_index=255 on 5%% of the pixels; multiclass16: 16 "
                             "softmax classes, the Dice family (see _variants.py)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend of smp-compiled")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (10 if args.quick else 20)
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread needs --threads 1 (it counts the main thread's CPU time only)")
    return args


def make_inputs(shape, device, dtype, variant: str = "binary") -> tuple:
    """Logits (a leaf of ``dtype``) and the target of ``variant``, the same for every implementation."""
    gen = torch.Generator().manual_seed(0)
    logits, target = _variants.make_variant_inputs(variant, shape, gen)
    return logits.to(device=device, dtype=dtype).requires_grad_(), target.to(device)


def bench_case(impls: list[C.Impl], shape, precision: str, device, args) -> list[dict]:
    """Time and memory rows for every implementation on one shape and precision."""
    autocast = PRECISIONS[precision]
    x, t = make_inputs(shape, device, autocast or torch.float32, args.variant)
    fns: dict[str, C.LossFn] = {"floor": C.floor_fn}
    fns.update({impl.label: impl.fn for impl in impls})
    finite, failed = {}, {}
    for name, fn in list(fns.items()):
        try:
            loss = C.fwd_bwd(fn, x, t, autocast)
            finite[name] = bool(torch.isfinite(loss)) and bool(torch.isfinite(x.grad).all())
        except Exception as err:  # noqa: BLE001 - an anchor that does not support this dtype
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"
            del fns[name]
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    times = C.time_interleaved(fns, x, t, autocast=autocast, warmup=args.warmup, repeats=args.repeats, clock=clock)
    rows = []
    label = "x".join(map(str, _variants.variant_shape(args.variant, shape)))
    for name, fn in fns.items():
        median, iqr = C.spread(times[name])
        rows.append({"shape": label, "precision": precision, "impl": name, "ms": 1e3 * median, "iqr_ms": 1e3 * iqr,
                     "min_ms": 1e3 * min(times[name]), "peak_MiB": C.peak_memory(fn, x, t, autocast) / 2**20,
                     "finite": finite[name]})
    for name, why in failed.items():
        rows.append({"shape": label, "precision": precision, "impl": name, "error": why})
    by_name = {r["impl"]: r for r in rows if "ms" in r}
    for row in rows:
        if "ms" not in row:
            continue
        row["x_floor"] = row["ms"] / by_name["floor"]["ms"]
        loss = row["impl"].split(":")[-1]
        ref = by_name.get(f"smp:{loss}")
        if ref is not None:
            row["x_smp"] = row["ms"] / ref["ms"]
            row["x_smp_min"] = row["min_ms"] / ref["min_ms"]
            row["mem_x_smp"] = row["peak_MiB"] / ref["peak_MiB"] if ref["peak_MiB"] else math.nan
    return rows


def profile_loss(loss: str, shape, precision: str, device, args) -> None:
    """Print where the forward+backward time of ``loss`` goes, stableloss and smp."""
    from torch.profiler import ProfilerActivity, profile

    autocast = PRECISIONS[precision]
    x, t = make_inputs(shape, device, autocast or torch.float32)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for impl in C.build_impls([loss], ["stableloss", "smp"]):
        for _ in range(args.warmup):
            C.fwd_bwd(impl.fn, x, t, autocast)
        with profile(activities=activities, profile_memory=True) as prof:
            for _ in range(args.repeats):
                C.fwd_bwd(impl.fn, x, t, autocast)
                C.sync(device)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\n== {impl.label}, {'x'.join(map(str, shape))}, {precision}, {args.repeats} passes ==")
        print(prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=40))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = C.resolve_device(args.device)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    shape_keys = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if args.shape:
        shapes, shape_keys = {"custom": _parse_shape(args.shape)}, ["custom"]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for key, allowed, name in ((shape_keys, shapes, "--shapes"), (precisions, PRECISIONS, "--precisions")):
        unknown = [k for k in key if k not in allowed]
        if unknown:
            raise SystemExit(f"{name} must be from {sorted(allowed)}; received {unknown}")
    if args.profile:
        profile_loss(args.profile, shapes[shape_keys[0]], precisions[0], device, args)
        return 0
    if args.variant == "binary":
        extra = _fused_rows.builders(device, args.compile_backend)
        impls = C.build_impls(args.losses.split(","), args.sources.split(","), extra=extra)
    else:
        impls = _variants.variant_impls(args.variant, args.losses.split(","), args.sources.split(","))
    meta = C.metadata(device)
    meta["clock"] = args.clock
    if args.clock == "thread" and device.type == "cuda":
        raise SystemExit("--clock thread measures CPU time; use the wall clock on CUDA")
    print(f"device {meta['device']} ({meta['device_name']}), torch {torch.__version__}, {meta['torch_threads']} threads, "
          f"{args.repeats} timed passes after {args.warmup} warm-up, {args.clock} clock, variant {args.variant}, "
          f"commit {meta['commit']}")
    meta["variant"] = args.variant
    rows: list[dict] = []
    cases = [(shapes[k], p) for k in shape_keys for p in precisions]
    for shape, precision in _progress(cases):
        rows.extend(bench_case(impls, shape, precision, device, args))
    print(C.format_table(rows, COLUMNS))
    if args.unet:
        step_rows = [row for shape, precision in cases for row in _fused_rows.unet_rows(
            impls, shape, precision, device, warmup=args.warmup, repeats=args.repeats, autocast=PRECISIONS[precision])]
        print("\nU-Net EfficientNet-B0 training step (forward, loss, backward, Adam), median of interleaved steps:")
        print(C.format_table(step_rows, ("shape", "precision", "impl", "step_ms", "loss_share")))
        rows.extend({**row, "table": "unet_step"} for row in step_rows)
    for row in rows:
        if "error" in row:
            print(f"skipped {row['impl']} at {row['shape']} {row['precision']}: {row['error']}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "speed.json")
    C.atomic_write(path, json.dumps({"metadata": meta, "floor": "sigmoid(x).sum() forward+backward", "rows": rows}, indent=1))
    print(f"wrote {path}")
    return 0


def _parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not 3 <= len(shape) <= 5 or min(shape) < 1:
        raise SystemExit(f"--shape must be NxCxS1[xS2[xS3]] with positive sizes; received {text!r}")
    return shape


def _progress(items):
    tqdm = C.optional_import("tqdm")
    return tqdm.tqdm(items, desc="speed", unit="case", file=sys.stderr) if tqdm else items


if __name__ == "__main__":
    raise SystemExit(main())
