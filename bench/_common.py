"""Shared pieces of the bench scripts: the loss registry, timing, peak memory, metadata, tables.

The registry pairs every stableloss loss with its counterparts in segmentation-models-pytorch
(smp) and MONAI, built with matching options, so that the scripts compare like with like. The
anchors are optional: when a library is missing, its entries are left out and one line says so.
Only the public API of stableloss is used.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import stableloss as sl

LossFn = Callable[[Tensor, Tensor], Tensor]

LOSSES = ("dice", "tversky", "jaccard", "focal", "log_cosh_dice", "hybrid")
"""The region losses; ``tversky`` uses alpha=0.3 (FP), beta=0.7 (FN); ``hybrid`` is the seed experiment's
0.7 Dice + 0.3 Focal(gamma 2) (stableloss: ``BoundaryAwareLoss(mode, boundary=None)``)."""

BOUNDARY_LOSSES = ("boundary_aware", "boundary_loss", "hausdorff_dt", "boundary_dou")
"""The boundary-aware losses: ``boundary_aware`` is ``BoundaryAwareLoss(mode)`` with the library's
defaults; ``boundary_loss`` Kervadec's boundary loss, ``hausdorff_dt`` Karimi's Hausdorff-DT loss
(stableloss and MONAI, each with its defaults), ``boundary_dou`` Sun's boundary DoU (stableloss only)."""

ALL_LOSSES = LOSSES + BOUNDARY_LOSSES

SOURCES = ("stableloss", "smp", "monai")
"""Libraries compared; ``stableloss-noval`` (stableloss with ``validate_args=False``) may be added."""

TVERSKY_ALPHA, TVERSKY_BETA = 0.3, 0.7
DICE_WEIGHT, FOCAL_WEIGHT = 0.7, 0.3


@dataclass(frozen=True)
class Impl:
    """One implementation of one loss: ``loss`` is the key in :data:`LOSSES`, ``source`` the library."""

    loss: str
    source: str
    fn: LossFn

    @property
    def label(self) -> str:
        return f"{self.source}:{self.loss}"


_NOTED: set = set()


def optional_import(name: str) -> Any:
    """Import ``name`` or return None, printing one note per missing module."""
    try:
        return importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - ImportError, or a broken install raising something else
        if name not in _NOTED:
            print(f"note: {name} is not importable ({type(err).__name__}: {err}); its rows are skipped")
            _NOTED.add(name)
        return None


def _log_cosh(fn: LossFn) -> LossFn:
    """``log(cosh(fn))``: the naive log-cosh Dice that libraries without one would write."""
    return lambda x, t: torch.log(torch.cosh(fn(x, t)))


def _weighted(dice: LossFn, focal: LossFn) -> LossFn:
    return lambda x, t: DICE_WEIGHT * dice(x, t) + FOCAL_WEIGHT * focal(x, t)


def without_validation(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with ``validate_args=False`` set on it and on every loss inside it."""
    for part in module.modules():
        if hasattr(part, "validate_args"):
            setattr(part, "validate_args", False)  # noqa: B010 - typed as Tensor | Module
    return module


def _stableloss_impls(validate_args: bool = True) -> dict[str, LossFn]:
    kw: dict[str, Any] = {"validate_args": validate_args}
    modules: dict[str, torch.nn.Module] = {
        "dice": sl.DiceLoss("binary", **kw),
        "tversky": sl.TverskyLoss("binary", alpha=TVERSKY_ALPHA, beta=TVERSKY_BETA, **kw),
        "jaccard": sl.JaccardLoss("binary", **kw),
        "focal": sl.FocalLoss("binary", gamma=2.0, **kw),
        "log_cosh_dice": sl.LogCoshDiceLoss("binary", **kw),
        "hybrid": sl.BoundaryAwareLoss("binary", boundary=None, dice=sl.DiceLoss("binary", **kw),
                                       focal=sl.FocalLoss("binary", gamma=2.0, **kw)),
        # The library's defaults, whatever they are: never restated here.
        "boundary_aware": sl.BoundaryAwareLoss("binary"),
        "boundary_loss": sl.BoundaryLoss("binary"),
        "hausdorff_dt": sl.HausdorffDTLoss("binary"),
        "boundary_dou": sl.BoundaryDoULoss("binary"),
    }
    if not validate_args:
        for module in modules.values():
            without_validation(module)
    return dict(modules.items())


def _smp_impls() -> dict[str, LossFn]:
    smp = optional_import("segmentation_models_pytorch")
    if smp is None:
        return {}
    losses = smp.losses
    dice = losses.DiceLoss("binary")
    focal = losses.FocalLoss("binary", gamma=2.0)
    return {
        "dice": dice,
        "tversky": losses.TverskyLoss("binary", alpha=TVERSKY_ALPHA, beta=TVERSKY_BETA),
        "jaccard": losses.JaccardLoss("binary"),
        "focal": focal,
        "log_cosh_dice": _log_cosh(dice),
        "hybrid": _weighted(dice, focal),
    }


def _monai_impls() -> dict[str, LossFn]:
    if optional_import("monai") is None:
        return {}
    from monai import losses

    # batch=True: one score per class over the batch, like smp's and stableloss's default.
    dice = losses.DiceLoss(sigmoid=True, batch=True)
    return {
        "dice": dice,
        "tversky": losses.TverskyLoss(sigmoid=True, batch=True, alpha=TVERSKY_ALPHA, beta=TVERSKY_BETA),
        "jaccard": losses.DiceLoss(sigmoid=True, batch=True, jaccard=True),
        "focal": losses.FocalLoss(gamma=2.0),
        "log_cosh_dice": _log_cosh(dice),
        "hybrid": losses.DiceFocalLoss(sigmoid=True, batch=True, gamma=2.0, lambda_dice=DICE_WEIGHT, lambda_focal=FOCAL_WEIGHT),
        # Distance maps recomputed inside every forward (SciPy, a loop over batch x channel).
        "boundary_loss": losses.BoundaryLoss(sigmoid=True),
        "hausdorff_dt": losses.HausdorffDTLoss(sigmoid=True),
    }


def build_impls(losses: Sequence[str] = LOSSES, sources: Sequence[str] = SOURCES,
                extra: dict[str, Callable[[], dict[str, LossFn]]] | None = None) -> list[Impl]:
    """Every available implementation of ``losses`` (from :data:`ALL_LOSSES`) from ``sources``, grouped by loss.

    ``extra``: more sources, name -> builder of ``{loss: fn}`` (``_fused_rows.builders``).
    """
    builders = {"stableloss": _stableloss_impls, "stableloss-noval": lambda: _stableloss_impls(False),
                "smp": _smp_impls, "monai": _monai_impls, **(extra or {})}
    unknown = [name for name in list(losses) if name not in ALL_LOSSES] + [s for s in sources if s not in builders]
    if unknown:
        raise SystemExit(f"unknown loss or source {unknown}; losses are {list(ALL_LOSSES)}, sources {sorted(builders)}")
    tables = {src: builders[src]() for src in sources}
    return [Impl(loss, src, tables[src][loss]) for loss in losses for src in sources if loss in tables[src]]


def ball_target(shape: Sequence[int], *, generator: torch.Generator, device="cpu") -> tuple:
    """A binary ball ("blob") per image and the analytic signed distance to its surface.

    Args:
        shape: ``(N, 1, *S)`` with 2 or 3 spatial dims.

    Returns:
        ``(target, distance, centers, radii)``: ``target`` float32 ``(N, 1, *S)`` in {0, 1};
        ``distance`` float32, in pixels, positive inside the ball.
    """
    n, spatial = shape[0], shape[2:]
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in spatial], indexing="ij")
    coords = torch.stack(grids)  # (D, *S)
    size = torch.tensor(spatial, dtype=torch.float32)
    centers = size * (0.35 + 0.3 * torch.rand(n, len(spatial), generator=generator))
    radii = min(spatial) * (0.15 + 0.1 * torch.rand(n, generator=generator))
    view = (n, len(spatial)) + (1,) * len(spatial)
    dist = radii.view((n,) + (1,) * len(spatial)) - (coords.unsqueeze(0) - centers.view(view)).norm(dim=1)
    dist = dist.unsqueeze(1)
    return (dist > 0).float().to(device), dist.to(device), centers, radii


def soft_prediction(shape: Sequence[int], *, generator: torch.Generator, device="cpu", width: float = 2.0) -> tuple:
    """A blob target and a realistic soft prediction of it, as logits.

    The prediction is the target's ball shifted by up to 2 pixels and grown or shrunk by up to
    2 pixels, with logits ``signed distance / width`` clipped to +-8 plus N(0, 0.5) noise: confident
    far from the surface, uncertain near it, and wrong in a thin shell, as a half-trained network is.

    Returns:
        ``(logits, target, distance)``; ``distance`` is the target's signed distance in pixels.
    """
    target, dist, centers, radii = ball_target(shape, generator=generator)
    n, spatial = shape[0], shape[2:]
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in spatial], indexing="ij")
    coords = torch.stack(grids)
    shift = 4 * torch.rand(n, len(spatial), generator=generator) - 2
    grow = 4 * torch.rand(n, generator=generator) - 2
    view = (n, len(spatial)) + (1,) * len(spatial)
    pred = (radii + grow).view((n,) + (1,) * len(spatial)) - (coords.unsqueeze(0) - (centers + shift).view(view)).norm(dim=1)
    noise = 0.5 * torch.randn(pred.shape, generator=generator)
    logits = ((pred / width).clamp(-8, 8) + noise).unsqueeze(1)
    return logits.to(device), target.to(device), dist.to(device)


def floor_fn(x: Tensor, t: Tensor) -> Tensor:
    """The memory-bound floor: ``sigmoid(x).sum()`` forward and backward.

    One elementwise pass that every probabilistic loss must make at least (read the logits,
    write the probabilities; backward reads them and writes the gradient). Loss times are
    reported as multiples of it.
    """
    return torch.sigmoid(x).sum(dtype=torch.float32)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precision_context(device: torch.device, autocast: torch.dtype | None):
    """``torch.autocast`` to ``autocast`` on ``device``, or a no-op context for None."""
    if autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast)


def fwd_bwd(fn: LossFn, x: Tensor, t: Tensor, autocast: torch.dtype | None) -> Tensor:
    """One forward and backward of ``fn``; returns the (detached) loss."""
    x.grad = None
    with precision_context(x.device, autocast):
        loss = fn(x, t)
    loss.backward()
    return loss.detach()


def gradient(fn: LossFn, x: Tensor, t: Tensor, autocast: torch.dtype | None) -> tuple:
    """Loss (float) and gradient with respect to the leaf ``x``; an exception gives ``(error, None)``."""
    x = x.detach().requires_grad_()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = fwd_bwd(fn, x, t, autocast)
    except Exception as err:  # noqa: BLE001 - an anchor that does not support this dtype or device
        return f"{type(err).__name__}: {str(err).splitlines()[0][:70]}", None
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    return float(loss.float()), grad


def time_interleaved(
    fns: dict[str, LossFn], x: Tensor, t: Tensor, *, autocast: torch.dtype | None, warmup: int, repeats: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per forward+backward, ``repeats`` times each, the implementations interleaved.

    Interleaving (A B C A B C ...) spreads machine noise (other processes, frequency changes)
    evenly over the implementations, so their ratios stay meaningful on a shared machine.
    ``clock`` is wall time by default; ``time.thread_time`` counts only the CPU time of this
    thread, which leaves out the time other processes hold the core (valid with one torch thread).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fwd_bwd(fn, x, t, autocast)
    sync(x.device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(x.device)
            start = clock()
            fwd_bwd(fn, x, t, autocast)
            sync(x.device)
            times[name].append(clock() - start)
    return times


def spread(samples: Sequence[float]) -> tuple:
    """Median and interquartile range."""
    if len(samples) < 4:
        return statistics.median(samples), max(samples) - min(samples)
    q = statistics.quantiles(samples, n=4)
    return statistics.median(samples), q[2] - q[0]


def peak_memory(fn: LossFn, x: Tensor, t: Tensor, autocast: torch.dtype | None) -> int:
    """Peak bytes allocated during one forward+backward, above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the allocation and free events recorded by
    ``torch.profiler(profile_memory=True)``, summed in time order (the CPU allocator keeps no
    peak statistic, and resident-set size hides what malloc reuses). Includes ``x.grad``.
    """
    x.grad = None
    if x.device.type == "cuda":
        sync(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        fwd_bwd(fn, x, t, autocast)
        sync(x.device)
        return torch.cuda.max_memory_allocated(x.device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fwd_bwd(fn, x, t, autocast)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def metadata(device: torch.device) -> dict:
    """Versions, device, threads and commit of this run."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__, "stableloss": sl.__version__}
    for name in ("segmentation_models_pytorch", "monai", "numpy"):
        mod = sys.modules.get(name)
        versions[name] = getattr(mod, "__version__", None) if mod else None
    info = {
        "versions": versions,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "commit": git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv,
        "env": {k: os.environ[k] for k in ("GLIBC_TUNABLES", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }
    return info


def timing_device(args) -> torch.device:
    """Apply ``--threads`` and resolve ``--device`` for a timing script; ``--clock thread`` needs the CPU."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.clock == "thread" and device.type == "cuda":
        raise SystemExit("--clock thread measures CPU time; use the wall clock on CUDA")
    return device


def resolve_device(name: str | None) -> torch.device:
    """``--device`` value, defaulting to CUDA when present."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine")
    return device


def format_table(rows: list[dict], columns: Sequence[str]) -> str:
    """A plain-text table with right-aligned numbers."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "nan"
            if value == 0 or 1e-3 <= abs(value) < 1e5:
                return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
            return f"{value:.2e}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths, strict=False)))
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def atomic_write(path: str, content: str | Callable[[str], object]) -> None:
    """Write ``content`` (text, or a callable that writes the file at the path it is given) to
    ``path`` through a temporary sibling and ``os.replace``: a reader never sees a partial file."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{ext}"  # the extension stays, for writers that go by it
    try:
        if isinstance(content, str):
            with open(tmp, "w", newline="") as fh:
                fh.write(content)
        else:
            content(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
