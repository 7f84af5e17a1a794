"""The CPU fast path of the region losses: hard targets through the core's hard-label overlap sums.

For a target of 0s and 1s, MONAI's counts (``TP = sum p t``, ``E = P + G - 2 TP``, and its
``soft_label`` forms, which agree for hard labels) are the core's ``TP``, ``FP + FN`` of
:mod:`stableloss._overlap_hard`: a few dot products over the logits and one saved buffer, with a
hand-written backward, where the general path of :mod:`._prepare` and :mod:`._region` keeps
``p``, ``1 - p`` (for the softmax, from cumulative sums over the classes) and their products for
autograd. The counts are the same sums of non-negative terms (``q`` as ``sigmoid(-x)``, or the
mass of the other classes), so a near-perfect prediction keeps its small loss.

It applies when the general path would give the same sums and raise or warn nothing:

- ``sigmoid=True`` and a target that is exactly 0 or 1 (checked), or ``softmax=True`` with more
  than one channel and a one-hot target (built by ``to_onehot_y=True``, or checked: 0s and 1s, at
  most one 1 per pixel);
- no ``other_act``, no ``squared_pred``; one channel only without ``to_onehot_y`` and with the
  background kept (the general path warns there);
- CPU, eager, no forward-mode AD or ``torch.func`` transform, a target that needs no gradient
  (:func:`stableloss._overlap._hard_path_applies`); double backward differentiates the general
  definition.

Otherwise :func:`hard_sums` returns ``None`` and the caller takes the general path, which also
raises every error with its message.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from stableloss._activation import LOGIT_LIMIT, compute_dtype
from stableloss._overlap import _hard_path_applies
from stableloss._overlap_hard import HardSigmoidOverlap, batched_dot, complement_if_hard, hard_softmax_sums
from stableloss.monai._prepare import ignore_mask, one_hot_target
from stableloss.monai._region import Counts


class MarginSigmoidOverlap(HardSigmoidOverlap):
    """TP, FP, FN ``(3, C)`` (``(3, N, C)`` per image) from logits ``(N, C, S)`` and a hard target, one sigmoid.

    Each pixel's error mass is ``e = sigmoid(x (v - 2t))``: ``p`` where ``t = 0`` and ``q = 1 - p``
    where ``t = 1``, each computed directly (no ``1 - p``). ``FP = <e, v - t>`` and ``FN = <e, t>``
    are sums of non-negative terms, so a near-perfect prediction keeps its small counts; ``TP`` is
    ``G - FN`` (``G = sum t``). Its rounding is ``eps G`` at most, and every MONAI score divides by
    at least ``min(1, beta) G`` (Dice: ``2 TP + FP + FN >= G``), so it moves a loss by
    ``eps / min(1, beta)`` relative at most. The core's :class:`~stableloss._overlap_hard.HardSigmoidOverlap`
    takes two sigmoids to keep ``TP``'s own relative precision, which only a logarithmic loss needs.
    The backward is the core's (inherited), from ``p q = e (1 - e)``, the one saved buffer.
    """

    @staticmethod
    def forward(input: Tensor, target: Tensor, valid: Optional[Tensor], per_image: bool,  # type: ignore[override]
                spare: Tensor) -> Tuple[Tensor, Tensor]:
        dtype = compute_dtype(input.dtype)
        logits = input if input.dtype == dtype else input.to(dtype)
        margin = torch.sub(spare, target)  # v - 2t: +1, -1, 0 where ignored
        if valid is not None:  # an infinite logit times the 0 of an ignored pixel would be NaN
            logits = (logits.clamp if logits is input else logits.clamp_)(-LOGIT_LIMIT, LOGIT_LIMIT)  # in place on a cast copy
        errors = margin.mul_(logits).sigmoid_()
        fp = batched_dot(errors, spare, per_image)
        fn = batched_dot(errors, target, per_image)
        ground = target.sum(dim=2 if per_image else (0, 2))
        pq = errors.mul_(torch.neg(errors, out=spare).add_(1.0))  # e (1 - e), 1 - e in the spare (no fresh buffer)
        return torch.stack([ground - fn, fp, fn]), pq


class HardCounts(NamedTuple):
    """The fast path's float32 sums per image and class ``(B, C')`` (``(C',)`` with ``batch``), and the
    scored target ``(B, C', S)`` (0 at ignored pixels) for a loss that needs more of it."""

    tp: Tensor
    fp: Tensor
    fn: Tensor
    target: Tensor

    @property
    def counts(self) -> Counts:
        """``TP`` and the error mass ``E = FP + FN`` (:class:`~stableloss.monai._region.Counts`)."""
        return Counts(self.tp, self.fp + self.fn)


def is_one_hot(target: Tensor) -> bool:
    """Every value 0 or 1 and at most one 1 per pixel (a one-hot target, or a pixel of no class)."""
    if complement_if_hard(target, None) is None:
        return False
    return bool(target.sum(dim=1).amax() <= 1) if target.numel() else True


def hard_sums(input: object, target: object, *, include_background: bool, to_onehot_y: bool, sigmoid: bool,
              softmax: bool, other_act: Optional[Callable], ignore_index: Optional[int], batch: bool,
              squared_pred: bool = False) -> Optional[HardCounts]:
    """:class:`HardCounts` (float32, float64 for float64 input, as the general path's counts), or ``None``."""
    if other_act is not None or squared_pred or not (sigmoid or softmax):
        return None
    if not isinstance(input, Tensor) or not isinstance(target, Tensor) or not input.is_floating_point():
        return None
    if input.dim() < 3 or target.dim() != input.dim():
        return None
    channels = input.shape[1]
    if channels == 1 and (softmax or to_onehot_y or not include_background):
        return None
    flat = input.reshape(input.shape[0], channels, -1)
    if not _hard_path_applies(flat, target):
        return None
    dtype = compute_dtype(input.dtype)
    if to_onehot_y:
        if target.shape[1] != 1:
            return None
        full_target = one_hot_target(target, channels, ignore_index, dtype)
    elif target.shape != input.shape:
        return None
    else:
        full_target = target.to(dtype)
        if softmax and not is_one_hot(full_target):
            return None
    mask = ignore_mask(target, ignore_index, dtype)
    valid = None if mask is None else mask.reshape(mask.shape[0], 1, -1).bool()
    full_target = full_target.reshape(flat.shape)
    if valid is not None:
        full_target = full_target * valid
    first = 0 if include_background else 1
    if softmax:
        sums = hard_softmax_sums(flat, full_target, valid, per_image=not batch)[..., first:]
        scored_target = full_target[:, first:]
    else:
        flat, scored_target = flat[:, first:], full_target[:, first:]
        spare = complement_if_hard(scored_target, valid)
        if spare is None:
            return None
        sums = MarginSigmoidOverlap.apply(flat, scored_target, valid, not batch, spare)[0]
    tp, fp, fn = sums.unbind(0)
    return HardCounts(tp, fp, fn, scored_target)
