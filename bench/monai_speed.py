"""Forward+backward time of each ``stableloss.monai`` loss against the same MONAI loss, side by side.

Each loss runs with the same constructor arguments in both libraries, on the same logits and target
(a ball target, MONAI's conventions: binary ``(B, 1, *S)`` masks with ``sigmoid=True``; multiclass
``(B, 1, *S)`` label maps with ``softmax=True, to_onehot_y=True``; ``FocalLoss`` sigmoid on masks,
softmax on label maps). Time: median of ``--repeats`` interleaved passes (A B A B ...) after
``--warmup``, and the ratio stableloss / MONAI of the medians and of the minima; ``peak_MiB``: the
memory one forward+backward allocates above what it starts with (the gradient included; CPU: from
the profiler's allocation events, see ``_common.peak_memory``). ``finite_fp16``:
whether the loss and its gradient are finite on the same logits cast to float16 with some
overflowed to +-inf (MONAI's often are not).

Usage::

    python bench/monai_speed.py                        # 8x1x256x256 and 2x3x96^3 (the issue's shapes)
    python bench/monai_speed.py --quick                # 4x1x64x64 and 1x3x24^3, seconds
    python bench/monai_speed.py --threads 1 --clock thread --losses DiceLoss,DiceCELoss
    python bench/monai_speed.py --device cuda          # the CUDA rows

Writes ``monai_speed.json`` (rows and the run's metadata) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import torch

import _common as C

SHAPES = {"binary": (8, 1, 256, 256), "multiclass": (2, 3, 96, 96, 96)}
QUICK_SHAPES = {"binary": (4, 1, 64, 64), "multiclass": (1, 3, 24, 24, 24)}
LOSSES = ("DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "FocalLoss", "DiceCELoss", "DiceFocalLoss",
          "GeneralizedDiceFocalLoss", "HausdorffDTLoss", "DeepSupervisionLoss", "nnUNetDiceCE")
COLUMNS = ("shape", "loss", "monai_ms", "stableloss_ms", "x_monai", "x_monai_min", "monai_peak_MiB",
           "stableloss_peak_MiB", "finite_fp16_monai", "finite_fp16_stableloss")
NNUNET = {"include_background": False, "to_onehot_y": True, "softmax": True, "batch": True, "smooth_nr": 1e-5,
          "smooth_dr": 1e-5}
"""nnU-Net's Dice + CE as a MONAI DiceCELoss (stableloss.monai.nnunet_dice_ce); with one channel (binary
shape) its sigmoid form, ``sigmoid=True, batch=True`` (see examples/liver/losses.py)."""


def kwargs_for(name: str, kind: str) -> dict:
    """The constructor arguments of ``name`` for a binary or a multiclass shape."""
    if name == "FocalLoss":
        return {} if kind == "binary" else {"to_onehot_y": True, "use_softmax": True}
    if kind == "binary":
        return {"sigmoid": True}
    return {"softmax": True, "to_onehot_y": True}


def build(library, name: str, kind: str):
    """The loss from ``library`` (``monai.losses`` or ``stableloss.monai``); deep supervision over 3 scales."""
    if name == "nnUNetDiceCE":
        kwargs = NNUNET if kind == "multiclass" else {"sigmoid": True, "batch": True}
        return library.DiceCELoss(**kwargs)
    if name == "DeepSupervisionLoss":
        inner = library.DiceCELoss(**kwargs_for("DiceCELoss", kind))
        loss = library.DeepSupervisionLoss(inner)

        def three_scales(x, t):
            # max pooling: an average of +inf and -inf logits would be a NaN input
            outputs = [x] + [torch.nn.functional.max_pool2d(x, 2**i) if x.dim() == 4 else
                             torch.nn.functional.max_pool3d(x, 2**i) for i in (1, 2)]
            return loss(outputs, t)
        return three_scales
    return library.__dict__[name](**kwargs_for(name, kind))


def inputs(shape, kind: str, generator: torch.Generator):
    """Logits around a ball (the target), the MONAI target layout of ``kind``."""
    batch, channels, *spatial = shape
    logits, mask, distance = C.soft_prediction((batch, 1, *spatial), generator=generator)
    if kind == "binary":
        return logits.contiguous(), mask.float()
    labels = mask.long()  # classes 0 and 1; class 2 is a shell of 3 pixels around the ball
    labels[(distance > -3.0) & (labels == 0)] = 2
    scores = torch.randn((batch, channels, *spatial), generator=generator)
    scores.scatter_add_(1, labels, torch.full(labels.shape, 4.0))
    return scores.contiguous(), labels.float()


def finite_fp16(fn, x, t) -> bool:
    x = x.detach().half()
    flat = x.view(-1)
    flat[:: 997] = float("inf")
    flat[5:: 991] = -float("inf")
    value, grad = C.gradient(fn, x, t, None)
    return isinstance(value, float) and value == value and abs(value) != float("inf") and bool(torch.isfinite(grad).all())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (seconds)")
    parser.add_argument("--losses", default=",".join(LOSSES), help="comma list of " + ", ".join(LOSSES))
    parser.add_argument("--kinds", default="binary,multiclass", help="comma list of binary, multiclass")
    parser.add_argument("--repeats", type=int, default=None, help="timed passes each (default 15, quick 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes each first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall",
                        help="wall time, or this thread's CPU time (needs --threads 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--out", default="bench_results", help="output folder (default bench_results/)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 15)
    for name in args.losses.split(","):
        if name not in LOSSES:
            parser.error(f"--losses: unknown loss {name!r}; expected some of {', '.join(LOSSES)}")
    for kind in args.kinds.split(","):
        if kind not in SHAPES:
            parser.error(f"--kinds: unknown kind {kind!r}; expected binary or multiclass")
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread needs --threads 1 (thread time counts this thread only)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    monai_losses = C.optional_import("monai.losses")
    if monai_losses is None:
        raise SystemExit("bench/monai_speed.py needs MONAI: pip install '.[bench]'")
    import stableloss.monai as sm

    device = C.resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    shapes = QUICK_SHAPES if args.quick else SHAPES
    rows = []
    warnings.simplefilter("ignore")
    for kind in args.kinds.split(","):
        shape = shapes[kind]
        x, t = inputs(shape, kind, torch.Generator().manual_seed(0))
        x, t = x.to(device).requires_grad_(True), t.to(device)
        for name in args.losses.split(","):
            fns = {"monai": build(monai_losses, name, kind), "stableloss": build(sm, name, kind)}
            times = C.time_interleaved(fns, x, t, autocast=None, warmup=args.warmup, repeats=args.repeats, clock=clock)
            medians = {k: C.spread(v)[0] * 1e3 for k, v in times.items()}
            minima = {k: min(v) * 1e3 for k, v in times.items()}
            row = {"shape": "x".join(map(str, shape)), "loss": name, "monai_ms": medians["monai"],
                   "stableloss_ms": medians["stableloss"], "x_monai": medians["stableloss"] / medians["monai"],
                   "x_monai_min": minima["stableloss"] / minima["monai"],
                   "monai_peak_MiB": C.peak_memory(fns["monai"], x, t, None) / 2**20,
                   "stableloss_peak_MiB": C.peak_memory(fns["stableloss"], x, t, None) / 2**20,
                   "finite_fp16_monai": finite_fp16(fns["monai"], x, t),
                   "finite_fp16_stableloss": finite_fp16(fns["stableloss"], x, t)}
            rows.append(row)
            print(C.format_table([row], COLUMNS).splitlines()[-1], file=sys.stderr, flush=True)
    print(C.format_table(rows, COLUMNS))
    os.makedirs(args.out, exist_ok=True)
    C.atomic_write(os.path.join(args.out, "monai_speed.json"),
                   json.dumps({"metadata": C.metadata(device), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
