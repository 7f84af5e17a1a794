"""Host side of the Triton kernels: launch layout, argument packing, and the two entry points.

:func:`forward` and :func:`backward` are what the custom ops of :mod:`stableloss._fused._ops` call;
the kernels themselves are in :mod:`stableloss._fused._kernels` (looked up at each launch, so that a
reload of that module, as the interpreter tests do, takes effect).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import triton  # type: ignore[import]
from torch import Tensor

from stableloss._fused import _kernels as K


def _split(value: float) -> tuple[float, float]:
    """``value`` as a float32 pair ``hi + lo`` (float64 kernels rebuild it to 48 bits)."""
    hi = float(np.float32(value))
    return hi, float(np.float32(value - hi))


def _gamma_kind(gamma: float) -> int:
    if gamma == 0.0:
        return K.GAMMA_ZERO
    if gamma == 1.0:
        return K.GAMMA_ONE
    if gamma == 2.0:
        return K.GAMMA_TWO
    return K.GAMMA_ABOVE_ONE if gamma > 1.0 else K.GAMMA_BELOW_ONE


def _layout(rows: int, size: int, device: torch.device) -> tuple[int, int, int]:
    """``(block, chunk, parts)``: elements per step, per program, and programs per row."""
    if K.INTERPRETED:
        block, programs = 32, 2 * rows  # small blocks, two parts per row: masks and partial sums get exercised
    else:
        block = 1024
        programs = 8 * torch.cuda.get_device_properties(device).multi_processor_count
    steps = triton.cdiv(size, block)
    parts = max(1, min(steps, triton.cdiv(programs, rows)))
    chunk = triton.cdiv(steps, parts) * block
    return block, chunk, triton.cdiv(size, chunk)


def _on(device: torch.device):
    """Launch on the tensors' GPU (Triton launches on the current device), or nowhere in particular on CPU."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _strides(tensor: Tensor, shape) -> tuple[Tensor, tuple[int, ...]]:
    view = torch.broadcast_to(tensor, shape)
    if view.dtype == torch.bool:
        view = view.view(torch.uint8)
    return view, tuple(view.stride())


def _options(gamma: float, alpha: Tensor | None, alpha_scalar: float | None, threshold: float | None) -> dict:
    scale = threshold ** -gamma if threshold is not None else 1.0
    cut = -math.log(threshold) if threshold is not None else 0.0
    args = [*_split(gamma), *_split(alpha_scalar or 0.0), *_split(scale), *_split(cut)]
    kind = K.ALPHA_PER_CLASS if alpha is not None else (K.ALPHA_SCALAR if alpha_scalar is not None else K.ALPHA_NONE)
    return {"scalars": args, "ALPHA": kind, "GAMMA": _gamma_kind(gamma), "THRESHOLD": threshold is not None}


def forward(logits: Tensor, target: Tensor, valid: Tensor | None, alpha: Tensor | None, overlap: bool,
            focal: bool, gamma: float, alpha_scalar: float | None, threshold: float | None, acc: torch.dtype) -> Tensor:
    """Per-row sums ``(K, N, C)`` of the enabled quantities (``K = 3 overlap + 2 focal``)."""
    batch, classes, size = logits.shape
    rows = batch * classes
    block, chunk, parts = _layout(rows, size, logits.device)
    target, t_strides = _strides(target, logits.shape)
    mask, v_strides = _strides(valid, logits.shape) if valid is not None else (logits, (0, 0, 0))
    alpha_arg = alpha.to(acc).contiguous() if alpha is not None else logits
    out = torch.empty((3 * overlap + 2 * focal, rows, parts), dtype=acc, device=logits.device)
    opts = _options(gamma, alpha, alpha_scalar, threshold)
    with _on(logits.device):
        K._forward_kernel[(rows, parts)](
            logits, target, mask, alpha_arg, out, classes, size, chunk, parts, rows,
            *logits.stride(), *t_strides, *v_strides, *opts["scalars"],
            HAS_VALID=valid is not None, OVERLAP=overlap, FOCAL=focal, ALPHA=opts["ALPHA"], GAMMA=opts["GAMMA"],
            THRESHOLD=opts["THRESHOLD"], BLOCK=block,
        )
    return out.sum(dim=2).view(-1, batch, classes)


def backward(grad: Tensor, logits: Tensor, target: Tensor, valid: Tensor | None, alpha: Tensor | None,
             overlap: bool, focal: bool, gamma: float, alpha_scalar: float | None, threshold: float | None,
             want_input: bool, want_target: bool) -> tuple[Tensor, Tensor]:
    """Gradients for the logits (their dtype) and the target (its dtype) from ``grad`` of shape ``(K, N, C)``."""
    batch, classes, size = logits.shape
    rows = batch * classes
    block, chunk, parts = _layout(rows, size, logits.device)
    target_view, t_strides = _strides(target, logits.shape)
    mask, v_strides = _strides(valid, logits.shape) if valid is not None else (logits, (0, 0, 0))
    alpha_arg = alpha.to(grad.dtype).contiguous() if alpha is not None else logits
    # Triton's interpreter casts float32 to bfloat16 by truncation (compiled kernels round to nearest):
    # there the kernel writes float32 and torch rounds.
    input_dtype = grad.dtype if K.INTERPRETED and logits.dtype == torch.bfloat16 else logits.dtype
    grad_input = torch.empty(logits.shape if want_input else (0,), dtype=input_dtype, device=logits.device)
    grad_target = torch.empty(logits.shape if want_target else (0,), dtype=target.dtype, device=logits.device)
    opts = _options(gamma, alpha, alpha_scalar, threshold)
    with _on(logits.device):
        K._backward_kernel[(rows, parts)](
            grad.contiguous(), logits, target_view, mask, alpha_arg, grad_input, grad_target, classes, size, chunk,
            rows, *logits.stride(), *t_strides, *v_strides, *opts["scalars"],
            HAS_VALID=valid is not None, OVERLAP=overlap, FOCAL=focal, ALPHA=opts["ALPHA"], GAMMA=opts["GAMMA"],
            THRESHOLD=opts["THRESHOLD"], WANT_X=want_input, WANT_T=want_target, BLOCK=block,
        )
    return grad_input.to(logits.dtype), grad_target
