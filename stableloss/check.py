"""Command line: is this loss stable under mixed precision?

Usage::

    python -m stableloss.check MODULE:ATTR [--mode binary] [--kwargs JSON] [--device cpu|cuda] [--quick]

``MODULE:ATTR`` names the loss, e.g. ``segmentation_models_pytorch.losses:DiceLoss`` or
``stableloss:FocalLoss`` (``ATTR`` may be dotted). How it becomes a ``(logits, target) -> loss``
callable:

- a **class** is instantiated as ``ATTR(mode=MODE, **KWARGS)``, or ``ATTR(**KWARGS)`` when its
  constructor has no ``mode`` parameter;
- a **function** is called as ``ATTR(logits, target, mode=MODE, **KWARGS)``, or without ``mode``
  when it has no such parameter (``torchvision.ops:sigmoid_focal_loss``, for instance);
- any other callable object is used as it is (``--kwargs`` must then be empty).

``--mode`` also chooses the targets: binary float masks ``(N, 1, *S)``, multiclass class indices
``(N, *S)``, multilabel float masks ``(N, C, *S)``. The grid (see :mod:`stableloss.testing.checker`)
is printed as a table. Exit status: 0 when every cell holds, 1 when a cell fails, 2 on a usage
error (bad arguments, a module or attribute that cannot be imported, a constructor that fails).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import sys
from typing import Callable, List, Optional

import torch

from stableloss._checks import MODES
from stableloss.testing._evaluate import CONTEXTS
from stableloss.testing.checker import check_stability


class UsageError(Exception):
    """A problem with the command line; printed and answered with exit status 2."""


def _takes_mode(fn: Callable) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return "mode" in parameters


def resolve(spec: str) -> object:
    """Import ``MODULE:ATTR`` and return the attribute."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"the loss must be given as MODULE:ATTR (e.g. stableloss:DiceLoss); received {spec!r}")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a usage error
        raise UsageError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"module {module_name!r} has no attribute {attr!r} ({part!r} not found)")
        obj = getattr(obj, part)
    return obj


def build_loss(obj: object, *, mode: str, kwargs: dict) -> Callable:
    """Turn a class, function or callable into a ``(logits, target) -> loss`` callable (see module doc)."""
    if inspect.isclass(obj):
        options = dict(kwargs, mode=mode) if _takes_mode(obj) else dict(kwargs)
        try:
            instance = obj(**options)
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"cannot build {obj.__name__}(**{options!r}): {type(exc).__name__}: {exc}") from None
        if not callable(instance):
            raise UsageError(f"{obj.__name__}(...) is not callable; pass a loss class or function")
        return instance
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        options = dict(kwargs, mode=mode) if _takes_mode(obj) else dict(kwargs)
        return functools.partial(obj, **options) if options else obj
    if callable(obj):
        if kwargs:
            raise UsageError(f"--kwargs cannot be applied to an existing callable object {type(obj).__name__}")
        return obj
    raise UsageError(f"the attribute must be a loss class, function or callable; received {type(obj).__name__}")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stableloss.check",
        description="Run a segmentation loss over precision contexts (float32, fp16/bf16 autocast, plain "
        "fp16/bf16 tensors) and input scenarios, print the grid; exit 1 if any cell fails.",
    )
    parser.add_argument("loss", help="MODULE:ATTR of a loss class, function or object, e.g. stableloss:DiceLoss")
    parser.add_argument("--mode", default="binary", choices=MODES, help="target mode (default: binary)")
    parser.add_argument("--kwargs", default="{}", help="JSON object of constructor/function keyword arguments")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a few seconds)")
    parser.add_argument("--contexts", default=None, help=f"comma-separated subset of {','.join(CONTEXTS)}")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds; larger sizes are skipped after it")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    args = parse_args(argv)
    try:
        try:
            kwargs = json.loads(args.kwargs)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--kwargs must be a JSON object; received {args.kwargs!r} ({exc})") from None
        if not isinstance(kwargs, dict):
            raise UsageError(f"--kwargs must be a JSON object; received {args.kwargs!r}")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda was given but no CUDA device is available")
        contexts = None if args.contexts is None else [c.strip() for c in args.contexts.split(",") if c.strip()]
        if contexts is not None and (not contexts or any(c not in CONTEXTS for c in contexts)):
            raise UsageError(f"--contexts must be a comma-separated subset of {','.join(CONTEXTS)}; received {args.contexts!r}")
        loss = build_loss(resolve(args.loss), mode=args.mode, kwargs=kwargs)
        if isinstance(loss, torch.nn.Module):
            loss = loss.to(args.device)
    except UsageError as exc:
        print(f"python -m stableloss.check: error: {exc}", file=sys.stderr)
        return 2
    shown = args.loss + (f" {json.dumps(kwargs)}" if kwargs else "")
    report = check_stability(loss, mode=args.mode, contexts=contexts, device=args.device, quick=args.quick,
                             time_budget=args.time_budget, seed=args.seed,
                             title=f"stability of {shown}, mode={args.mode!r}" + (" (quick)" if args.quick else ""))
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
