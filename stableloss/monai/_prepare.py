"""MONAI's input conventions, once: activation, one-hot target, background channel, ignore mask.

Every :mod:`stableloss.monai` loss starts here, as MONAI's losses start with the same steps (copied
into each of its classes). The order is MONAI's: activate ``input`` (``sigmoid``, ``softmax`` over
dim 1, or ``other_act``), one-hot encode a ``(B, 1, *S)`` target (``to_onehot_y``), drop channel 0 of
both (``include_background=False``), then mask the pixels whose *original* target is
``ignore_index``. The numerics are ours: the logits are cast to float32 and clamped to +-65504 (a
float16 logit that overflowed to inf is a saturated prediction), the probabilities ``p`` come with
their complements ``q = 1 - p`` computed without subtraction (``sigmoid(-x)``, or the softmax mass of
the other classes), so a loss formed from ``q`` keeps its precision where ``p`` rounds to 1.
"""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

from stableloss._activation import _softmax_with_complement, saturate


class Prepared(NamedTuple):
    """Float32 (float64 for float64 input) tensors of shape ``(B, C', *S)``, ready for the sums.

    ``probs`` and ``complement`` are ``p`` and ``1 - p``; ``target`` is one-hot or the given target
    as float; ``mask`` is ``(B, 1, *S)`` (or ``None`` without ``ignore_index``), and ``probs``,
    ``complement`` and ``target`` are already masked as MONAI masks them (``p m``, ``1 - p m``, ``t m``).
    """

    probs: Tensor
    complement: Optional[Tensor]  # None when prepared with with_complement=False
    target: Tensor
    mask: Optional[Tensor]


def single_channel_warning(setting: str) -> None:
    """MONAI's warning for a setting (``"softmax=True"``) that a one-channel prediction makes meaningless."""
    warnings.warn(f"single channel prediction, `{setting}` ignored.", stacklevel=4)


def check_activation_options(sigmoid: bool, softmax: bool, other_act: Optional[Callable]) -> None:
    """MONAI's constructor checks: ``other_act`` callable, at most one activation chosen."""
    if other_act is not None and not callable(other_act):
        raise TypeError(f"other_act must be None or callable; received {type(other_act).__name__}")
    if int(bool(sigmoid)) + int(bool(softmax)) + int(other_act is not None) > 1:
        raise ValueError("sigmoid, softmax and other_act: at most one may be set; received "
                         f"sigmoid={sigmoid!r}, softmax={softmax!r}, other_act={other_act!r}")


def check_input(input: object, *, min_dims: int = 3) -> Tensor:
    """``input`` must be a floating ``(B, C, *S)`` tensor."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor; received {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor (B, C, *S); received dtype {input.dtype}")
    if input.dim() < min_dims:
        raise ValueError(f"input must have shape (B, C, *S) with at least {min_dims} dims; received {tuple(input.shape)}")
    return input


def activate(input: Tensor, *, sigmoid: bool, softmax: bool, other_act: Optional[Callable],
             with_complement: bool = True) -> tuple[Tensor, Optional[Tensor]]:
    """``(p, 1 - p)`` in float32 after MONAI's activation (``softmax`` of one channel is skipped, with a warning).

    With ``with_complement=False`` the complement is ``None`` and the softmax a plain one (no
    cumulative sums over the other classes), for a loss that reads ``p`` only.
    """
    logits = saturate(input)
    if sigmoid:
        return torch.sigmoid(logits), (torch.sigmoid(-logits) if with_complement else None)
    if softmax:
        if input.shape[1] == 1:
            single_channel_warning("softmax=True")
        elif with_complement:
            return _softmax_with_complement(logits)
        else:
            return torch.softmax(logits, dim=1), None
    probs = logits if other_act is None else other_act(logits)
    return probs, (1.0 - probs if with_complement else None)


def class_labels(target: Tensor, num_classes: int, ignore_index: Optional[int]) -> Tensor:
    """A ``(B, 1, *S)`` label map as ``long`` class indices in ``[0, C)``, checked.

    As MONAI does, labels equal to an ``ignore_index`` outside ``[0, C)`` become 0 first (their
    pixels are masked later). Any other label outside ``[0, C)`` is an error (MONAI's scatter fails
    inside torch); fractional labels are truncated, as MONAI's ``long()`` truncates them.
    """
    if target.shape[1] != 1:
        raise ValueError(f"target must have one channel (B, 1, *S) of class indices with to_onehot_y=True; "
                         f"received shape {tuple(target.shape)}")
    labels = target.long() if target.is_floating_point() else target.to(torch.long)
    if ignore_index is not None and not 0 <= ignore_index < num_classes:
        labels = torch.where(labels == ignore_index, 0, labels)
    if not torch.compiler.is_compiling() and labels.device.type != "meta" and labels.numel():
        low, high = torch.aminmax(labels)
        if low < 0 or high >= num_classes:
            raise ValueError(f"target must hold class indices in [0, {num_classes - 1}] with to_onehot_y=True "
                             f"(ignore_index={ignore_index}); received values in [{int(low)}, {int(high)}]")
    return labels


def one_hot_target(target: Tensor, num_classes: int, ignore_index: Optional[int], dtype: torch.dtype) -> Tensor:
    """A ``(B, 1, *S)`` label map (:func:`class_labels`) as a float one-hot ``(B, C, *S)``."""
    labels = class_labels(target, num_classes, ignore_index)
    class_ids = torch.arange(num_classes, device=target.device).view(1, num_classes, *([1] * (target.dim() - 2)))
    return (labels == class_ids).to(dtype)


def ignore_mask(original_target: Tensor, ignore_index: Optional[int], dtype: torch.dtype) -> Optional[Tensor]:
    """MONAI's ignore mask ``(B, 1, *S)`` from the target as given (1 where a pixel counts).

    A ``(B, 1, *S)`` target: ``t != ignore_index``. A one-hot target: ``1 - t[:, ignore_index]`` for
    an index in ``[0, C)``, else 1 where any channel is set.
    """
    if ignore_index is None:
        return None
    if original_target.shape[1] == 1:
        return (original_target != ignore_index).to(dtype)
    target = original_target.to(dtype)
    if 0 <= ignore_index < target.shape[1]:
        return 1.0 - target[:, ignore_index:ignore_index + 1]
    return (target.sum(dim=1, keepdim=True) > 0).to(dtype)


def prepare(
    input: Tensor,
    target: Tensor,
    *,
    include_background: bool,
    to_onehot_y: bool,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: Optional[Callable] = None,
    ignore_index: Optional[int] = None,
    with_complement: bool = True,
) -> Prepared:
    """Probabilities, complements, target and mask as MONAI's region losses see them.

    ``with_complement=False``: no complements (``None``), for a loss that reads ``p`` only.

    Raises:
        TypeError: ``input`` or ``target`` is not a tensor, or ``input`` is not floating point.
        ValueError: The target's shape (after one-hot encoding) differs from the input's, or a
            label lies outside ``[0, C)`` with ``to_onehot_y=True``.
    """
    input = check_input(input)
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor; received {type(target).__name__}")
    probs, complement = activate(input, sigmoid=sigmoid, softmax=softmax, other_act=other_act,
                                 with_complement=with_complement)
    dtype = probs.dtype
    num_classes = input.shape[1]
    flat_target = target
    if to_onehot_y:
        if num_classes == 1:
            single_channel_warning("to_onehot_y=True")
        else:
            flat_target = one_hot_target(target, num_classes, ignore_index, dtype)
    flat_target = flat_target.to(dtype)
    if not include_background:
        if num_classes == 1:
            single_channel_warning("include_background=False")
        else:
            probs, flat_target = probs[:, 1:], flat_target[:, 1:]
            complement = None if complement is None else complement[:, 1:]
    if flat_target.shape != probs.shape:
        raise ValueError(f"target must have the input's shape {tuple(probs.shape)} after to_onehot_y and "
                         f"include_background; received target shape {tuple(flat_target.shape)} "
                         f"(given as {tuple(target.shape)}, to_onehot_y={to_onehot_y})")
    mask = ignore_mask(target, ignore_index, dtype)
    if mask is not None:
        probs = probs * mask
        complement = None if complement is None else complement * mask + (1.0 - mask)  # 1 - p m
        flat_target = flat_target * mask
    return Prepared(probs, complement, flat_target, mask)


def reduce_axes(ndim: int, batch: bool) -> list[int]:
    """The spatial axes, and the batch axis with ``batch=True``."""
    return ([0] if batch else []) + list(range(2, ndim))


def reduce_monai(loss: Tensor, reduction: str, ndim: int) -> Tensor:
    """MONAI's reduction of ``(B, C)`` (or ``(C,)``) scores: mean, sum, or ``none`` as ``(B, C, 1, ...)``."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss.view(list(loss.shape[0:2]) + [1] * (ndim - 2))
