"""The rest of segmentation_models_pytorch.losses: Lovasz, soft BCE, soft cross-entropy and MCC.

smp's own test vectors (its ``tests/test_losses.py``, inputs and expected values written out here),
hand-derived Lovasz values, a random differential grid against smp 0.6 (values and gradients, float32,
1e-5), the places where we deliberately differ (each shown on smp's side too), the numerics that make
them FP16-safe, and ``import stableloss as smp_losses`` in a training loop. (The generic properties,
float64 references and fp16/bf16 suites reach these losses through ``tests/registry.py``.)
"""

import math

import pytest
import torch

import stableloss
from stableloss import lovasz
from tests import reference
from tests.inputs import make_case

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")

TOL = dict(rtol=1e-5, atol=1e-6)
GRAD_TOL = dict(rtol=1e-5, atol=1e-7)
MODES = ("binary", "multiclass", "multilabel")


def _both(ours, theirs, inputs, target):
    """Loss and input gradient of both losses on the same float32 inputs."""
    results = []
    for loss in (ours, theirs):
        x = inputs.clone().requires_grad_(True)
        value = loss(x, target)
        value.sum().backward()
        results.append((value.detach(), x.grad))
    return results


def _assert_agree(ours, theirs, inputs, target):
    (a, ga), (b, gb) = _both(ours, theirs, inputs, target)
    torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(ga, gb, **GRAD_TOL)


# --- smp's own test vectors ------------------------------------------------------------------------

def test_smp_vector_soft_cross_entropy():
    logits = torch.tensor([[+9, -9, -9, -9], [-9, +9, -9, -9], [-9, -9, +9, -9], [-9, -9, -9, +9]]).float()
    target = torch.tensor([0, 1, -100, 3]).long()
    loss = stableloss.SoftCrossEntropyLoss(smooth_factor=0.1, ignore_index=-100)(logits, target)
    assert loss.item() == pytest.approx(1.0125, abs=1e-4)  # smp's expectation
    nll = math.log1p(3 * math.exp(-18))  # -log p_y, and sum_k -log p_k = 4 (9 + nll) + 18 per row
    exact = 3 / 4 * (0.9 * nll + 0.1 / 4 * (4 * (9 + nll) + 18))  # 3 of 4 rows count, the ignored one is 0
    assert loss.item() == pytest.approx(exact, rel=1e-6)


def test_smp_vector_soft_bce():
    logits = torch.tensor([-9, 9, 1, 9, -9]).float()
    target = torch.tensor([0, 1, -100, 1, 0]).long()
    loss = stableloss.SoftBCEWithLogitsLoss(smooth_factor=0.1, ignore_index=-100)(logits, target)
    assert loss.item() == pytest.approx(0.7201, abs=1e-4)  # smp's expectation
    softplus = lambda v: math.log1p(math.exp(-abs(v))) + max(v, 0.0)  # noqa: E731
    exact = 4 * (0.1 * softplus(9) + 0.9 * softplus(-9)) / 5  # four kept elements, each 0.1 wrong and 0.9 right
    assert loss.item() == pytest.approx(exact, rel=1e-6)


MCC_VECTORS = [  # smp's test_binary_mcc_loss: (prediction, target, expected loss)
    ([[[1.0, 1, 0, 0], [0, 0, 1, 1]]], [[[1.0, 1, 0, 0], [0, 0, 1, 1]]], 0.0),  # ideal
    ([[[1.0, 1, 0, 0], [0, 0, 1, 1]]], [[[0.0, 0, 1, 1], [1, 1, 0, 0]]], 2.0),  # worst
    ([[[0.0, 1, 1, 0], [0, 1, 1, 0]]], [[[1.0, 1, 0, 0], [1, 1, 0, 0]]], 1.0),  # half right
    ([[[0.0, 0, 0, 0], [0, 0, 0, 0]]], [[[1.0, 1, 0, 0], [1, 1, 0, 0]]], 1.0),  # trivial classifier 1
    ([[[0.0, 0, 0, 0], [0, 0, 0, 0]]], [[[1.0, 1, 1, 1], [1, 1, 1, 1]]], 1.5),  # trivial classifier 2
    ([[[1.0, 1, 1, 1], [1, 1, 1, 1]]], [[[1.0, 1, 1, 1], [1, 1, 1, 1]]], 0.5),  # trivial classifier 3
]


@pytest.mark.parametrize("prediction, target, expected", MCC_VECTORS)
def test_smp_vectors_mcc(prediction, target, expected):
    prediction, target = torch.tensor(prediction), torch.tensor(target)
    loss = stableloss.MCCLoss(eps=1e-5)(prediction, target)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    torch.testing.assert_close(loss, smp_losses.MCCLoss(eps=1e-5)(prediction, target), **TOL)


# --- hand-derived Lovasz values ------------------------------------------------------------------

def test_lovasz_hinge_by_hand():
    # hinge errors 1 - x (2t - 1) = (-2, 0, 1.5, 3); sorted 3 (t=1), 1.5 (t=0), ...; G = 2 positives:
    # g = J({3}) = 1 - 1/2 = 1/2, then J({3, 1.5}) - 1/2 = (1 - 1/3) - 1/2 = 1/6: loss 3/2 + 1.5/6
    logits = torch.tensor([[[[3.0, -1.0], [0.5, -2.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert stableloss.lovasz_loss(logits, target, mode="binary").item() == pytest.approx(1.75, rel=1e-7)
    assert smp_losses.LovaszLoss("binary")(logits, target).item() == pytest.approx(1.75, rel=1e-7)


def test_lovasz_softmax_by_hand_on_probabilities_and_on_their_log():
    # class 1: errors (0.1, 0.2, 0.6, 0.9), sorted labels (1, 0, 0, 1): g = (1/2, 1/6, 1/12, 1/4) -> 71/120;
    # class 0: the same errors, sorted labels (0, 1, 1, 0): g = (1/3, 1/3, 1/3, 0) -> 17/30; mean 139/240
    p1 = torch.tensor([0.9, 0.2, 0.6, 0.1])
    probs = torch.stack([1 - p1, p1]).reshape(1, 2, 1, 4)
    target = torch.tensor([1, 0, 0, 1]).reshape(1, 1, 4)
    expected = 139 / 240
    assert stableloss.lovasz_loss(probs, target, mode="multiclass", from_logits=False).item() == pytest.approx(expected, rel=1e-6)
    logits = probs.log()  # softmax(log p) = p
    assert stableloss.LovaszLoss("multiclass")(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert smp_losses.LovaszLoss("multiclass")(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_lovasz_gradient_at_ties_is_that_of_the_stable_order():
    # Every hinge error is 1 (zero logits), so any order is a sort; the stable one keeps the input's:
    # sorted labels (1, 0, 1, 0), G = 2: g = (1/2, 1/6, 1/3, 0), and d error / d x = -(2 t - 1).
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    expected = torch.tensor([[-1 / 2, 1 / 6, -1 / 3, 0.0]])
    for _ in range(3):  # the same gradient every run
        logits = torch.zeros(1, 4, requires_grad=True)
        loss = stableloss.lovasz_loss(logits, target, mode="multilabel")
        loss.backward()
        assert loss.item() == pytest.approx(1.0)  # the value does not depend on the order
        torch.testing.assert_close(logits.grad, expected, rtol=0, atol=1e-7)
    # labels (0, 1, 0, 1) in that order: g = (1/3, 1/3, 1/12, 1/4), not the first order's weights reversed
    logits = torch.zeros(1, 4, requires_grad=True)
    stableloss.lovasz_loss(logits, target.flip(-1), mode="multilabel").backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[1 / 3, -1 / 3, 1 / 12, -1 / 4]]), rtol=0, atol=1e-7)


def test_lovasz_gradient_at_many_ties_is_that_of_the_input_order():
    # From about 100 equal keys on, torch's default (unstable) CPU sort reorders them; the stable one does not.
    labels = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(69)) > 0.5).float()
    weights = reference._lovasz_grad_textbook(labels.flatten().double())  # Berman's weights, in the input's order
    expected = (-(2 * labels.flatten().double() - 1) * weights).float().reshape(labels.shape)
    for mode in ("binary", "multilabel"):
        logits = torch.zeros(1, 1, 16, 16, requires_grad=True)
        stableloss.lovasz_loss(logits, labels, mode=mode).backward()
        torch.testing.assert_close(logits.grad, expected, rtol=1e-6, atol=1e-9)


# --- the differential grid against smp 0.6 --------------------------------------------------------

def _lovasz_inputs(mode, seed, spatial, ignore_index):
    logits, target = make_case(mode, seed=seed, spatial=spatial, batch=3)
    if ignore_index is not None:
        ignored = torch.rand(target.shape, generator=torch.Generator().manual_seed(seed)) < 0.2
        target = target.masked_fill(ignored, ignore_index)
    return logits, target


@pytest.mark.parametrize("spatial", [(9, 8), (4, 5, 3)], ids=["2d", "3d"])
@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_lovasz_matches_smp(mode, per_image, ignore_index, spatial):
    logits, target = _lovasz_inputs(mode, 50, spatial, ignore_index)
    args = (mode, per_image, ignore_index)  # smp's positional order
    _assert_agree(stableloss.LovaszLoss(*args), smp_losses.LovaszLoss(*args), logits, target)


def test_lovasz_function_matches_smp_on_a_binary_target_without_channel():
    logits, target = make_case("binary", seed=51)
    theirs = smp_losses.LovaszLoss("binary", per_image=True)(logits, target[:, 0])
    torch.testing.assert_close(stableloss.lovasz_loss(logits, target[:, 0], mode="binary", per_image=True), theirs, **TOL)


SOFT_BCE_OPTIONS = [
    {},
    {"smooth_factor": 0.1},
    {"reduction": "sum"},
    {"reduction": "none", "smooth_factor": 0.05},
    {"ignore_index": None},
    {"ignore_index": 255, "reduction": "sum"},
    {"pos_weight": [[[3.0]], [[0.5]]]},  # (C, 1, 1): per channel
    {"weight": [[[0.2]], [[2.0]]], "pos_weight": [[[1.5]], [[1.0]]], "smooth_factor": 0.2},
    {"weight": 0.5},
]


@pytest.mark.parametrize("options", SOFT_BCE_OPTIONS, ids=str)
def test_soft_bce_matches_smp(options):
    logits, target = make_case("multilabel", seed=52, spatial=(7, 6), batch=3)
    ignore_index = options.get("ignore_index", -100)
    if ignore_index is not None:
        target = target.masked_fill(torch.rand(target.shape, generator=torch.Generator().manual_seed(1)) < 0.2, ignore_index)
    theirs_options = {k: torch.tensor(v) if k in ("weight", "pos_weight") else v for k, v in options.items()}
    _assert_agree(stableloss.SoftBCEWithLogitsLoss(**options), smp_losses.SoftBCEWithLogitsLoss(**theirs_options),
                  logits, target)


def test_soft_bce_matches_smp_on_soft_labels_and_any_shape():
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(53)) * 4
    target = torch.rand(5, 3, generator=torch.Generator().manual_seed(54))
    _assert_agree(stableloss.SoftBCEWithLogitsLoss(smooth_factor=0.1), smp_losses.SoftBCEWithLogitsLoss(smooth_factor=0.1),
                  logits, target)


SOFT_CE_OPTIONS = [
    {"smooth_factor": 0.0},
    {"smooth_factor": 0.1},
    {"smooth_factor": 0.3, "reduction": "sum"},
    {"smooth_factor": 0.1, "ignore_index": None},
    {"smooth_factor": 0.2, "ignore_index": 255},
    {"smooth_factor": 1.0},
]


@pytest.mark.parametrize("options", SOFT_CE_OPTIONS, ids=str)
def test_soft_cross_entropy_matches_smp(options):
    logits, target = make_case("multiclass", seed=55, spatial=(7, 6), batch=3, channels=4)
    ignore_index = options.get("ignore_index", -100)
    if ignore_index is not None:
        target = target.masked_fill(torch.rand(target.shape, generator=torch.Generator().manual_seed(2)) < 0.2, ignore_index)
    _assert_agree(stableloss.SoftCrossEntropyLoss(**options), smp_losses.SoftCrossEntropyLoss(**options), logits, target)


def test_soft_cross_entropy_unreduced_matches_smp_without_its_kept_dim():
    logits, target = make_case("multiclass", seed=56, spatial=(5, 4), channels=4)
    target[0, 0, 0] = -100
    ours = stableloss.SoftCrossEntropyLoss(reduction="none", smooth_factor=0.1)(logits, target)
    theirs = smp_losses.SoftCrossEntropyLoss(reduction="none", smooth_factor=0.1)(logits, target)
    assert ours.shape == target.shape and theirs.shape == (3, 1, 5, 4)  # smp keeps the class dim with ignore_index
    torch.testing.assert_close(ours, theirs.squeeze(1), **TOL)


def test_soft_cross_entropy_matches_smp_along_another_dim_and_with_a_channel_target():
    logits, target = make_case("multiclass", seed=57, spatial=(5, 4), channels=4)
    channels_last = logits.movedim(1, -1).contiguous()
    options = {"smooth_factor": 0.1, "dim": -1}
    _assert_agree(stableloss.SoftCrossEntropyLoss(**options), smp_losses.SoftCrossEntropyLoss(**options), channels_last, target)
    with_channel = target.unsqueeze(1)
    _assert_agree(stableloss.SoftCrossEntropyLoss(smooth_factor=0.1), smp_losses.SoftCrossEntropyLoss(smooth_factor=0.1),
                  logits, with_channel)


@pytest.mark.parametrize("eps", [1e-5, 1e-3, 1.0])
@pytest.mark.parametrize("kind", ["binary", "binary-no-channel", "soft", "multi-channel"])
def test_mcc_matches_smp(kind, eps):
    logits, target = make_case("multilabel" if kind == "multi-channel" else "binary", seed=58, soft=kind == "soft")
    probs = torch.sigmoid(logits)
    if kind == "binary-no-channel":
        target = target[:, 0]
    _assert_agree(stableloss.MCCLoss(eps), smp_losses.MCCLoss(eps), probs, target)


# --- where we differ, deliberately (shown on smp's side too) -----------------------------------------

def test_float64_lovasz_works_where_smp_raises():
    logits, target = make_case("binary", seed=59, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="expected both vectors to have same dtype"):
        smp_losses.LovaszLoss("binary")(logits, target)
    for mode in MODES:
        logits, target = make_case(mode, seed=59, dtype=torch.float64)
        loss = stableloss.lovasz_loss(logits, target, mode=mode)
        assert loss.dtype == torch.float64
        assert reference.close(loss, reference.lovasz_reference(logits, target, mode=mode), rtol=1e-12, atol=1e-14)


def test_soft_cross_entropy_default_is_plain_cross_entropy_where_smp_raises():
    logits, target = make_case("multiclass", seed=60)
    with pytest.raises(TypeError):  # None / int in label_smoothed_nll_loss
        smp_losses.SoftCrossEntropyLoss()(logits, target)
    ours = stableloss.SoftCrossEntropyLoss()(logits, target)
    torch.testing.assert_close(ours, torch.nn.functional.cross_entropy(logits, target), **TOL)
    torch.testing.assert_close(ours, smp_losses.SoftCrossEntropyLoss(smooth_factor=0.0)(logits, target), **TOL)


def test_lovasz_from_logits_false_takes_probabilities_where_smp_ignores_it():
    logits, target = make_case("multiclass", seed=61)
    probs = torch.softmax(logits, 1)
    smp_value = smp_losses.LovaszLoss("multiclass", from_logits=False)(probs, target)
    torch.testing.assert_close(smp_value, smp_losses.LovaszLoss("multiclass")(probs, target))  # probabilities as logits
    ours = stableloss.LovaszLoss("multiclass", from_logits=False)(probs, target)
    torch.testing.assert_close(ours, smp_losses.LovaszLoss("multiclass")(logits, target), **TOL)
    binary_logits, binary_target = make_case("binary", seed=61)
    probs = torch.sigmoid(binary_logits)
    ours = stableloss.lovasz_loss(probs, binary_target, mode="binary", from_logits=False)
    assert reference.close(ours, reference.lovasz_reference(probs, binary_target, mode="binary", from_logits=False),
                           rtol=1e-6, atol=1e-7)


def test_soft_bce_takes_a_target_without_channel_where_smp_raises():
    logits, target = make_case("binary", seed=62)
    with pytest.raises(ValueError, match="same as input size"):
        smp_losses.SoftBCEWithLogitsLoss()(logits, target[:, 0])
    torch.testing.assert_close(stableloss.SoftBCEWithLogitsLoss()(logits, target[:, 0]),
                               smp_losses.SoftBCEWithLogitsLoss()(logits, target), **TOL)


# --- numerics ----------------------------------------------------------------------------------------

def test_lovasz_weights_equal_berman_differences_in_float64():
    generator = torch.Generator().manual_seed(63)
    labels = (torch.rand(3, 500, generator=generator) > 0.6).double()
    soft = torch.rand(3, 500, generator=generator, dtype=torch.float64)
    for values in (labels, soft):
        weights = lovasz.lovasz_weights(values)
        for row in range(3):
            torch.testing.assert_close(weights[row], reference._lovasz_grad_textbook(values[row]), rtol=1e-10, atol=1e-14)


def test_lovasz_weights_of_ignored_elements_are_zero_and_leave_the_others_unchanged():
    generator = torch.Generator().manual_seed(64)
    labels = (torch.rand(200, generator=generator) > 0.5).double()
    valid = torch.ones(260, dtype=torch.bool)
    valid[200:] = False  # ignored elements sort last
    padded = torch.cat([labels, torch.zeros(60, dtype=torch.float64)])
    weights = lovasz.lovasz_weights(padded, valid)
    torch.testing.assert_close(weights[:200], lovasz.lovasz_weights(labels), rtol=0, atol=0)
    assert bool((weights[200:] == 0).all())


def test_float32_lovasz_weights_keep_their_precision_at_a_million_pixels():
    # 1 - J changes by about 1/U per pixel: as a float32 difference of Jaccard values (smp's), that is
    # 1e-6 on values near 1, whose ulp is 6e-8; the closed form divides exact counts instead.
    labels = (torch.rand(1_000_000, generator=torch.Generator().manual_seed(65)) > 0.5).float()
    exact = lovasz.lovasz_weights(labels.double())
    ours = lovasz.lovasz_weights(labels)
    subtracted = reference._lovasz_grad_textbook(labels)  # the float32 subtraction
    kept = exact > 0
    ours_error = ((ours.double() - exact).abs()[kept] / exact[kept]).max().item()
    theirs_error = ((subtracted.double() - exact).abs()[kept] / exact[kept]).max().item()
    assert ours_error < 1e-6 < 1e-2 < theirs_error


def test_lovasz_counts_switch_to_float64_past_the_exact_limit(monkeypatch):
    logits, target = make_case("multiclass", seed=66, spatial=(9, 8))
    expected = stableloss.lovasz_loss(logits, target, mode="multiclass")
    labels = (torch.rand(3, 10_000, generator=torch.Generator().manual_seed(70)) > 0.5).float()  # U^2 past 2**24
    monkeypatch.setattr(lovasz, "EXACT_COUNT_LIMIT", 16)  # every row is "long": float64 counts
    torch.testing.assert_close(stableloss.lovasz_loss(logits, target, mode="multiclass"), expected, rtol=1e-6, atol=0)
    weights = lovasz.lovasz_weights(labels)
    assert weights.dtype == torch.float32  # returned in the labels' dtype, computed in float64: correctly rounded
    assert torch.equal(weights, lovasz.lovasz_weights(labels.double()).float())


@pytest.mark.parametrize("value", [65504.0, -65504.0, math.inf, -math.inf])
def test_soft_losses_are_finite_for_extreme_fp16_logits(value):
    logits = torch.full((2, 3, 4, 4), value, dtype=torch.float16).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(67))
    masks = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).float()
    for loss in (stableloss.soft_bce_with_logits_loss(logits, masks, smooth_factor=0.1, pos_weight=2.0),
                 stableloss.soft_cross_entropy_loss(logits, labels, smooth_factor=0.1),
                 stableloss.lovasz_loss(logits, labels, mode="multiclass"),
                 stableloss.lovasz_loss(logits, masks, mode="multilabel")):
        (grad,) = torch.autograd.grad(loss, logits)
        assert loss.dtype == torch.float32 and math.isfinite(loss.item()) and bool(torch.isfinite(grad).all())


def test_soft_bce_costs_the_saturated_logit():
    logits = torch.tensor([math.inf, -math.inf, 65504.0], dtype=torch.float16).requires_grad_(True)
    loss = stableloss.soft_bce_with_logits_loss(logits, torch.tensor([0.0, 1.0, 0.0]), reduction="none")
    loss.sum().backward()
    assert loss.tolist() == [65504.0, 65504.0, 65504.0]
    assert logits.grad.tolist() == [1.0, -1.0, 1.0]  # the limit gradient of a confidently wrong logit


@pytest.mark.parametrize("shape", [(16, 1, 512, 512), (2, 1, 128, 128, 128)], ids=["16x1x512x512", "2x1x128^3"])
def test_mcc_is_finite_and_accurate_in_fp16_at_real_sizes(shape):
    generator = torch.Generator().manual_seed(68)
    target = (torch.rand(shape, generator=generator) > 0.7).half()
    probs = torch.where(target > 0, 0.9, 0.2).half().requires_grad_(True)  # counts of millions: fp16 sums overflow
    loss = stableloss.mcc_loss(probs, target)
    (grad,) = torch.autograd.grad(loss, probs)
    assert bool(torch.isfinite(grad).all())
    assert reference.close(loss, reference.mcc_reference(probs.detach(), target), rtol=1e-5, atol=0)
    assert not math.isfinite(smp_losses.MCCLoss()(probs.detach(), target).item())  # smp's float16 products overflow


def test_mcc_is_finite_when_a_class_is_empty():
    probs = torch.zeros(2, 1, 8, 8, requires_grad=True)
    loss = stableloss.mcc_loss(probs, torch.zeros(2, 1, 8, 8))
    loss.backward()
    assert loss.item() == pytest.approx(0.5, abs=1e-6)  # MCC 1/2, as smp: eps in every count
    assert bool(torch.isfinite(probs.grad).all())


def test_mcc_keeps_a_tiny_loss_that_float32_subtraction_rounds_away():
    target = (torch.arange(1_000_000) % 2).float().reshape(1, 1, 1000, 1000)
    probs = target.clone()
    probs.view(-1)[0] = 0.001  # one slightly wrong pixel of a million
    expected = reference.mcc_reference(probs, target)
    assert 1e-9 < expected.item() < 1e-7
    assert reference.close(stableloss.mcc_loss(probs, target), expected, rtol=1e-4, atol=0)
    assert not reference.close(smp_losses.MCCLoss()(probs, target), expected, rtol=0.1, atol=0)  # 1 - mcc in float32


# --- drop-in: signatures, attributes, the module's names, a training loop --------------------------

def test_the_whole_smp_loss_module_is_here():
    assert set(smp_losses.__all__) <= set(stableloss.__all__)
    for name in ("BINARY_MODE", "MULTICLASS_MODE", "MULTILABEL_MODE"):
        assert getattr(stableloss, name) == getattr(smp_losses, name)


def test_positional_arguments_and_attributes_are_smps():
    pairs = [
        (("multiclass", True, 255, True), "LovaszLoss", ("mode", "per_image", "ignore_index")),
        ((torch.tensor([0.5]), 255, "sum", 0.1, torch.tensor([2.0])), "SoftBCEWithLogitsLoss",
         ("ignore_index", "reduction", "smooth_factor", "weight", "pos_weight")),
        (("sum", 0.1, 255, 1), "SoftCrossEntropyLoss", ("reduction", "smooth_factor", "ignore_index", "dim")),
        ((1e-3,), "MCCLoss", ("eps",)),
    ]
    for args, name, attributes in pairs:
        ours, theirs = getattr(stableloss, name)(*args), getattr(smp_losses, name)(*args)
        for attribute in attributes:
            mine, smps = getattr(ours, attribute), getattr(theirs, attribute)
            if isinstance(smps, torch.Tensor):
                torch.testing.assert_close(mine, smps)
            else:
                assert mine == smps, (name, attribute)


def test_settings_are_validated_attributes_and_weights_stay_float32():
    criterion = stableloss.SoftBCEWithLogitsLoss(weight=[0.3], pos_weight=[[[2.0]], [[0.5]]])
    assert criterion.pos_weight.shape == (2, 1, 1)
    criterion.to(torch.bfloat16)
    assert criterion.weight.dtype == torch.float32 and criterion.weight.item() == pytest.approx(0.3, rel=1e-7)
    with pytest.raises(ValueError, match=r"smooth_factor must be in \[0.0, 1.0\]; received 1.5"):
        criterion.smooth_factor = 1.5
    assert criterion.smooth_factor is None  # the old value stays
    mcc = stableloss.MCCLoss()
    with pytest.raises(ValueError, match=r"eps must be in \(0.0, inf\]; received 0.0"):
        mcc.eps = 0.0
    lovasz_loss = stableloss.LovaszLoss("binary")
    lovasz_loss.per_image = True
    assert lovasz_loss.options.per_image is True


@pytest.mark.parametrize("build, call, error, message", [
    (lambda: stableloss.LovaszLoss("binery"), None, ValueError, "mode must be one of"),
    (lambda: stableloss.SoftBCEWithLogitsLoss(weight=[-1.0]), None, ValueError,
     r"weight must be finite and >= 0; received values in \[-1.0"),
    (lambda: stableloss.SoftBCEWithLogitsLoss(pos_weight="2"), None, TypeError, "pos_weight must be None, a tensor"),
    (lambda: stableloss.SoftCrossEntropyLoss(reduction="avg"), None, ValueError, "reduction must be one of"),
    (lambda: stableloss.SoftCrossEntropyLoss(dim=1.0), None, TypeError, "dim must be an int"),  # type: ignore[arg-type]
    (lambda: stableloss.SoftBCEWithLogitsLoss(), (torch.zeros(2, 3), torch.zeros(2, 4)), ValueError,
     r"target must have the input's shape \(2, 3\); received shape \(2, 4\)"),
    (lambda: stableloss.SoftBCEWithLogitsLoss(), (torch.zeros(2, 3), torch.full((2, 3), 2.0)), ValueError,
     r"target must hold values in \[0, 1\] \(or ignore_index=-100\); received values in \[2.0, 2.0\]"),
    (lambda: stableloss.SoftBCEWithLogitsLoss(weight=[[1.0, 2.0]]), (torch.zeros(2, 3), torch.zeros(2, 3)), ValueError,
     r"weight must broadcast to the input's shape \(2, 3\); received shape \(1, 2\)"),
    (lambda: stableloss.SoftCrossEntropyLoss(), (torch.zeros(2, 3), torch.zeros(2)), TypeError,
     "target must hold integer class indices"),
    (lambda: stableloss.SoftCrossEntropyLoss(), (torch.zeros(2, 3), torch.tensor([0, 3])), ValueError,
     r"class indices in \[0, 2\] or ignore_index=-100 for an input with 3 classes along dim 1; received values in \[3, 3\]"),
    (lambda: stableloss.SoftCrossEntropyLoss(dim=2), (torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)), ValueError,
     r"dim must index a dimension of the input \(shape \(2, 3\), 2 dims\); received dim=2"),
    (lambda: stableloss.MCCLoss(), (torch.zeros(2, 1, 4), torch.zeros(2, 4, 1)), ValueError,
     r"target must have the input's shape \(2, 1, 4\) or \(2, 4\); received shape \(2, 4, 1\)"),
    (lambda: stableloss.MCCLoss(), (torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4)), TypeError,
     r"input must be a floating-point tensor \(probabilities\)"),
])
def test_bad_settings_and_inputs_name_the_argument(build, call, error, message):
    with pytest.raises(error, match=message):
        loss = build()
        loss(*call)


def test_import_stableloss_as_smp_losses_trains_the_same_in_float32():
    # The same three SGD steps with each of smp's eight losses, through either module.
    def train(module, name, mode):
        torch.manual_seed(0)
        channels = 1 if mode == "binary" else 3
        net = torch.nn.Conv2d(2, channels, 3, padding=1)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        args = {"LovaszLoss": (mode,), "DiceLoss": (mode,), "JaccardLoss": (mode,), "TverskyLoss": (mode,), "FocalLoss": (mode,),
                "SoftCrossEntropyLoss": ("mean", 0.1), "SoftBCEWithLogitsLoss": (), "MCCLoss": ()}[name]
        criterion = getattr(module, name)(*args)
        generator = torch.Generator().manual_seed(1)
        images = torch.randn(4, 2, 8, 8, generator=generator)
        target = torch.randint(0, channels if mode == "multiclass" else 2, (4, 8, 8), generator=generator)
        if mode == "binary":
            target = target.unsqueeze(1).float()
        for _ in range(3):
            optimizer.zero_grad()
            output = net(images)
            loss = criterion(torch.sigmoid(output) if name == "MCCLoss" else output, target)
            loss.backward()
            optimizer.step()
        return loss.detach(), torch.cat([p.detach().flatten() for p in net.parameters()])

    plan = [("LovaszLoss", "binary"), ("LovaszLoss", "multiclass"), ("DiceLoss", "multiclass"), ("JaccardLoss", "binary"),
            ("TverskyLoss", "binary"), ("FocalLoss", "binary"), ("SoftCrossEntropyLoss", "multiclass"),
            ("SoftBCEWithLogitsLoss", "binary"), ("MCCLoss", "binary")]
    for name, mode in plan:
        ours, theirs = train(stableloss, name, mode), train(smp_losses, name, mode)
        torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-6, msg=f"{name} {mode}")
        torch.testing.assert_close(ours[1], theirs[1], rtol=1e-5, atol=1e-6, msg=f"{name} {mode}")
