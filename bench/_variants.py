"""Input variants of ``bench/speed.py`` beyond the plain binary case: ``ignore_index`` and 16 classes.

- ``binary`` (default): the blob target and soft prediction of :func:`_common.soft_prediction`.
- ``ignore``: the same, with the target set to ``IGNORE`` (255) on a border stripe of 5 % of the
  pixels of each image (the region outside a scanner's field of view); every loss is built with
  ``ignore_index=255``. MONAI's losses have no ``ignore_index``: no MONAI rows.
- ``multiclass16``: ``C = 16`` softmax classes, an integer ``(N, *S)`` target of square regions
  (a coarse random label grid upsampled) and logits ``4 * one_hot + N(0, 1)``; the Dice family only
  (smp's multiclass Focal is a per-class sigmoid loss, not the softmax Focal stableloss and MONAI
  give ``mode="multiclass"``, so there is no like-for-like Focal row). MONAI: ``softmax=True,
  to_onehot_y=True, batch=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

import _common as C
import stableloss as sl

VARIANTS = ("binary", "ignore", "multiclass16")
IGNORE = 255
CLASSES = 16


def variant_shape(variant: str, shape: Sequence[int]) -> tuple:
    """The logits' shape: ``shape`` with ``CLASSES`` channels for ``multiclass16``."""
    return (shape[0], CLASSES, *shape[2:]) if variant == "multiclass16" else tuple(shape)


def make_variant_inputs(variant: str, shape: Sequence[int], generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """float32 logits and the target for ``variant`` (``shape`` is the binary ``(N, 1, *S)`` shape)."""
    if variant == "multiclass16":
        n, spatial = shape[0], tuple(shape[2:])
        coarse = torch.randint(0, CLASSES, (n, *[max(1, s // 16) for s in spatial]), generator=generator)
        labels = F.interpolate(coarse[:, None].float(), size=spatial, mode="nearest")[:, 0].long()
        one_hot = F.one_hot(labels, CLASSES).movedim(-1, 1).float()
        return 4.0 * one_hot + torch.randn(one_hot.shape, generator=generator), labels
    logits, target, _ = C.soft_prediction(shape, generator=generator)
    if variant == "ignore":
        rows = max(1, round(0.05 * target.shape[2]))
        target = target.clone()
        target[:, :, :rows] = IGNORE
    return logits, target


def variant_impls(variant: str, losses: Sequence[str], sources: Sequence[str]) -> list[C.Impl]:
    """The implementations of ``losses`` from ``sources`` for ``ignore`` or ``multiclass16``."""
    builders = {"stableloss": lambda: _stableloss(variant), "stableloss-noval": lambda: _stableloss(variant, validate_args=False),
                "smp": lambda: _smp(variant), "monai": lambda: _monai(variant)}
    unknown = [s for s in sources if s not in builders]
    if unknown:
        raise SystemExit(f"--variant {variant} takes the sources {sorted(builders)}; received {unknown}")
    tables = {src: builders[src]() for src in sources}  # only the libraries asked for are imported
    return [C.Impl(loss, src, tables[src][loss]) for loss in losses for src in sources if loss in tables[src]]


def _stableloss(variant: str, validate_args: bool = True) -> dict[str, C.LossFn]:
    if variant == "multiclass16":
        kw: dict = {"validate_args": validate_args}
        return {"dice": sl.DiceLoss("multiclass", **kw),
                "tversky": sl.TverskyLoss("multiclass", alpha=C.TVERSKY_ALPHA, beta=C.TVERSKY_BETA, **kw),
                "jaccard": sl.JaccardLoss("multiclass", **kw), "log_cosh_dice": sl.LogCoshDiceLoss("multiclass", **kw)}
    kw = {"validate_args": validate_args, "ignore_index": IGNORE}
    dice, focal = sl.DiceLoss("binary", **kw), sl.FocalLoss("binary", gamma=2.0, **kw)
    return {"dice": dice, "tversky": sl.TverskyLoss("binary", alpha=C.TVERSKY_ALPHA, beta=C.TVERSKY_BETA, **kw),
            "jaccard": sl.JaccardLoss("binary", **kw), "focal": focal, "log_cosh_dice": sl.LogCoshDiceLoss("binary", **kw),
            "hybrid": sl.BoundaryAwareLoss("binary", boundary=None, dice=dice, focal=focal)}


def _smp(variant: str) -> dict[str, C.LossFn]:
    smp = C.optional_import("segmentation_models_pytorch")
    if smp is None:
        return {}
    losses = smp.losses
    mode, kw = ("multiclass", {}) if variant == "multiclass16" else ("binary", {"ignore_index": IGNORE})
    dice = losses.DiceLoss(mode, **kw)
    table = {"dice": dice, "tversky": losses.TverskyLoss(mode, alpha=C.TVERSKY_ALPHA, beta=C.TVERSKY_BETA, **kw),
             "jaccard": losses.JaccardLoss(mode, **kw), "log_cosh_dice": C._log_cosh(dice)}
    if variant == "ignore":
        focal = losses.FocalLoss(mode, gamma=2.0, **kw)
        table.update(focal=focal, hybrid=C._weighted(dice, focal))
    return table


def _monai(variant: str) -> dict[str, C.LossFn]:
    if variant != "multiclass16" or C.optional_import("monai") is None:
        return {}
    from monai import losses

    dice = losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True)
    tversky = losses.TverskyLoss(softmax=True, to_onehot_y=True, batch=True, alpha=C.TVERSKY_ALPHA, beta=C.TVERSKY_BETA)
    jaccard = losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, jaccard=True)
    return {"dice": lambda x, t: dice(x, t[:, None]), "tversky": lambda x, t: tversky(x, t[:, None]),
            "jaccard": lambda x, t: jaccard(x, t[:, None]), "log_cosh_dice": lambda x, t: torch.log(torch.cosh(dice(x, t[:, None])))}

