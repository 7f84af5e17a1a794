"""Command line: is this loss stable under mixed precision?

Usage::

    python -m stableloss.check MODULE:ATTR [--mode binary] [--kwargs JSON] [--channels C]
                               [--input logits|probabilities] [--target-layout indices|indices-channel|one-hot]
                               [--target-format smp|monai] [--device cpu|cuda] [--quick] [--contexts ...] [--time-budget S] [--seed N]

``MODULE:ATTR`` names the loss, e.g. ``segmentation_models_pytorch.losses:DiceLoss`` or
``stableloss:FocalLoss`` (``ATTR`` may be dotted). How it becomes a ``(logits, target) -> loss``
callable:

- a **class** is instantiated as ``ATTR(mode=MODE, **KWARGS)``, or ``ATTR(**KWARGS)`` when its
  constructor has no ``mode`` parameter;
- a **function** is called as ``ATTR(logits, target, mode=MODE, **KWARGS)``, or without ``mode``
  when it has no such parameter (``torchvision.ops:sigmoid_focal_loss``, for instance);
- any other callable object is used as it is (``--kwargs`` must then be empty).

``--mode`` also chooses the targets: binary float masks ``(N, 1, *S)``, multiclass class indices
``(N, *S)``, multilabel float masks ``(N, C, *S)``. ``C`` is 1 for binary; otherwise ``--channels``,
else the length of a per-class keyword (``alpha``, ``class_weights``, ``weight`` given as lists,
looked up in nested objects too), else 3 (and more than the largest of ``classes``). The grid (see
:func:`~stableloss.testing.check_stability`) is printed as a table.

A loss with another input convention says so: ``--input probabilities`` hands it the sigmoid (softmax
in multiclass mode) of the logits, rounded to each context's dtype (segmentation-models-pytorch's
``MCCLoss``); ``--target-layout indices|indices-channel|one-hot`` lays the target out as class indices
``(N, *S)``, indices with a channel dim ``(N, 1, *S)`` (MONAI's ``to_onehot_y=True``) or a float
one-hot ``(N, C, *S)``.

``--target-format`` names a library's whole target convention instead: ``smp`` (the mode's own layout,
as above) or ``monai`` (binary and multilabel masks ``(N, C, *S)``; multiclass ``(N, 1, *S)`` indices
when ``to_onehot_y`` is true, in ``--kwargs`` or by the constructor's default, else a float one-hot
``(N, C, *S)``). It is ``monai`` for a loss under ``monai`` or ``stableloss.monai`` (``monai.losses:DiceLoss``,
``stableloss.monai:DiceCELoss``) and ``smp`` otherwise; ``--target-format`` overrides the guess, and
``--target-layout`` (which may not be given with it) sets the layout itself.

Exit status: 0 when every cell ran every example and held; 1 when a cell fails; 2 on a usage error
(bad arguments, a module or attribute that cannot be imported, a constructor that fails, a keyword
the loss does not take); 3 when nothing failed but the time budget ran out before every example ran
(what did not run was not checked).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import math
import re
import sys
from collections.abc import Callable

import torch

from stableloss._checks import MODES
from stableloss.testing._conventions import (
    INPUTS,
    TARGET_FORMATS,
    TARGET_LAYOUTS,
    check_convention,
    convert_input,
    convert_target,
    format_layout,
)
from stableloss.testing._data import Example
from stableloss.testing._evaluate import CONTEXTS
from stableloss.testing.checker import DEFAULT_CHANNELS, check_stability


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
    """Turn a class, function or callable into a ``(logits, target) -> loss`` callable (see module doc).

    A keyword the class or function does not take is a :class:`UsageError`: for a class from its
    constructor, for a function from its signature (``inspect.signature``, which honours a
    generated ``__signature__``), bound to ``(logits, target, **options)`` before anything runs.
    """
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
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):  # builtins without a signature: the first call decides
            signature = None
        if signature is not None:
            try:
                signature.bind(None, None, **options)
            except TypeError as exc:
                raise UsageError(f"cannot call {obj.__name__}(logits, target, **{options!r}): {exc}") from None
        return functools.partial(obj, **options) if options else obj
    if callable(obj):
        if kwargs:
            raise UsageError(f"--kwargs cannot be applied to an existing callable object {type(obj).__name__}")
        return obj
    raise UsageError(f"the attribute must be a loss class, function or callable; received {type(obj).__name__}")


MONAI_MODULES = ("monai", "stableloss.monai")
"""Packages whose losses take MONAI's targets (``--target-format monai`` unless told otherwise)."""


def guess_target_format(spec: str) -> str:
    """``"monai"`` for a ``MODULE:ATTR`` under one of :data:`MONAI_MODULES`, else ``"smp"``."""
    module = spec.partition(":")[0]
    return "monai" if any(module == m or module.startswith(m + ".") for m in MONAI_MODULES) else "smp"


def takes_onehot_y(obj: object, kwargs: dict) -> bool:
    """Whether the loss one-hot encodes its target: ``to_onehot_y`` from ``kwargs``, else its default.

    The default is the constructor's (or function's) ``to_onehot_y`` default, or an existing
    object's ``to_onehot_y`` attribute; False when it has none.
    """
    if "to_onehot_y" in kwargs:
        return bool(kwargs["to_onehot_y"])
    if inspect.isclass(obj) or inspect.isfunction(obj):
        try:
            parameter = inspect.signature(obj).parameters.get("to_onehot_y")
        except (TypeError, ValueError):
            parameter = None
        return parameter is not None and parameter.default is True
    return getattr(obj, "to_onehot_y", False) is True


def target_layout(args: argparse.Namespace, obj: object, kwargs: dict) -> tuple[str | None, str]:
    """The target layout the command line asks for, and how it was chosen (for the title).

    ``--target-layout`` as given; else the layout of ``--target-format``, or of the format
    :func:`guess_target_format` reads from the loss's name. ``None``: the mode's own.
    """
    if args.target_layout is not None:
        return args.target_layout, ""
    target_format = args.target_format or guess_target_format(args.loss)
    if target_format == "smp":
        return None, ""
    how = "" if args.target_format else " (from the name)"
    layout = format_layout(target_format, args.mode, to_onehot_y=takes_onehot_y(obj, kwargs))
    return layout, f", target_format={target_format}{how}"


PER_CLASS = ("alpha", "class_weights", "weight")
"""Keywords that, given as a list, hold one entry per class (focal ``alpha``, MONAI's ``weight``)."""


def infer_channels(kwargs: dict, mode: str) -> tuple[int | None, str]:
    """The channel count the keyword arguments imply: ``(C, why)``, or ``(None, "")`` for the default.

    Lists under :data:`PER_CLASS` names (at any depth of nested objects, such as
    ``dice_options``) give ``C``; ``classes`` (class indices) needs ``C > max(classes)``. Raises
    :class:`UsageError` when they disagree.
    """
    if mode == "binary":
        return None, ""
    lengths: dict = {}
    indices: list = []

    def visit(options: dict, prefix: str) -> None:
        for key, value in options.items():
            if isinstance(value, dict):
                visit(value, f"{prefix}{key}.")
            elif isinstance(value, list) and key in PER_CLASS:
                lengths[prefix + key] = len(value)
            elif isinstance(value, list) and key == "classes":
                indices.extend(v for v in value if isinstance(v, int) and not isinstance(v, bool))

    visit(kwargs, "")
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise UsageError(f"per-class --kwargs disagree on the number of classes ({found} entries); "
                         "pass --channels")
    if lengths:
        (name, channels), *_ = lengths.items()
        if indices and max(indices) >= channels:
            raise UsageError(f"--kwargs classes {indices} needs more than {max(indices)} channels but {name} has "
                             f"{channels} entries (one per class); pass --channels")
        return channels, f"from {name}"
    if indices and max(indices) + 1 > DEFAULT_CHANNELS:
        return max(indices) + 1, "from classes"
    return None, ""


def check_first_call(loss: Callable, kwargs: dict, *, mode: str, channels: int, device: str, input: str = "logits",
                     target_layout: str | None = None) -> None:
    """Call the loss once on a small example: an unexpected keyword of ``kwargs`` there is a usage error.

    Catches what signature binding cannot see (a ``**options`` function, a class that forwards its
    keywords). Any other exception is left to the grid, which reports it as a failing cell.
    """
    names: set = set()

    def visit(options: dict) -> None:
        for key, value in options.items():
            names.add(key)
            if isinstance(value, dict):
                visit(value)

    visit(kwargs)
    if not names:
        return
    input, target_layout = check_convention(mode, input, target_layout)
    logits, target = Example(mode, (1, channels, 8, 8), "blob", "noise", 1.0).tensors(device)
    logits, target = convert_input(logits, mode, input), convert_target(target, mode, target_layout, channels)
    try:
        with torch.no_grad():
            loss(logits, target)
    except TypeError as exc:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if match and match.group(1) in names:
            raise UsageError(f"the loss does not take the --kwargs keyword {match.group(1)!r}: {exc}") from None
    except Exception:  # noqa: BLE001, S110 - a genuine failure: the grid reports it
        pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stableloss.check",
        description="Run a segmentation loss over precision contexts (float32, fp16/bf16 autocast, plain "
        "fp16/bf16 tensors) and input scenarios, and print the grid.",
        epilog="exit status: 0 every cell ran every example and held; 1 a cell failed; 2 usage error; "
        "3 nothing failed but the time budget ran out before every example ran (not everything was checked).",
    )
    parser.add_argument("loss", help="MODULE:ATTR of a loss class, function or object, e.g. stableloss:DiceLoss")
    parser.add_argument("--mode", default="binary", choices=MODES, help="target mode (default: binary)")
    parser.add_argument("--kwargs", default="{}", help="JSON object of constructor/function keyword arguments")
    parser.add_argument("--channels", type=int, default=None,
                        help="C, the number of classes of multiclass/multilabel inputs (default: the length of a "
                        f"per-class list in --kwargs such as alpha or class_weights, else {DEFAULT_CHANNELS})")
    parser.add_argument("--input", default="logits", choices=INPUTS,
                        help="what the loss takes: logits (default) or probabilities (the sigmoid, or softmax in "
                        "multiclass mode, of the logits)")
    parser.add_argument("--target-layout", default=None, choices=TARGET_LAYOUTS,
                        help="target layout: indices (N, *S), indices-channel (N, 1, *S) as MONAI's to_onehot_y, or "
                        "one-hot (N, C, *S) (default: the mode's own: binary (N, 1, *S) masks, multiclass indices, "
                        "multilabel one-hot)")
    parser.add_argument("--target-format", default=None, choices=TARGET_FORMATS,
                        help="a library's target convention: smp (the mode's own layout) or monai ((N, 1, *S) indices "
                        "when to_onehot_y, else one-hot; binary and multilabel masks) (default: monai for a loss under "
                        "monai or stableloss.monai, else smp); not with --target-layout")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a few seconds)")
    parser.add_argument("--contexts", default=None, help=f"comma-separated subset of {','.join(CONTEXTS)}")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds (> 0); examples left when it runs out are skipped, and the run exits 3 "
                        "(or 1 if a cell failed)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    args = parser.parse_args(argv)
    if args.target_layout is not None and args.target_format is not None:
        parser.error("--target-layout and --target-format cannot be given together (the layout is the format's)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parse_args(argv)
    try:
        try:
            kwargs = json.loads(args.kwargs)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--kwargs must be a JSON object; received {args.kwargs!r} ({exc})") from None
        if not isinstance(kwargs, dict):
            raise UsageError(f"--kwargs must be a JSON object; received {args.kwargs!r}")
        if "mode" in kwargs:  # it would be overridden by --mode, or disagree with the targets built for it
            raise UsageError(f"--kwargs must not hold 'mode' (give it as --mode); received {args.kwargs!r}")
        if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
            raise UsageError(f"--time-budget must be a positive number of seconds; received {args.time_budget!r}")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda was given but no CUDA device is available")
        contexts = None if args.contexts is None else [c.strip() for c in args.contexts.split(",") if c.strip()]
        if contexts is not None and (not contexts or any(c not in CONTEXTS for c in contexts)):
            raise UsageError(f"--contexts must be a comma-separated subset of {','.join(CONTEXTS)}; received {args.contexts!r}")
        channels, why = (args.channels, "") if args.channels is not None else infer_channels(kwargs, args.mode)
        low = {"binary": 1, "multiclass": 2, "multilabel": 1}[args.mode]
        if channels is not None and (channels < low or (args.mode == "binary" and channels != 1)):
            expected = "1" if args.mode == "binary" else f">= {low}"
            raise UsageError(f"--channels must be {expected} with --mode {args.mode}; received {channels}"
                             + (f" ({why} in --kwargs)" if why else ""))
        try:
            check_convention(args.mode, args.input, args.target_layout)
        except ValueError as exc:
            raise UsageError(f"--target-layout {args.target_layout} does not apply to --mode {args.mode}: {exc}") from None
        obj = resolve(args.loss)
        layout, layout_note = target_layout(args, obj, kwargs)
        loss = build_loss(obj, mode=args.mode, kwargs=kwargs)
        if isinstance(loss, torch.nn.Module):
            loss = loss.to(args.device)
        first_channels = channels or (1 if args.mode == "binary" else DEFAULT_CHANNELS)
        check_first_call(loss, kwargs, mode=args.mode, channels=first_channels, device=args.device, input=args.input,
                         target_layout=layout)
    except UsageError as exc:
        print(f"python -m stableloss.check: error: {exc}", file=sys.stderr)
        return 2
    shown = args.loss + (f" {json.dumps(kwargs)}" if kwargs else "")
    report = check_stability(loss, mode=args.mode, contexts=contexts, device=args.device, quick=args.quick,
                             channels=channels, time_budget=args.time_budget, seed=args.seed, input=args.input,
                             target_layout=layout, title=f"stability of {shown}, mode={args.mode!r}{layout_note}"
                             + (" (quick)" if args.quick else ""))
    print(report.table())
    return 1 if report.failures else 0 if report.ok else 3


if __name__ == "__main__":
    sys.exit(main())
