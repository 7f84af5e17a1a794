"""Command-line options of ``examples/train_liver.py``, with the CPU defaults and the presets.

Presets (``--preset``; ``--quick`` is ``--preset quick``) fill in every option left unset:
``default`` (the README's run), ``quick`` (a smoke test) and ``hard-low-data`` (issue 18: the hard
phantom, :mod:`liver.hard_phantom`, with 2 training volumes, so that an undertrained model meets
organs of the liver's density far from the liver).

Defaults are sized for the synthetic phantom on a small CPU (the README quick start). For real
LiTS data on a GPU pass the experiment's sizes explicitly, e.g. ``--img-size 256 --epochs 30
--batch-size 32 --encoder-weights imagenet`` (see docs/liver-example.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from liver.data import HU_WINDOW, TARGETS
from liver.losses import LOSSES, RECIPES
from liver.precision import PRECISIONS

DEFAULTS = {"phantom": "default", "phantom_volumes": 16, "phantom_size": 128, "phantom_slices": 48, "img_size": 96,
            "epochs": 8, "batch_size": 16, "folds": 4, "lr": 2e-3, "warmup_epochs": 1.0}
QUICK = {"phantom": "default", "phantom_volumes": 6, "phantom_size": 64, "phantom_slices": 32, "img_size": 64,
         "epochs": 4, "batch_size": 8, "folds": 3, "lr": 2e-3, "warmup_epochs": 0.5}
HARD_LOW_DATA = {**DEFAULTS, "phantom": "hard", "phantom_volumes": 6, "folds": 3, "train_volumes": 2, "epochs": 40,
                 "warmup_epochs": 5.0}
"""Hard phantom, 6 volumes in 3 folds (2 validation volumes), of which only 2 train; the default sizes. Two volumes
give 2 to 3 steps of 16 slices per epoch (2 at seed 0) against the default's 23, so the 40 epochs take 80 to 120
steps, against the default run's 184: little data and short training, the undertrained model of the regime."""
PRESETS: dict[str, dict[str, Any]] = {"default": DEFAULTS, "quick": QUICK, "hard-low-data": HARD_LOW_DATA}
PHANTOMS = ("default", "hard")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stableloss-liver"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="U-Net (EfficientNet-B0, 2.5D input) liver CT segmentation with stableloss.")
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", type=Path, help="real CT: LiTS (volume-N/segmentation-N) or MSD (imagesTr/labelsTr); "
                   "default: a synthetic phantom generated into --cache-dir")
    d.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="phantom and float16 slice cache (default: %(default)s)")
    d.add_argument("--target", choices=TARGETS, default="liver", help="liver = liver and tumour, binary (default)")
    d.add_argument("--img-size", type=int, help=f"slice size after resizing (default {DEFAULTS['img_size']}; the experiment: 256)")
    d.add_argument("--hu-window", type=float, nargs=2, default=list(HU_WINDOW), metavar=("LOW", "HIGH"),
                   help="HU clip window (default: %(default)s, abdominal level 40 / width 400)")
    d.add_argument("--neg-ratio", type=float, default=0.25,
                   help="slices without liver per slice with liver, each epoch (default %(default)s)")
    d.add_argument("--folds", type=int, help=f"patient-level folds (default {DEFAULTS['folds']}, "
                   "or as many as there are volumes if fewer)")
    d.add_argument("--fold", type=int, default=0, help="validation fold (default %(default)s)")
    d.add_argument("--workers", type=int, default=0, help="DataLoader workers (worker-safe; default %(default)s)")
    d.add_argument("--phantom", choices=PHANTOMS, help="synthetic phantom: default (liver.phantom) or hard (liver.hard_phantom: "
                   "organs of the liver's density, partial volume, bias, low-contrast lesions; default: the preset's)")
    d.add_argument("--train-volumes", type=int, help="train on only the first N volumes of the fold's training part "
                   "(low-data regimes; default: all, or the preset's)")
    d.add_argument("--phantom-volumes", type=int, help=f"phantom volumes (default {DEFAULTS['phantom_volumes']})")
    d.add_argument("--phantom-size", type=int, help=f"phantom in-plane voxels (default {DEFAULTS['phantom_size']})")
    d.add_argument("--phantom-slices", type=int, help=f"phantom slices per volume (default {DEFAULTS['phantom_slices']})")
    t = p.add_argument_group("training")
    t.add_argument("--loss", choices=LOSSES, default="boundary", metavar="LOSS",
                   help="default %(default)s; one of: " + "; ".join(f"{k}: {r.description}" for k, r in RECIPES.items())
                   + " (examples/liver/losses.py)")
    t.add_argument("--encoder", default="efficientnet-b0")
    t.add_argument("--encoder-weights", choices=("imagenet", "none"), default="imagenet")
    t.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: fp16+GradScaler on CUDA, fp32 on CPU")
    t.add_argument("--epochs", type=int, help=f"default {DEFAULTS['epochs']}")
    t.add_argument("--batch-size", type=int, help=f"per process (default {DEFAULTS['batch_size']})")
    t.add_argument("--lr", type=float, help=f"AdamW peak learning rate (default {DEFAULTS['lr']})")
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--warmup-epochs", type=float, help="linear warm-up, then cosine decay")
    t.add_argument("--max-steps", type=int, help="at most this many steps per epoch (short comparisons; default: all)")
    t.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (default %(default)s)")
    t.add_argument("--patience", type=int, default=20, help="stop after this many non-finite steps in a row")
    t.add_argument("--no-guard", action="store_true",
                   help="do not skip steps with a non-finite loss (reproduces the experiment's loop, for comparison)")
    t.add_argument("--seed", type=int, default=0,
                   help="seeds the network, the epochs' slice draws, the folds and the phantom (default %(default)s)")
    t.add_argument("--device", default="cuda" if _cuda() else "cpu")
    t.add_argument("--threads", type=int, help="CPU threads (default: the idle cores, at least 1; see cpu_threads)")
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", type=Path, default=Path("runs/liver"),
                   help="run folder (default: %(default)s): history.csv and summary.json with validation Dice, HD95 "
                   "and ASSD (mm); best.pt is the epoch with the highest validation Dice (HD95 and ASSD are "
                   "reported, not used to choose)")
    o.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt")
    o.add_argument("--quick", action="store_true", help="smoke test: 6 small phantom volumes, 4 epochs (under a minute); "
                   "the same as --preset quick")
    o.add_argument("--preset", choices=PRESETS, help="the values of the options left unset: default, quick or hard-low-data "
                   "(the hard phantom, 6 volumes in 3 folds, 2 of them training; see liver/config.py)")
    return p


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_threads(requested=None) -> int:
    """Threads for CPU work: ``requested``, else PyTorch's default less the cores already busy.

    PyTorch uses one OpenMP thread per core. When other processes keep cores busy, its threads
    wait for each other at every operator and a training step was measured 20x slower with 2
    threads than with 1 on a 2-core machine with 5 runnable processes (docs/liver-example.md).
    """
    import torch

    if requested is not None:
        if requested < 1:
            raise SystemExit(f"--threads must be >= 1; received {requested}")
        return requested
    busy = int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - busy))


def parse_args(argv=None) -> argparse.Namespace:
    """Parse ``argv``; options left unset take the preset's values (``--preset``, ``--quick``, else default).

    ``folds`` stays None unless given: :func:`choose_folds` settles it once the volumes are counted.
    """
    args = parser().parse_args(argv)
    if args.quick and args.preset not in (None, "quick"):
        raise SystemExit(f"--quick is --preset quick; it cannot be combined with --preset {args.preset}")
    args.preset = "quick" if args.quick else (args.preset or "default")
    args.quick = args.preset == "quick"
    for key, value in PRESETS[args.preset].items():
        if key != "folds" and getattr(args, key) is None:
            setattr(args, key, value)
    if args.train_volumes is not None and args.train_volumes < 1:
        raise SystemExit(f"--train-volumes must be >= 1; received {args.train_volumes}")
    if args.img_size % 32:
        raise SystemExit(f"--img-size must be a multiple of 32 (the U-Net downsamples 5 times); received {args.img_size}")
    if args.fold < 0:
        raise SystemExit(f"--fold must be >= 0; received {args.fold}")
    if args.folds is not None and args.fold >= args.folds:
        raise SystemExit(f"--fold must be in [0, {args.folds - 1}]; received {args.fold}")
    return args


def choose_folds(args: argparse.Namespace, volumes: int) -> tuple[int, str | None]:
    """The fold count for ``volumes`` cases, and a one-line note when it is not the preset's.

    ``--folds`` given: used as is (:func:`liver.folds.patient_folds` refuses a count the data
    cannot serve). Not given: the preset's (4, or 3 with ``--quick`` or ``--preset hard-low-data``),
    or one fold per volume if there are fewer volumes.

    Raises:
        ValueError: fewer than 2 volumes (one to train on, one to validate), or ``--fold`` beyond
            the folds the volumes allow.
    """
    if args.folds is not None:
        return args.folds, None
    default = PRESETS[args.preset]["folds"]
    if volumes < 2:
        raise ValueError(f"training needs at least 2 volumes (one to train on, one to validate); found {volumes}")
    folds = min(int(default), volumes)
    if args.fold >= folds:
        raise ValueError(f"--fold must be in [0, {folds - 1}] (--folds not given: {folds} folds for {volumes} volumes); "
                         f"received {args.fold}")
    if folds == default:
        return folds, None
    return folds, f"--folds not given: using {folds} folds, as many as there are volumes (the default is {default})"
