"""Loss values and gradients under mixed precision: stableloss against smp and MONAI.

Three measurements, on a blob (ball) target; see ``docs/benchmarks.md`` for how to read them:

1. **Logit-scale sweep.** Logits ``s * (2t - 1)`` (confidently *right*) and ``-s * (2t - 1)``
   (confidently *wrong*) for scales ``s`` from 0.5 to 65504 (the float16 maximum), in each precision
   context: ``float32``; ``fp16-autocast`` and ``bf16-autocast`` (logits of that dtype, as an
   autocast network produces them, and the loss called inside ``torch.autocast``); ``fp16`` (plain
   float16 logits, no autocast). Recorded: the loss value, the norm of its gradient with respect to
   the logits, and the fraction of non-finite values.
2. **fp16 underflow.** The float32 gradient of each loss for a realistic soft prediction, cast to
   float16 as the backward pass into an fp16 network does: the fraction of its non-zero elements
   that become 0 (and that become subnormal, keeping few bits), without scaling and with
   ``torch.amp.GradScaler``'s default scale 2**16 (and the fraction that overflows to inf there),
   for a 2D batch and a 3D volume. Per-pixel gradients of mean-reduced losses shrink as 1/N.
3. **Boundary emphasis** (``_boundary.py``). For the same prediction, mean |gradient| on boundary
   pixels (within 1.5 pixels of the target's surface) over the mean elsewhere, and over the mean
   inside the object; then, with a confidently wrong island far from the object and a shell of
   false positives just outside it (logit +4), mean |gradient| on the island over the band, on the
   shell over the band, and on the island over the shell (does the gradient grow with the distance
   of an error?).

The losses are the region losses of ``_common.LOSSES`` and the boundary-aware ones of
``_common.BOUNDARY_LOSSES`` (``BoundaryAwareLoss`` with the library's defaults, the boundary,
Hausdorff-DT and boundary DoU losses, MONAI's ``BoundaryLoss`` and ``HausdorffDTLoss``), plus
``--candidates``: extra ``BoundaryAwareLoss`` keyword sets, as rows of every measurement.

Writes ``sweep.csv``, ``underflow.csv``, ``boundary.csv``, ``boundary.json``,
``grad_norm_vs_scale.png``, ``boundary_ratio.png``, ``boundary_grad_maps.png``,
``fp16_underflow.png`` and ``metadata.json`` to ``--out`` (those of the measurements run); prints tables.

Usage::

    python bench/grad_norms.py --quick          # small inputs, a few minutes on a CPU
    python bench/grad_norms.py                  # 8x1x256x256 sweep, 16x1x512x512 and 2x1x128^3 underflow
    python bench/grad_norms.py --device cuda    # CUDA contexts
    python bench/grad_norms.py --only boundary --losses dice,hybrid,boundary_aware \\
        --candidates '[{"boundary_weight": 1.0}, {"boundary": "hausdorff"}]'   # try BoundaryAwareLoss settings
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys

import torch

import _boundary
import _common as C
import stableloss as sl

# name -> (logits dtype, autocast dtype or None)
CONTEXTS = {
    "float32": (torch.float32, None),
    "fp16-autocast": (torch.float16, torch.float16),
    "bf16-autocast": (torch.bfloat16, torch.bfloat16),
    "fp16": (torch.float16, None),
}
SCALES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0, 1024.0, 8192.0, 65504.0)
QUICK_SCALES = (1.0, 4.0, 16.0, 256.0, 65504.0)
GRAD_SCALE = 2.0**16
MEASUREMENTS = ("sweep", "underflow", "boundary")
SIZES = {"sweep": (8, 1, 256, 256), "2d": (16, 1, 512, 512), "3d": (2, 1, 128, 128, 128), "boundary": (8, 1, 256, 256)}
# quick: the sweep keeps > 65504 pixels, so float16 sums still overflow where they would.
QUICK_SIZES = {"sweep": (1, 1, 256, 256), "2d": (4, 1, 128, 128), "3d": (1, 1, 48, 48, 48), "boundary": (2, 1, 128, 128)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs and fewer scales")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--out", default="bench_results", help="output folder (default bench_results/)")
    parser.add_argument("--losses", default=",".join(C.ALL_LOSSES), help="comma list of " + ", ".join(C.ALL_LOSSES))
    parser.add_argument("--sources", default=",".join(C.SOURCES), help="comma list of " + ", ".join(C.SOURCES))
    parser.add_argument("--contexts", default=",".join(CONTEXTS), help="comma list of " + ", ".join(CONTEXTS))
    parser.add_argument("--only", default=",".join(MEASUREMENTS),
                        help="comma list of the measurements to run: " + ", ".join(MEASUREMENTS) + " (default all)")
    parser.add_argument("--candidates", default=None,
                        help="extra rows: BoundaryAwareLoss('binary', **kw) for each keyword set in this JSON (or JSON file): "
                             "a list of objects, one object, or an object of named objects")
    parser.add_argument("--island-logit", type=float, default=_boundary.ISLAND_LOGIT,
                        help=f"logit of the far island and the near shell (default {_boundary.ISLAND_LOGIT:g})")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    return parser.parse_args(argv)


def sweep(impls: list[C.Impl], contexts: list[str], scales, shape, device, progress) -> list[dict]:
    """Loss, gradient norm and non-finite fraction for every implementation, context, direction and scale."""
    target, *_ = C.ball_target(shape, generator=torch.Generator().manual_seed(0), device=device)
    sign = 2 * target - 1
    rows = []
    for impl in impls:
        for context in contexts:
            dtype, autocast = CONTEXTS[context]
            for direction, d in (("right", 1.0), ("wrong", -1.0)):
                for scale in scales:
                    x = (d * scale * sign).to(dtype)
                    loss, grad = C.gradient(impl.fn, x, target, autocast)
                    row = {"loss": impl.loss, "source": impl.source, "context": context, "direction": direction, "scale": scale}
                    if grad is None:
                        row["error"] = loss
                    else:
                        finite = torch.isfinite(grad)
                        row.update(value=loss, grad_norm=float(grad.double().norm()), loss_finite=math.isfinite(loss),
                                   nonfinite_grad=1.0 - float(finite.double().mean()))
                    rows.append(row)
                    progress.update()
    return rows


def underflow(impls: list[C.Impl], sizes: dict[str, tuple], device, progress) -> list[dict]:
    """Fractions of non-zero float32 gradient elements lost or degraded when cast to float16."""
    tiny = torch.finfo(torch.float16).tiny  # smallest normal float16
    rows = []
    for dim in ("2d", "3d"):
        x, t, _ = C.soft_prediction(sizes[dim], generator=torch.Generator().manual_seed(1))
        x, t = x.to(device), t.to(device)
        for impl in impls:
            _, grad = C.gradient(impl.fn, x, t, None)
            progress.update()
            if grad is None:
                continue
            nonzero = grad[grad != 0]
            row = {"shape": "x".join(map(str, sizes[dim])), "loss": impl.loss, "source": impl.source,
                   "median_abs_grad": float(nonzero.abs().median()) if nonzero.numel() else 0.0}
            for tag, scale in (("", 1.0), ("_scaled", GRAD_SCALE)):
                half = (nonzero * scale).half()
                n = max(nonzero.numel(), 1)
                row["zero" + tag] = float((half == 0).sum()) / n
                row["subnormal" + tag] = float(((half != 0) & (half.abs() < tiny)).sum()) / n
                if scale != 1.0:
                    row["inf" + tag] = float(torch.isinf(half).sum()) / n
            rows.append(row)
    return rows


def sweep_summary(rows: list[dict], scales) -> list[dict]:
    """One line per implementation and context: non-finite cases, cases whose gradient is exactly 0
    where the float32 one is not (``zero_grad``: the gradient was lost), and a few gradient norms."""
    out: dict[tuple, dict] = {}
    low, high = min(scales), max(scales)
    reference = {(r["source"], r["loss"], r["direction"], r["scale"]): r.get("grad_norm", math.nan)
                 for r in rows if r["context"] == "float32"}
    for r in rows:
        key = (f"{r['source']}:{r['loss']}", r["context"])
        line = out.setdefault(key, {"impl": key[0], "context": key[1], "nonfinite": 0, "zero_grad": 0, "cases": 0})
        line["cases"] += 1
        if "error" in r:
            line["error"] = r["error"]
            continue
        if not r["loss_finite"] or r["nonfinite_grad"] > 0:
            line["nonfinite"] += 1
        if r["grad_norm"] == 0 and reference.get((r["source"], r["loss"], r["direction"], r["scale"]), 0) > 0:
            line["zero_grad"] += 1
        if r["scale"] in (low, high):
            line[f"|g| {r['direction']} s={r['scale']:g}"] = r["grad_norm"]
    return list(out.values())


def write_csv(path: str, rows: list[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    C.atomic_write(path, text.getvalue())


BOUNDARY_COLUMNS = ["loss", "source", "ratio", "ratio_vs_inside", "island_vs_band", "shell_vs_band", "far_vs_near",
                    "boundary_mean", "rest_mean"]


def report_boundary(result: dict, shape, out: str, meta: dict) -> list[str]:
    """Print the boundary-emphasis table and write ``boundary.csv`` and ``boundary.json``."""
    probe, rows = result["probe"], result["rows"]
    print(f"\n== boundary emphasis, {'x'.join(map(str, shape))}: ratio = mean |grad| within {probe['band_px']} px of "
          f"the surface over the rest; with confident false positives (logit {probe['island_logit']:+g}): an "
          f"{probe['island_side_px']} px island {probe['island_distance_mean_px']:.1f} px (min "
          f"{probe['island_distance_min_px']:.1f}) from the surface, a shell at {probe['shell_px'][0]}-{probe['shell_px'][1]} px "
          f"(mean {probe['shell_distance_mean_px']:.1f}); island_vs_band, shell_vs_band, far_vs_near = island over shell ==")
    print(C.format_table(rows, BOUNDARY_COLUMNS))
    for row in rows:
        if "error" in row:
            print(f"skipped {row['source']}:{row['loss']} in the boundary measurement: {row['error']}")
    write_csv(os.path.join(out, "boundary.csv"), rows)
    C.atomic_write(os.path.join(out, "boundary.json"), json.dumps({"metadata": meta, "probe": probe, "rows": rows}, indent=1))
    return ["boundary.csv", "boundary.json"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = C.resolve_device(args.device)
    contexts = [c for c in args.contexts.split(",") if c]
    only = [m for m in args.only.split(",") if m]
    bad = [c for c in contexts if c not in CONTEXTS] + [m for m in only if m not in MEASUREMENTS]
    if bad or not only:
        raise SystemExit(f"--contexts must be from {list(CONTEXTS)} and --only from {list(MEASUREMENTS)} (at least one); "
                         f"received {bad or only}")
    if not math.isfinite(args.island_logit):
        raise SystemExit(f"--island-logit must be a finite number; received {args.island_logit}")
    sizes, scales = (QUICK_SIZES, QUICK_SCALES) if args.quick else (SIZES, SCALES)
    impls = C.build_impls([name for name in args.losses.split(",") if name], args.sources.split(","))
    candidates = _boundary.candidate_impls(args.candidates) if args.candidates else []
    impls += candidates
    os.makedirs(args.out, exist_ok=True)
    meta = C.metadata(device)
    meta.update(sizes={k: list(v) for k, v in sizes.items()}, scales=list(scales), contexts=contexts, measurements=only,
                grad_scale=GRAD_SCALE, boundary_band_px=_boundary.BAND,
                boundary_aware_defaults=_boundary.describe(sl.BoundaryAwareLoss("binary")),
                candidates={impl.loss: _boundary.describe(impl.fn) for impl in candidates})
    print(f"device {meta['device']} ({meta['device_name']}), torch {torch.__version__}, commit {meta['commit']}")
    runs = {"sweep": len(contexts) * 2 * len(scales), "underflow": 2, "boundary": 2}
    tqdm = C.optional_import("tqdm")
    total = len(impls) * sum(runs[m] for m in only)
    progress = tqdm.tqdm(total=total, desc="grad_norms", unit="run", file=sys.stderr) if tqdm else _NoBar()
    sweep_rows = sweep(impls, contexts, scales, sizes["sweep"], device, progress) if "sweep" in only else []
    under_rows = underflow(impls, sizes, device, progress) if "underflow" in only else []
    bound = _boundary.measure(impls, sizes["boundary"], device, progress, island_logit=args.island_logit) if "boundary" in only else None
    progress.close()

    written = []
    if "sweep" in only:
        summary = sweep_summary(sweep_rows, scales)
        print(f"\n== logit-scale sweep, {'x'.join(map(str, sizes['sweep']))}: non-finite cases of "
              f"{len(scales) * 2} (loss or any gradient element), "
              f"zero_grad: gradient exactly 0 where float32's is not; gradient norms ==")
        print(C.format_table(summary, list(dict.fromkeys(k for r in summary for k in r))))
        for line in summary:
            if "error" in line:
                print(f"skipped {line['impl']} in {line['context']}: {line['error']}")
        write_csv(os.path.join(args.out, "sweep.csv"), sweep_rows)
        written.append("sweep.csv")
    if "underflow" in only:
        print("\n== fp16 cast of float32 gradients (fractions of non-zero elements); _scaled: x 2**16 first ==")
        cols = ["shape", "loss", "source", "median_abs_grad", "zero", "subnormal", "zero_scaled", "subnormal_scaled", "inf_scaled"]
        print(C.format_table(under_rows, cols))
        write_csv(os.path.join(args.out, "underflow.csv"), under_rows)
        written.append("underflow.csv")
    if bound is not None:
        meta["boundary_probe"] = bound["probe"]
        written += report_boundary(bound, sizes["boundary"], args.out, meta)
    C.atomic_write(os.path.join(args.out, "metadata.json"), json.dumps(meta, indent=1))
    written.append("metadata.json")
    if not args.no_plots:
        import _plots  # matplotlib is only needed here

        written += _plots.plot_all(args.out, sweep_rows, under_rows, bound, contexts)
    print(f"wrote {args.out}/: " + ", ".join(written))
    return 0


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
