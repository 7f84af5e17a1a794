"""Input conventions: what a loss takes (logits or probabilities) and how its target is laid out.

The checker builds every example as float32 logits and a target in the mode's own layout
(:meth:`~stableloss.testing.Example.tensors`). A loss with another convention gets them converted
**before** they are rounded to the context's dtype, as a network would hand them over:

- ``input="probabilities"``: ``sigmoid(logits)`` (binary, multilabel) or ``softmax`` over dim 1
  (multiclass), computed in float32; the rounded probabilities are then the loss's input, its
  gradient is taken with respect to them, and the float64 reference sees the same rounded values.
- ``target_layout``: ``"indices"`` (class indices ``(N, *S)``), ``"indices-channel"`` (the same with
  a channel dim, ``(N, 1, *S)``, as MONAI's ``to_onehot_y=True`` expects) or ``"one-hot"`` (float
  ``(N, C, *S)``). Binary targets are float 0/1 masks in every layout (``"indices"`` drops the
  channel dim); multilabel targets are one mask per class, so only ``"one-hot"`` applies.

A library's whole convention is a ``target_format`` (:func:`format_layout`): ``"smp"``, each mode's
own layout, or ``"monai"``, where a multiclass target is ``(N, 1, *S)`` indices when the loss one-hot
encodes it itself (``to_onehot_y=True``) and a float one-hot ``(N, C, *S)`` otherwise.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from stableloss._checks import check_choice, check_mode

INPUTS = ("logits", "probabilities")
"""What the loss takes as its first argument."""

TARGET_LAYOUTS = ("indices", "indices-channel", "one-hot")
"""How the target is laid out (see the module docstring)."""

DEFAULT_LAYOUTS = {"binary": "indices-channel", "multiclass": "indices", "multilabel": "one-hot"}
"""The layout of :meth:`~stableloss.testing.Example.tensors`' targets, per mode."""


TARGET_FORMATS = ("smp", "monai")
"""Target conventions of whole libraries (see :func:`format_layout`)."""


def format_layout(target_format: str, mode: str, *, to_onehot_y: bool = False) -> str:
    """The target layout a library's convention gives ``mode``.

    ``"smp"`` (segmentation-models-pytorch, stableloss): each mode's own layout
    (:data:`DEFAULT_LAYOUTS`). ``"monai"``: binary ``(N, 1, *S)`` and multilabel ``(N, C, *S)`` masks as
    well; multiclass ``"indices-channel"`` ``(N, 1, *S)`` when ``to_onehot_y`` (the loss one-hot encodes
    the target), else ``"one-hot"`` (MONAI's losses never take ``(N, *S)`` indices).

    Raises:
        ValueError: For an unknown ``target_format`` or ``mode``.
    """
    mode = check_mode(mode)
    if check_choice("target_format", target_format, TARGET_FORMATS) == "smp" or mode != "multiclass":
        return DEFAULT_LAYOUTS[mode]
    return "indices-channel" if to_onehot_y else "one-hot"


def check_convention(mode: str, input: object = "logits", target_layout: object = None) -> Tuple[str, str]:
    """``(input, target_layout)`` checked for ``mode``, the layout resolved (``None``: the mode's own).

    Raises:
        ValueError: For an unknown name, or a layout the mode has no meaning for (multilabel
            targets in an index layout).
    """
    mode = check_mode(mode)
    if not isinstance(input, str) or input not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}; received {input!r}")
    if target_layout is None:
        return input, DEFAULT_LAYOUTS[mode]
    if not isinstance(target_layout, str) or target_layout not in TARGET_LAYOUTS:
        raise ValueError(f"target_layout must be None or one of {TARGET_LAYOUTS}; received {target_layout!r}")
    if mode == "multilabel" and target_layout != "one-hot":
        raise ValueError(f"target_layout must be 'one-hot' (or None) with mode='multilabel' (one mask per class, "
                         f"no class indices); received {target_layout!r}")
    return input, target_layout


def convert_input(logits: Tensor, mode: str, input: str) -> Tensor:
    """The loss's input from float32 logits: the logits themselves, or their sigmoid / softmax."""
    if input == "logits":
        return logits
    return torch.softmax(logits, dim=1) if mode == "multiclass" else torch.sigmoid(logits)


def convert_target(target: Tensor, mode: str, layout: str, num_classes: Optional[int] = None) -> Tensor:
    """A target as built for ``mode`` (see :meth:`~stableloss.testing.Example.tensors`) in ``layout``.

    Args:
        target: Binary float ``(N, 1, *S)``, multiclass long ``(N, *S)`` or multilabel float ``(N, C, *S)``.
        mode: The mode it was built for.
        layout: A checked layout (:func:`check_convention`).
        num_classes: ``C``, needed for a multiclass one-hot target.
    """
    if layout == DEFAULT_LAYOUTS[mode]:
        return target
    if mode == "binary":  # "indices" drops the channel; "one-hot" of one class is the mask itself
        return target.squeeze(1) if layout == "indices" else target
    if layout == "indices-channel":
        return target.unsqueeze(1)
    if num_classes is None:
        raise ValueError("num_classes must be given for a one-hot multiclass target")
    return torch.nn.functional.one_hot(target, num_classes).movedim(-1, 1).float()
