"""The CUDA half of ``bench/speed.py``: eager against fused stableloss, compiled smp, and a U-Net step.

Sources added to the registry of ``_common`` (``--sources``):

- ``stableloss-eager``: stableloss with ``STABLELOSS_FUSED=0`` (the torch path);
- ``stableloss-fused``: stableloss with ``STABLELOSS_FUSED=1`` (the Triton kernels: CUDA tensors, or CPU
  tensors under ``TRITON_INTERPRET=1``; left out with a note where they cannot run);
- ``smp-compiled``: ``torch.compile`` of the smp loss (backend ``--compile-backend``, default inductor);
- ``fused-1read`` (hybrid only): ``0.7 Dice + 0.3 Focal`` from one fused read of logits and target
  (``stableloss._fused.overlap_focal_sums``), the form the refactored pipeline will take; the public
  ``BoundaryAwareLoss`` runs its two terms' kernels separately.

``unet_rows`` times a training step of ``smp.Unet("efficientnet-b0")`` (random init, no download) with
each loss, and with a constant-cost stand-in loss, and reports the loss's share of the step.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import _common as C
from stableloss import _fused
from stableloss._overlap import Overlap
from stableloss._region import tversky_score

Builder = Callable[[], dict[str, C.LossFn]]


def _with_setting(fn: C.LossFn, setting: str) -> C.LossFn:
    """``fn`` run with ``STABLELOSS_FUSED=setting`` (read at each call; the backward needs no setting)."""

    def call(x: Tensor, t: Tensor) -> Tensor:
        previous = os.environ.get(_fused.ENV_VAR)
        os.environ[_fused.ENV_VAR] = setting
        try:
            return fn(x, t)
        finally:
            if previous is None:
                del os.environ[_fused.ENV_VAR]
            else:
                os.environ[_fused.ENV_VAR] = previous

    return call


def hybrid_one_read(x: Tensor, t: Tensor) -> Tensor:
    """``0.7 Dice + 0.3 Focal(gamma=2)`` for binary ``(N, 1, *S)`` input from one fused read (eager off CUDA)."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    tp, fp, fn, focal, count = _fused.overlap_focal_sums(flat, t.reshape(flat.shape).float(), gamma=2.0)
    overlap = Overlap(tp, fp, fn)
    dice = tversky_score(overlap, alpha=0.5, beta=0.5, smooth=0.0, eps=1e-7, log_loss=False)
    dice = torch.where(overlap.target_sum == 0, 0.0, dice)  # ignore_empty, as DiceLoss
    return C.DICE_WEIGHT * dice.mean() + C.FOCAL_WEIGHT * (focal / count.clamp_min(1.0)).mean()


def builders(device: torch.device, compile_backend: str = "inductor") -> dict[str, Builder]:
    """The sources above, for ``_common.build_impls(..., extra=...)``."""

    def stableloss_with(setting: str) -> Builder:
        def build() -> dict[str, C.LossFn]:
            if setting == "1" and not (device.type == "cuda" or _fused.interpreter_on()):
                print("note: stableloss-fused needs CUDA (or TRITON_INTERPRET=1 on CPU); its rows are skipped")
                return {}
            return {impl.loss: _with_setting(impl.fn, setting) for impl in C.build_impls(C.LOSSES, ['stableloss'])}

        return build

    def compiled_smp() -> dict[str, C.LossFn]:
        return {impl.loss: torch.compile(impl.fn, backend=compile_backend) for impl in C.build_impls(C.LOSSES, ['smp'])}

    def one_read() -> dict[str, C.LossFn]:
        if not (device.type == "cuda" or _fused.interpreter_on()):
            print("note: fused-1read needs CUDA (or TRITON_INTERPRET=1 on CPU); its rows are skipped")
            return {}
        return {"hybrid": _with_setting(hybrid_one_read, "1")}

    return {"stableloss-eager": stableloss_with("0"), "stableloss-fused": stableloss_with("1"),
            "smp-compiled": compiled_smp, "fused-1read": one_read}


def _stand_in(x: Tensor, t: Tensor) -> Tensor:
    """A loss of negligible cost with a gradient for every logit: the step without a real loss."""
    return x.float().mean() * 0.0


def unet_rows(impls: list[C.Impl], shape, precision: str, device: torch.device, *, warmup: int, repeats: int,
              autocast: torch.dtype | None) -> list[dict]:
    """Training-step time of ``smp.Unet("efficientnet-b0")`` with each loss, and the loss's share of it.

    The step is forward, loss, backward and an Adam update, under ``autocast`` (fp16 autocast uses a
    ``GradScaler``). The share is ``(step with the loss - step with a stand-in) / step with the loss``,
    medians of interleaved steps; ``step_ms`` is the median step time.
    """
    smp: Any = C.optional_import("segmentation_models_pytorch")
    if smp is None or len(shape) != 4:
        return []
    torch.manual_seed(0)
    model = smp.Unet("efficientnet-b0", encoder_weights=None, in_channels=shape[1], classes=shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(shape, generator=gen).to(device)
    _, target, _ = C.soft_prediction(shape, generator=gen)
    target = target.to(device)

    def step(loss_fn: C.LossFn) -> None:
        optimizer.zero_grad(set_to_none=True)
        with C.precision_context(device, autocast):
            loss = loss_fn(model(images), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    fns: dict[str, C.LossFn] = {"stand-in": _stand_in}
    fns.update({impl.label: impl.fn for impl in impls})
    for fn in fns.values():
        for _ in range(warmup):
            step(fn)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            C.sync(device)
            start = time.perf_counter()
            step(fn)
            C.sync(device)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["stand-in"])
    label = "x".join(map(str, shape))
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append({"shape": label, "precision": precision, "impl": name, "step_ms": 1e3 * median,
                     "loss_share": (median - base) / median})
    return rows
