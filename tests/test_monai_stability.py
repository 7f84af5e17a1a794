"""Every ``stableloss.monai`` loss holds the stability contract where MONAI's own losses fail.

The checker's grid (float16/bfloat16 autocast and half tensors, logits up to +-inf in float16) with
MONAI's target convention (:func:`stableloss.testing._conventions.format_layout`): loss and gradient
finite and within the checker's tolerance of the same loss in float64. Names carry ``fp16``/``bf16``
so that ``pytest -k fp16`` selects them.
"""

from __future__ import annotations

import pytest
import torch

import stableloss.monai as sm
from stableloss.testing import check_stability
from stableloss.testing._conventions import format_layout

SOFTMAX = dict(softmax=True, to_onehot_y=True)
CONFIGS = [
    ("DiceLoss", "multiclass", SOFTMAX),
    ("DiceLoss", "multiclass", dict(softmax=True, squared_pred=True, jaccard=True, batch=True)),
    ("DiceLoss", "binary", dict(sigmoid=True, soft_label=True)),
    ("GeneralizedDiceLoss", "multiclass", SOFTMAX),
    ("GeneralizedDiceLoss", "multilabel", dict(sigmoid=True, w_type="simple")),
    ("TverskyLoss", "multiclass", dict(SOFTMAX, alpha=0.3, beta=0.7)),
    ("FocalLoss", "multiclass", dict(to_onehot_y=True, use_softmax=True, alpha=0.25)),
    ("FocalLoss", "binary", dict(gamma=0.5, alpha=0.25)),
    ("DiceCELoss", "multiclass", SOFTMAX),
    ("DiceCELoss", "multiclass", dict(include_background=False, to_onehot_y=True, softmax=True, batch=True)),
    ("DiceCELoss", "binary", dict(sigmoid=True)),
    ("DiceFocalLoss", "multiclass", dict(SOFTMAX, gamma=0.5)),
    ("GeneralizedDiceFocalLoss", "multiclass", SOFTMAX),
    ("HausdorffDTLoss", "multiclass", SOFTMAX),
]
IDS = [f"{name}-{mode}-{i}" for i, (name, mode, _) in enumerate(CONFIGS)]


def _report(name, mode, kwargs, contexts, **grid):
    loss = getattr(sm, name)(**kwargs)
    layout = format_layout("monai", mode, to_onehot_y=kwargs.get("to_onehot_y", False))
    return check_stability(loss, mode=mode, contexts=contexts, quick=True, target_layout=layout, **grid)


@pytest.mark.parametrize("name, mode, kwargs", CONFIGS, ids=IDS)
def test_fp16_monai_compatible_losses_hold_every_cell(name, mode, kwargs):
    report = _report(name, mode, kwargs, ["fp16-autocast", "fp16"])
    assert report.ok, report.table()


@pytest.mark.parametrize("name, mode, kwargs", CONFIGS, ids=IDS)
def test_bf16_monai_compatible_losses_hold_every_cell(name, mode, kwargs):
    report = _report(name, mode, kwargs, ["bf16-autocast", "bf16"])
    assert report.ok, report.table()


def test_fp16_dicece_at_a_real_size_where_monai_returns_nan():
    """The issue's measurement: MONAI's DiceCE is NaN on float16 logits of 4x2x256x256 that give 11.8 in float32."""
    monai_losses = pytest.importorskip("monai.losses")
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 2, 256, 256, generator=gen) * 3e4).half()  # saturated logits, some beyond 65504/2
    logits[0, 0, :8] = float("inf")
    target = torch.randint(0, 2, (4, 1, 256, 256), generator=gen)
    theirs = monai_losses.DiceCELoss(**SOFTMAX)(logits, target)
    logits = logits.requires_grad_(True)
    mine = sm.DiceCELoss(**SOFTMAX)(logits, target)
    mine.backward()
    assert torch.isnan(theirs)
    assert torch.isfinite(mine) and torch.isfinite(logits.grad).all()
    expected = sm.DiceCELoss(**SOFTMAX)(logits.detach().double(), target)  # float64, inf clamped to 65504
    torch.testing.assert_close(mine.double(), expected, rtol=1e-5, atol=0)
