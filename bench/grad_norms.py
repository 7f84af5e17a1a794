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
3. **Boundary emphasis.** For the same prediction, mean |gradient| on boundary pixels (within 1.5
   pixels of the target's surface) over the mean elsewhere, and over the mean inside the object.

Writes ``sweep.csv``, ``underflow.csv``, ``boundary.csv``, ``grad_norm_vs_scale.png``,
``boundary_ratio.png``, ``fp16_underflow.png`` and ``metadata.json`` to ``--out``; prints tables.

Usage::

    python bench/grad_norms.py --quick          # small inputs, under a minute on a CPU
    python bench/grad_norms.py                  # 8x1x256x256 sweep, 16x1x512x512 and 2x1x128^3 underflow
    python bench/grad_norms.py --device cuda    # CUDA contexts
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import warnings
from typing import Dict, List, Optional

import torch

import _common as C

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
BAND = 1.5
SIZES = {"sweep": (8, 1, 256, 256), "2d": (16, 1, 512, 512), "3d": (2, 1, 128, 128, 128), "boundary": (8, 1, 256, 256)}
# quick: the sweep keeps > 65504 pixels, so float16 sums still overflow where they would.
QUICK_SIZES = {"sweep": (1, 1, 256, 256), "2d": (4, 1, 128, 128), "3d": (1, 1, 48, 48, 48), "boundary": (2, 1, 128, 128)}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs and fewer scales")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--out", default="bench_results", help="output folder (default bench_results/)")
    parser.add_argument("--losses", default=",".join(C.LOSSES), help="comma list of " + ", ".join(C.LOSSES))
    parser.add_argument("--sources", default=",".join(C.SOURCES), help="comma list of " + ", ".join(C.SOURCES))
    parser.add_argument("--contexts", default=",".join(CONTEXTS), help="comma list of " + ", ".join(CONTEXTS))
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    return parser.parse_args(argv)


def gradient(fn: C.LossFn, x: torch.Tensor, t: torch.Tensor, autocast) -> tuple:
    """Loss (float) and gradient with respect to the leaf ``x``; an exception gives ``(error, None)``."""
    x = x.detach().requires_grad_()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = C.fwd_bwd(fn, x, t, autocast)
    except Exception as err:  # an anchor that does not support this dtype or device
        return f"{type(err).__name__}: {str(err).splitlines()[0][:70]}", None
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    return float(loss.float()), grad


def sweep(impls: List[C.Impl], contexts: List[str], scales, shape, device, progress) -> List[dict]:
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
                    loss, grad = gradient(impl.fn, x, target, autocast)
                    row = dict(loss=impl.loss, source=impl.source, context=context, direction=direction, scale=scale)
                    if grad is None:
                        row["error"] = loss
                    else:
                        finite = torch.isfinite(grad)
                        row.update(value=loss, grad_norm=float(grad.double().norm()), loss_finite=math.isfinite(loss),
                                   nonfinite_grad=1.0 - float(finite.double().mean()))
                    rows.append(row)
                    progress.update()
    return rows


def underflow(impls: List[C.Impl], sizes: Dict[str, tuple], device, progress) -> List[dict]:
    """Fractions of non-zero float32 gradient elements lost or degraded when cast to float16."""
    tiny = torch.finfo(torch.float16).tiny  # smallest normal float16
    rows = []
    for dim in ("2d", "3d"):
        x, t, _ = C.soft_prediction(sizes[dim], generator=torch.Generator().manual_seed(1))
        x, t = x.to(device), t.to(device)
        for impl in impls:
            _, grad = gradient(impl.fn, x, t, None)
            progress.update()
            if grad is None:
                continue
            nonzero = grad[grad != 0]
            row = dict(shape="x".join(map(str, sizes[dim])), loss=impl.loss, source=impl.source,
                       median_abs_grad=float(nonzero.abs().median()) if nonzero.numel() else 0.0)
            for tag, scale in (("", 1.0), ("_scaled", GRAD_SCALE)):
                half = (nonzero * scale).half()
                n = max(nonzero.numel(), 1)
                row["zero" + tag] = float((half == 0).sum()) / n
                row["subnormal" + tag] = float(((half != 0) & (half.abs() < tiny)).sum()) / n
                if scale != 1.0:
                    row["inf" + tag] = float(torch.isinf(half).sum()) / n
            rows.append(row)
    return rows


def boundary(impls: List[C.Impl], shape, device, progress) -> List[dict]:
    """Mean |gradient| near the target's surface over the mean elsewhere, and over the object's inside."""
    x, t, dist = C.soft_prediction(shape, generator=torch.Generator().manual_seed(2))
    x, t, dist = x.to(device), t.to(device), dist.to(device)
    band, inside = dist.abs() <= BAND, dist > BAND
    rows = []
    for impl in impls:
        _, grad = gradient(impl.fn, x, t, None)
        progress.update()
        if grad is None:
            continue
        g = grad.abs().double()
        b, rest, inner = g[band].mean(), g[~band].mean(), g[inside].mean()
        rows.append(dict(loss=impl.loss, source=impl.source, boundary_mean=float(b), rest_mean=float(rest),
                         ratio=float(b / rest) if rest > 0 else math.inf,
                         ratio_vs_inside=float(b / inner) if inner > 0 else math.inf))
    return rows


def sweep_summary(rows: List[dict], scales) -> List[dict]:
    """One line per implementation and context: non-finite cases, cases whose gradient is exactly 0
    where the float32 one is not (``zero_grad``: the gradient was lost), and a few gradient norms."""
    out: Dict[tuple, dict] = {}
    low, high = min(scales), max(scales)
    reference = {(r["source"], r["loss"], r["direction"], r["scale"]): r.get("grad_norm", math.nan)
                 for r in rows if r["context"] == "float32"}
    for r in rows:
        key = (f"{r['source']}:{r['loss']}", r["context"])
        line = out.setdefault(key, dict(impl=key[0], context=key[1], nonfinite=0, zero_grad=0, cases=0))
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


def write_csv(path: str, rows: List[dict]) -> None:
    fields: List[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    C.atomic_write(path, text.getvalue())


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    device = C.resolve_device(args.device)
    contexts = [c for c in args.contexts.split(",") if c]
    bad = [c for c in contexts if c not in CONTEXTS]
    if bad:
        raise SystemExit(f"--contexts must be from {list(CONTEXTS)}; received {bad}")
    sizes, scales = (QUICK_SIZES, QUICK_SCALES) if args.quick else (SIZES, SCALES)
    impls = C.build_impls(args.losses.split(","), args.sources.split(","))
    os.makedirs(args.out, exist_ok=True)
    meta = C.metadata(device)
    meta.update(sizes={k: list(v) for k, v in sizes.items()}, scales=list(scales), contexts=contexts,
                grad_scale=GRAD_SCALE, boundary_band_px=BAND)
    print(f"device {meta['device']} ({meta['device_name']}), torch {torch.__version__}, commit {meta['commit']}")
    total = len(impls) * (len(contexts) * 2 * len(scales) + 3)
    tqdm = C.optional_import("tqdm")
    progress = tqdm.tqdm(total=total, desc="grad_norms", unit="run", file=sys.stderr) if tqdm else _NoBar()
    sweep_rows = sweep(impls, contexts, scales, sizes["sweep"], device, progress)
    under_rows = underflow(impls, sizes, device, progress)
    bound_rows = boundary(impls, sizes["boundary"], device, progress)
    progress.close()

    summary = sweep_summary(sweep_rows, scales)
    print(f"\n== logit-scale sweep, {'x'.join(map(str, sizes['sweep']))}: non-finite cases of "
          f"{len(scales) * 2} (loss or any gradient element), "
          f"zero_grad: gradient exactly 0 where float32's is not; gradient norms ==")
    print(C.format_table(summary, list(dict.fromkeys(k for r in summary for k in r))))
    print("\n== fp16 cast of float32 gradients (fractions of non-zero elements); _scaled: x 2**16 first ==")
    cols = ["shape", "loss", "source", "median_abs_grad", "zero", "subnormal", "zero_scaled", "subnormal_scaled", "inf_scaled"]
    print(C.format_table(under_rows, cols))
    print(f"\n== boundary emphasis, {'x'.join(map(str, sizes['boundary']))}: mean |grad| within {BAND} px of the surface ==")
    print(C.format_table(bound_rows, ["loss", "source", "boundary_mean", "rest_mean", "ratio", "ratio_vs_inside"]))
    for line in summary:
        if "error" in line:
            print(f"skipped {line['impl']} in {line['context']}: {line['error']}")

    write_csv(os.path.join(args.out, "sweep.csv"), sweep_rows)
    write_csv(os.path.join(args.out, "underflow.csv"), under_rows)
    write_csv(os.path.join(args.out, "boundary.csv"), bound_rows)
    C.atomic_write(os.path.join(args.out, "metadata.json"), json.dumps(meta, indent=1))
    if not args.no_plots:
        import _plots  # matplotlib is only needed here

        _plots.plot_all(args.out, sweep_rows, under_rows, bound_rows, contexts)
    print(f"wrote {args.out}/: sweep.csv, underflow.csv, boundary.csv, metadata.json" + ("" if args.no_plots else ", 3 PNG figures"))
    return 0


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
