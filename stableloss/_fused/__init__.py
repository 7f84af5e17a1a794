"""Per-class sums of the sigmoid path, from fused Triton kernels where they can run, eager torch elsewhere.

Three entry points with the eager path's semantics, for ``(N, C, S)`` logits (any float dtype), a
float ``(N, C, S)`` target in [0, 1] (0 at ignored pixels) and an optional bool validity mask
broadcastable to it:

- :func:`overlap_sums`: TP, FP, FN (``_overlap.eager_sums`` with a sigmoid);
- :func:`sigmoid_focal_sums`: the focal loss summed per class and the count of valid elements
  (``_sigmoid_focal.sigmoid_focal_terms`` with the weights of ``focal._sigmoid_focal``);
- :func:`overlap_focal_sums`: both from one read of the inputs (the Dice + Focal hybrid).

Each returns float32 sums (float64 for float64 logits) over the batch, ``(K, C)``, or per image,
``(K, N, C)``. Which path runs (:func:`use_fused`): ``fused=True`` or ``False`` decides; with the
default ``None``, the environment variable ``STABLELOSS_FUSED`` does (``0``: eager; ``1``: fused
wherever Triton can run the kernels, CUDA tensors or any tensor under ``TRITON_INTERPRET=1``; both
are explicit choices), and otherwise (automatic mode) the eager path runs: the kernels have run only
in Triton's interpreter, never on a GPU, so automatic mode does not select them until
:data:`AUTO_ENABLED` is turned on with the GPU evidence committed (``bench/gpu_evidence.py``; see
docs/benchmarks.md, "GPU evidence"). Triton is optional: this module imports without it, and the
kernels module is imported on first use.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

# modules, not names: _overlap may import this package
from stableloss import _overlap, _sigmoid_focal
from stableloss._activation import compute_dtype

# torch.library.custom_op and register_autograd arrived in torch 2.4; older torch keeps the eager path.
_CUSTOM_OPS = hasattr(torch.library, "custom_op") and hasattr(torch.library, "register_autograd")
if _CUSTOM_OPS:
    from stableloss._fused._ops import fused_sums

ENV_VAR = "STABLELOSS_FUSED"

# Whether automatic mode (fused=None, STABLELOSS_FUSED unset) runs the kernels for CUDA tensors when Triton
# is installed. False: they have run only in Triton's CPU interpreter (one program at a time: no races, no
# GPU math). Turn it on in the same commit as the evidence, docs/gpu-evidence.json (and .md), a passing
# report of `python bench/gpu_evidence.py --out docs/gpu-evidence.json` run on a GPU (docs/benchmarks.md,
# "GPU evidence"). fused=True and STABLELOSS_FUSED=1 select the kernels whatever this says.
AUTO_ENABLED = False
Alpha = float | Tensor | None


def _find_triton() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["triton"] is None (import blocked)
        return False


_TRITON_INSTALLED = _CUSTOM_OPS and _find_triton()
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def triton_installed() -> bool:
    """Whether the ``triton`` package is installed (not imported here) and torch has custom ops (2.4+)."""
    return _TRITON_INSTALLED


def interpreter_on() -> bool:
    """Whether Triton kernels run in its CPU interpreter: ``TRITON_INTERPRET=1`` (when first imported)."""
    import sys

    kernels = sys.modules.get("stableloss._fused._kernels")
    if kernels is not None:
        return bool(kernels.INTERPRETED)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _runnable(logits: Tensor) -> bool:
    return _TRITON_INSTALLED and (logits.is_cuda or interpreter_on())


def use_fused(logits: Tensor, fused: bool | None = None) -> bool:
    """Whether the fused kernels run for ``logits`` (see the module docstring for the rules).

    Args:
        logits: The input the sums are computed from.
        fused: ``True`` (required; raises where the kernels cannot run), ``False`` (eager), or
            ``None`` (``STABLELOSS_FUSED``, else automatic: eager while :data:`AUTO_ENABLED` is False,
            as it is until the kernels have GPU evidence; then CUDA tensors with Triton installed).

    Raises:
        ValueError: ``fused`` is not a bool or None, ``STABLELOSS_FUSED`` is not ``0`` or ``1``, or
            ``fused=True`` where the kernels cannot run (no Triton, or a CPU tensor without
            ``TRITON_INTERPRET=1``).
    """
    if fused is not None and not isinstance(fused, bool):
        raise ValueError(f"fused must be True, False or None; received {fused!r}")
    if logits.dtype not in _FLOATS and fused is not True:
        return False
    if fused is None:
        setting = os.environ.get(ENV_VAR, "").strip()
        if setting not in ("", "0", "1"):
            raise ValueError(f"{ENV_VAR} must be 0 or 1 (or unset); received {setting!r}")
        if setting == "0":
            return False
        if setting == "1":
            return _runnable(logits)
        return AUTO_ENABLED and logits.is_cuda and _TRITON_INSTALLED
    if fused and not _runnable(logits):
        why = ("Triton is not installed (or torch is older than 2.4)" if not _TRITON_INSTALLED
               else f"the tensor is on {logits.device.type} and TRITON_INTERPRET is not 1")
        raise ValueError(f"fused=True needs Triton and a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors); {why}")
    if fused and logits.dtype not in _FLOATS:
        raise ValueError(f"fused=True needs float16, bfloat16, float32 or float64 logits; received {logits.dtype}")
    return fused


def _alpha_args(alpha: Alpha, logits: Tensor):
    if isinstance(alpha, Tensor):
        return alpha.to(device=logits.device, dtype=compute_dtype(logits.dtype)), None
    return None, None if alpha is None else float(alpha)


def overlap_sums(flat_logits: Tensor, target: Tensor, valid: Tensor | None = None, per_image: bool = False, *,
                 fused: bool | None = None) -> Tensor:
    """Soft TP, FP, FN per class of ``sigmoid(flat_logits)`` against ``target``.

    .. math::

        TP = \\sum_i \\min(p_i v_i, t_i), \\quad FP = \\sum_i \\max(p_i v_i - t_i, 0), \\quad
        FN = \\sum_i \\max(q_i - (1 - t_i), 0), \\qquad p = \\sigma(x), \\; q = \\sigma(-x)

    Args:
        flat_logits: ``(N, C, S)`` logits, any float dtype.
        target: ``(N, C, S)`` float target in [0, 1], 0 at ignored pixels.
        valid: Bool mask broadcastable to ``(N, C, S)``, or ``None``.
        per_image: Sums per image ``(3, N, C)`` instead of over the batch ``(3, C)``.
        fused: See :func:`use_fused`.

    Returns:
        ``(3, C)`` or ``(3, N, C)``: TP, FP, FN; float32 (float64 for float64 logits).

    Example:
        >>> x = torch.tensor([[[20.0, -20.0, 0.0]]])
        >>> t = torch.tensor([[[1.0, 0.0, 1.0]]])
        >>> [round(v, 4) for v in overlap_sums(x, t, fused=False).flatten().tolist()]
        [1.5, 0.0, 0.5]

    Note:
        ``q`` is ``sigmoid(-x)``, not ``1 - p``, so a count of tiny terms keeps float32 relative
        precision. The fused backward recomputes ``p``, ``q`` and ``sign(p - t)`` from the inputs
        instead of keeping them.
    """
    if use_fused(flat_logits, fused):
        sums = fused_sums(flat_logits, target, valid, None, True, False, 0.0, None, None)
        return sums if per_image else sums.sum(dim=1)
    return _overlap.eager_sums(flat_logits, target, valid, "sigmoid", per_image)


def sigmoid_focal_sums(flat_logits: Tensor, target: Tensor, valid: Tensor | None = None, *, gamma: float = 2.0,
                       alpha: Alpha = None, reduced_threshold: float | None = None, per_image: bool = False,
                       fused: bool | None = None) -> Tensor:
    """Sigmoid focal loss summed per class, and the number of valid elements per class.

    .. math::

        \\ell_i = w_i v_i (1 - p_{t,i})^{\\gamma} \\, \\mathrm{ce}_i, \\qquad
        \\mathrm{ce}_i = \\max(x_i, 0) - t_i x_i + \\log(1 + e^{-|x_i|})

    with ``w = alpha t + (1 - alpha)(1 - t)`` for a scalar ``alpha``, ``alpha[c]`` for a per-class
    tensor, 1 for ``None``; logits clamped to +-65504 with a straight-through gradient. The focal
    loss of ``focal_loss(..., reduction="mean")`` for a sigmoid mode is ``mean_c(sum_c / count_c)``.

    Args:
        flat_logits: ``(N, C, S)`` logits, any float dtype.
        target: ``(N, C, S)`` float target in [0, 1], 0 at ignored pixels.
        valid: Bool mask broadcastable to ``(N, C, S)``, or ``None``.
        gamma: Focusing exponent >= 0.
        alpha: ``None``, a scalar in [0, 1], or a ``(C,)`` tensor of class weights.
        reduced_threshold: Reduced focal loss threshold in (0, 1], or ``None``.
        per_image: Sums per image ``(2, N, C)`` instead of over the batch ``(2, C)``.
        fused: See :func:`use_fused`.

    Returns:
        ``(2, C)`` or ``(2, N, C)``: the loss sum and the valid count; float32 (float64 for float64
        logits). The count has no gradient.

    Example:
        >>> x = torch.tensor([[[float("inf"), 0.0]]], dtype=torch.float16)
        >>> t = torch.tensor([[[0.0, 1.0]]])
        >>> [round(v, 2) for v in sigmoid_focal_sums(x, t, gamma=0.0, fused=False).flatten().tolist()]
        [65504.69, 2.0]
    """
    alpha_tensor, alpha_scalar = _alpha_args(alpha, flat_logits)
    if use_fused(flat_logits, fused) and not (alpha_tensor is not None and alpha_tensor.requires_grad):
        sums = fused_sums(flat_logits, target, valid, alpha_tensor, False, True, float(gamma),
                                                 alpha_scalar, reduced_threshold)
        return sums if per_image else sums.sum(dim=1)
    return _eager_focal_sums(flat_logits, target, valid, alpha_tensor, alpha_scalar, gamma, reduced_threshold,
                             per_image)


def overlap_focal_sums(flat_logits: Tensor, target: Tensor, valid: Tensor | None = None, *, gamma: float = 2.0,
                       alpha: Alpha = None, reduced_threshold: float | None = None, per_image: bool = False,
                       fused: bool | None = None) -> Tensor:
    """:func:`overlap_sums` and :func:`sigmoid_focal_sums` stacked, ``(5, C)`` or ``(5, N, C)``, from one read.

    Rows: TP, FP, FN, focal loss sum, valid count. The fused path reads the logits and target once
    in the forward and once in the backward for both losses; the eager path runs the two eager
    computations.

    Example:
        >>> x, t = torch.zeros(2, 1, 5), torch.ones(2, 1, 5)
        >>> overlap_focal_sums(x, t, fused=False).shape
        torch.Size([5, 1])
    """
    alpha_tensor, alpha_scalar = _alpha_args(alpha, flat_logits)
    if use_fused(flat_logits, fused) and not (alpha_tensor is not None and alpha_tensor.requires_grad):
        sums = fused_sums(flat_logits, target, valid, alpha_tensor, True, True, float(gamma),
                                                 alpha_scalar, reduced_threshold)
        return sums if per_image else sums.sum(dim=1)
    overlap = overlap_sums(flat_logits, target, valid, per_image, fused=False)
    focal = _eager_focal_sums(flat_logits, target, valid, alpha_tensor, alpha_scalar, gamma, reduced_threshold,
                              per_image)
    return torch.cat([overlap, focal])


def _eager_focal_sums(logits: Tensor, target: Tensor, valid: Tensor | None, alpha: Tensor | None,
                      alpha_scalar: float | None, gamma: float, reduced_threshold: float | None,
                      per_image: bool) -> Tensor:
    """The eager focal path of ``focal._sigmoid_focal`` (weights, terms, per-class sums and counts)."""
    weight: Tensor | None = None
    if alpha is not None:
        weight = alpha.view(1, -1, 1)
    elif alpha_scalar is not None:
        weight = target * (2.0 * alpha_scalar - 1.0) + (1.0 - alpha_scalar)
    if valid is not None:
        weight = valid.to(target.dtype) if weight is None else weight * valid
    loss = _sigmoid_focal.sigmoid_focal_terms(logits, target, gamma=gamma, reduced_threshold=reduced_threshold,
                                              weight=weight)
    dims = (2,) if per_image else (0, 2)
    total = loss.sum(dim=dims)
    if valid is None:
        count = torch.full_like(total, float(logits.shape[2] if per_image else logits.shape[0] * logits.shape[2]))
    else:
        count = torch.broadcast_to(valid, loss.shape).sum(dim=dims, dtype=loss.dtype)
    return torch.stack([total, count])
