"""The CPU fast path of the stableloss.monai region losses (stableloss.monai._hard) against the general path.

The fast path serves hard targets on the CPU in eager mode; everything else (CUDA, compile,
torch.func, a target that requires grad, soft targets) takes the general path. Both must give the
same values and gradients for every constructor argument, so each case of the MONAI agreement grid
runs twice here, once per path; the general path is forced by reporting the fast path as
inapplicable. test_monai_agreement.py compares the default (fast) path with MONAI itself.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import stableloss.monai as ours
import stableloss.monai._hard as hard_module
import stableloss.monai.focal as focal_module
from tests.test_monai_agreement import ACTIVATIONS, CASES, make_target

FAST = ("DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "FocalLoss", "DiceCELoss", "DiceFocalLoss",
        "GeneralizedDiceFocalLoss")
FAST_CASES = [(name, kwargs) for name, kwargs in CASES if name in FAST]


def force_general_path(patch):
    """Report the fast paths (region sums and sigmoid focal terms) as inapplicable."""
    patch.setattr(hard_module, "_hard_path_applies", lambda *args: False)
    patch.setattr(focal_module, "_hard_path_applies", lambda *args: False)


def forward_backward(loss, logits, target, *, general: bool, monkeypatch):
    with monkeypatch.context() as patch:
        if general:
            force_general_path(patch)
        x = logits.clone().requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = loss(x, target)
        value.sum().backward()
    return value.detach(), x.grad


def count_fast_calls(monkeypatch):
    """Count the calls that reach the fast path's sum functions and its focal terms."""
    calls = []
    hard_focal = focal_module.hard_sigmoid_focal_terms

    def counted_focal(*args):
        terms = hard_focal(*args)
        if terms is not None:
            calls.append("focal")
        return terms

    monkeypatch.setattr(focal_module, "hard_sigmoid_focal_terms", counted_focal)
    label_focal = focal_module.label_softmax_focal
    monkeypatch.setattr(focal_module, "label_softmax_focal",
                        lambda *a, **k: calls.append("label focal") or label_focal(*a, **k))
    sigmoid_apply = hard_module.MarginSigmoidOverlap.apply
    softmax_sums = hard_module.hard_softmax_sums
    monkeypatch.setattr(hard_module.MarginSigmoidOverlap, "apply",
                        lambda *a: calls.append("sigmoid") or sigmoid_apply(*a))
    monkeypatch.setattr(hard_module, "hard_softmax_sums", lambda *a, **k: calls.append("softmax") or softmax_sums(*a, **k))
    return calls


@pytest.mark.parametrize("shape", [(2, 3, 7, 6), (2, 3, 5, 4, 3)], ids=["2d", "3d"])
@pytest.mark.parametrize("name, kwargs", FAST_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FAST_CASES)])
def test_fast_and_general_paths_agree(name, kwargs, shape, monkeypatch):
    gen = torch.Generator().manual_seed(len(str(kwargs)))
    logits = 3 * torch.randn(shape, generator=gen)
    if not any(kwargs.get(a) not in (None, False) for a in ACTIVATIONS):
        logits = torch.rand(shape, generator=gen)
    target = make_target(kwargs, shape, seed=len(str(kwargs)))
    try:
        loss = getattr(ours, name)(**kwargs)
        general, general_grad = forward_backward(loss, logits, target, general=True, monkeypatch=monkeypatch)
    except ValueError as error:  # e.g. 3 class weights for the 2 classes scored without background
        with pytest.raises(ValueError, match=str(error)[:40]):
            getattr(ours, name)(**kwargs)(logits, target)
        return
    fast, fast_grad = forward_backward(loss, logits, target, general=False, monkeypatch=monkeypatch)
    torch.testing.assert_close(fast, general, rtol=2e-6, atol=1e-7)
    # float32 rounding of two backward formulas (each within 2e-6 of float64 relative to the gradient's
    # scale on this grid), at the agreement test's tolerance against MONAI
    torch.testing.assert_close(fast_grad, general_grad, rtol=1e-4, atol=1e-5 * float(general_grad.abs().max()))


@pytest.mark.parametrize("name, kwargs, channels", [
    ("DiceLoss", {"sigmoid": True}, 1),
    ("DiceLoss", {"softmax": True, "to_onehot_y": True}, 3),
    ("DiceLoss", {"sigmoid": True, "to_onehot_y": True, "include_background": False, "ignore_index": 255}, 3),
    ("GeneralizedDiceLoss", {"softmax": True, "to_onehot_y": True, "batch": True}, 3),
    ("TverskyLoss", {"sigmoid": True, "ignore_index": 0}, 2),
    ("DiceCELoss", {"softmax": True, "to_onehot_y": True, "include_background": False, "batch": True}, 3),
    ("DiceLoss", {"softmax": True}, 3),  # a one-hot target given as such (checked)
    ("FocalLoss", {}, 1),
    ("FocalLoss", {"to_onehot_y": True, "alpha": 0.25, "ignore_index": 255}, 3),
    ("FocalLoss", {"to_onehot_y": True, "alpha": [0.2, 0.3, 0.5], "gamma": 0.5}, 3),
    ("FocalLoss", {"to_onehot_y": True, "use_softmax": True}, 3),
    ("FocalLoss", {"to_onehot_y": True, "use_softmax": True, "include_background": False, "weight": [1.0, 2.0],
                   "ignore_index": 255}, 3),
])
def test_common_settings_take_the_fast_path(name, kwargs, channels, monkeypatch):
    calls = count_fast_calls(monkeypatch)
    logits = torch.randn(2, channels, 8, 8)
    if kwargs.get("to_onehot_y"):
        target = torch.randint(0, channels, (2, 1, 8, 8)).float()
        if "ignore_index" in kwargs:
            target[0, 0, :2] = kwargs["ignore_index"]
    else:
        target = (torch.rand(2, channels, 8, 8) > 0.5).float()
        if kwargs.get("softmax"):
            target = torch.nn.functional.one_hot(torch.randint(0, channels, (2, 8, 8)), channels).movedim(-1, 1).float()
    getattr(ours, name)(**kwargs)(logits.requires_grad_(), target).backward()
    if name == "FocalLoss":
        assert calls == ["label focal" if kwargs.get("use_softmax") else "focal"]
    else:
        assert calls == ["softmax" if kwargs.get("softmax") else "sigmoid"]


@pytest.mark.parametrize("why", ["soft target", "target requires grad", "squared_pred", "other_act", "no activation",
                                 "softmax, two labels in a pixel"])
def test_other_inputs_take_the_general_path(why, monkeypatch):
    calls = count_fast_calls(monkeypatch)
    logits = torch.randn(2, 2, 8, 8)
    target = (torch.rand(2, 2, 8, 8) > 0.5).float()
    kwargs = {"sigmoid": True}
    if why == "softmax, two labels in a pixel":  # hard, but not one-hot: the softmax sums assume one label
        kwargs = {"softmax": True}
        target[:, :, 0, 0] = 1.0
    elif why == "soft target":
        target = torch.rand(2, 2, 8, 8)
    elif why == "target requires grad":
        target.requires_grad_(True)
    elif why == "squared_pred":
        kwargs["squared_pred"] = True
    elif why == "other_act":
        kwargs = {"other_act": torch.sigmoid}
    else:
        kwargs, logits = {}, torch.rand(2, 2, 8, 8)
    ours.DiceLoss(**kwargs)(logits, target)
    if why in ("soft target", "target requires grad"):
        ours.FocalLoss()(logits, target)
    assert calls == []


def float64_dice(probs: torch.Tensor, complement: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """MONAI's Dice loss (``smooth_nr = smooth_dr = s``) in float64: the mean over images and classes of
    ``1 - (2 TP + s) / (P + G + s) = E / (2 TP + E + s)`` with ``E = P + G - 2 TP``, from ``p`` and
    ``1 - p`` (given: float64's ``1 - p`` has an absolute error of 1e-16, too coarse for the tiny ones)."""
    axes = list(range(2, probs.dim()))
    tp = (probs * target).sum(axes)
    errors = (probs * (1 - target) + complement * target).sum(axes)
    return (errors / (2 * tp + errors + smooth)).mean()


@pytest.mark.parametrize("margin", [8.0, 16.0, 30.0])
def test_fast_sigmoid_path_keeps_the_small_loss_of_a_near_perfect_prediction(margin):
    # p rounds to 1 in float32 beyond a logit of 17: a Dice formed from 1 - p would read 0 (or noise)
    target = (torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.5).double()
    logits = margin * (2 * target - 1)
    expected = float64_dice(torch.sigmoid(logits), torch.sigmoid(-logits), target)
    value = ours.DiceLoss(sigmoid=True)(logits.float(), target.float())
    assert expected > 0
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("margin", [8.0, 16.0, 30.0])
def test_fast_softmax_path_keeps_the_small_loss_of_a_near_perfect_prediction(margin):
    labels = torch.randint(0, 3, (2, 1, 16, 16), generator=torch.Generator().manual_seed(1))
    onehot = torch.nn.functional.one_hot(labels[:, 0], 3).movedim(-1, 1).double()
    logits = margin * onehot
    probs = torch.softmax(logits, 1)
    others = torch.stack([probs[:, [k for k in range(3) if k != c]].sum(1) for c in range(3)], dim=1)
    expected = float64_dice(probs, others, onehot)
    value = ours.DiceLoss(softmax=True, to_onehot_y=True)(logits.float(), labels)
    assert expected > 0
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("ignore_index", [None, 1])
def test_fast_path_fp16_with_infinite_logits_matches_the_general_path(ignore_index, monkeypatch):
    target = (torch.rand(2, 2, 16, 16, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    if ignore_index is not None:
        target[:, 1, :3] = 1.0  # one-hot ignore channel: pixels left out
        target[:, 0, :3] = 0.0
    logits = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(3)).half()
    logits.view(-1)[::7] = float("inf")
    logits.view(-1)[3::11] = -float("inf")
    loss = ours.TverskyLoss(sigmoid=True, ignore_index=ignore_index, alpha=0.3, beta=0.7)
    fast, fast_grad = forward_backward(loss, logits, target, general=False, monkeypatch=monkeypatch)
    general, general_grad = forward_backward(loss, logits, target, general=True, monkeypatch=monkeypatch)
    assert torch.isfinite(fast) and torch.isfinite(fast_grad).all()
    torch.testing.assert_close(fast, general, rtol=2e-6, atol=0.0)
    torch.testing.assert_close(fast_grad, general_grad)


def test_double_backward_through_the_fast_path_matches_the_general_path(monkeypatch):
    target = (torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(4)) > 0.5).double()
    logits = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    direction = torch.randn_like(logits)
    results = []
    for general in (False, True):
        with monkeypatch.context() as patch:
            if general:
                force_general_path(patch)
            x = logits.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(ours.DiceLoss(sigmoid=True)(x, target), x, create_graph=True)
            (hvp,) = torch.autograd.grad((grad * direction).sum(), x)
        results.append((grad.detach(), hvp))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
