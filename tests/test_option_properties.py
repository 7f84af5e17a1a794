"""One property test over every option of every loss: value and gradients against the float64 references.

For each public loss (``tests/option_strategies.py`` :data:`LOSSES`) and mode, Hypothesis draws a
whole case from the loss's option spec (every accepted option, each left at its default a third of
the time), shapes on both sides of the distance transform's internal thresholds, hard or soft
targets (of several dtypes and layouts) with ignored pixels inside and outside the label range and
confident logits there, targets that require grad, a loader map or the loss's own, and for the
hybrid a schedule state saved with ``state_dict()`` and loaded into a freshly built loss (one
Hypothesis example checks several such cases of the cheap losses: ``CASES_PER_EXAMPLE``). The loss and its gradients
are compared with the float64 textbook references of ``tests/reference.py`` (which share no code
with the package) through ``backward`` and ``torch.func.grad_and_value`` on every case, and one
more route drawn per case: ``create_graph=True`` with a Hessian-vector product, or
``torch.func.jvp``. A small separate test does the same under ``torch.compile`` (``aot_eager``).
Combinations the library refuses are asserted to raise, with their type and message; combinations
it gets wrong today are listed, with a reproduction, in ``option_strategies.KNOWN_BUGS``.

Tolerances, float32 against float64 (``eps = 2^-24``; ``K = 8`` roundings per bound):

- values: ``|a - e| <= 1e-4 |e| + 1e-6 m`` per output element, ``m`` a bound on one output element
  (:func:`~tests.option_strategies.magnitude`: 1 for region and DoU losses, ``-log eps`` with
  ``log_loss``, the extent diagonal ``B`` (1 when normalised) plus ``inside_shift`` for the boundary
  loss, ``2 B^alpha`` for Hausdorff-DT, ``|x| + 1`` per focal element, times what a ``"sum"`` adds
  up; the hybrid adds its weighted terms'): the boundary loss's signed sum cancels, so its rounding
  is relative to ``m``, not to the result.
- gradients (w.r.t. the input and w.r.t. a target that requires grad, every route):
  ``|g - g64| <= 1e-3 |g64| + 1e-5 max|g64| + A`` per element, and **exactly 0** at every element
  ``ignore_index`` leaves out (the loss does not depend on them). ``A`` is the rounding the float32
  computation cannot avoid (:func:`_allowances`): ``K eps`` times the terms a derivative is the
  difference of — the class-level derivatives w.r.t. TP, FP, FN (region) or the difference and
  intersection sums (DoU), ``(1 + 2 alpha + 2 beta) / D`` per class (``D`` the Tversky denominator),
  through the activation's Jacobian (``p q``; ``p_k`` for a softmax); and for autograd's own
  activation derivatives (the distance and contour losses, and every ``create_graph=True`` /
  ``torch.func`` / compile route) ``y (1 - y)``, which rounds ``1 - y`` to ``eps`` near ``y = 1``,
  so up to ``eps |d loss / d p|`` per element. For the focal loss, ``A`` is ``2 K eps |d loss / d ce|``
  where autograd forms ``d ce / d x`` from terms of size 1: the softmax cross-entropy's ``p_y - 1``
  (on every route, as ``torch.nn.functional.cross_entropy`` does), and the sigmoid's on the routes
  listed in ``KNOWN_BUGS`` (its custom first-order backward is exact: no ``A``).
- the sigmoid focal loss on 0/1 targets (whose gradient is a product of per-element factors), on
  its custom backward: ``|g - g64| <= 1e-3 |g64| + 1e-30`` per element, so a confident pixel's tiny
  gradient (x > 17) is checked to its own precision, not to the largest gradient's.
- Hessian-vector products: ``|h - h64| <= 1e-3 |h64| + 1e-4 max|h64| + A_h``, ``A_h`` the
  gradient's ``A`` times ``2 K max|v|`` plus ``K eps`` times the class-level second-derivative terms
  (``A / D``) summed over the class; and 0 at ignored elements.
- ``jvp``: the tangent within ``1e-3 |t64| + 1e-5 (sum |g64 v| + sum A |v| / 1e-5)`` of the
  reference's ``g64 . v``, and exactly 0 for a tangent that lives on ignored elements only.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import stableloss
from tests import option_strategies as opt
from tests import reference
from tests.option_strategies import LOSSES, Case, cases

MODES = ("binary", "multiclass", "multilabel")
RTOL, ATOL = 1e-4, 1e-6
RTOL_GRAD, ATOL_GRAD = 1e-3, 1e-5
RTOL_PRECISE, FLOOR_PRECISE = 1e-3, 1e-30
RTOL_HVP, ATOL_HVP = 1e-3, 1e-4
EPS32 = 2.0**-24  # float32's unit roundoff
K_ROUNDING = 8  # roundings that one allowance covers
SCIPY_UNDER_TRANSFORM = "backend='scipy' cannot run under torch.compile or a torch.func transform"


# --- the table covers every option and every loss -------------------------------------------------

def test_every_option_has_a_strategy():
    """Each option a loss's spec accepts has a strategy (the property test draws through the same table)."""
    missing = {entry.name: opt.missing_strategies(entry) for entry in LOSSES}
    assert not any(missing.values()), f"options without a strategy in tests/option_strategies.py: {missing}"


def test_every_public_loss_is_in_the_option_table():
    """Every public loss class and function is drawn by the property test (CombinedLoss combines any
    callables and has no options; boundary_aware_loss is the hybrid class's twin)."""
    public = [getattr(stableloss, name) for name in stableloss.__all__]
    classes = {obj for obj in public if isinstance(obj, type) and issubclass(obj, nn.Module)} - {stableloss.CombinedLoss}
    functions = {obj for obj in public if callable(obj) and getattr(obj, "__name__", "").endswith("_loss")}
    functions -= {stableloss.boundary_aware_loss}
    assert classes - NOT_YET_DRAWN == {entry.cls for entry in LOSSES}
    assert functions - NOT_YET_DRAWN == {entry.fn for entry in LOSSES if entry.fn is not None}


NOT_YET_DRAWN = frozenset({
    stableloss.LovaszLoss, stableloss.lovasz_loss, stableloss.MCCLoss, stableloss.mcc_loss,
    stableloss.SoftBCEWithLogitsLoss, stableloss.soft_bce_with_logits_loss,
    stableloss.SoftCrossEntropyLoss, stableloss.soft_cross_entropy_loss,
})
"""smp's other four losses (issue 19) are not drawn here yet: their float64 references and generic
properties are in tests/registry.py (test_properties, test_stability) and tests/test_smp_losses.py. Any
other public loss added without an entry in ``option_strategies.LOSSES`` fails the test above."""


# --- building and calling -------------------------------------------------------------------------

def _build_hybrid(case: Case) -> stableloss.BoundaryAwareLoss:
    kw = case.given()
    dice, focal, schedule = kw.pop("dice", None), kw.pop("focal", None), kw.pop("schedule", None)
    return stableloss.BoundaryAwareLoss(
        case.mode, boundary=case.boundary, **kw,
        schedule=stableloss.RebalanceSchedule(*schedule) if isinstance(schedule, tuple) else schedule,
        dice=None if dice is None else stableloss.DiceLoss(case.mode, **dice),
        focal=None if focal is None else stableloss.FocalLoss(case.mode, **focal))


def _build(case: Case) -> Callable[..., Tensor]:
    """A callable ``(input, target, **extra) -> loss``; the hybrid after a schedule-state round trip."""
    entry = case.entry
    if entry.family == "hybrid":
        trained = _build_hybrid(case)
        for _ in range(case.epoch):
            trained.step()
        fresh = _build_hybrid(case)
        fresh.load_state_dict(trained.state_dict())
        assert fresh.weights == pytest.approx(trained.weights, rel=1e-12)
        return fresh
    if case.api == "class":
        return entry.cls(case.mode, **case.given())
    fn = entry.fn
    assert fn is not None
    return lambda x, t, **extra: fn(x, t, mode=case.mode, **case.given(), **extra)


def _loader_map(case: Case, target: Tensor) -> Dict[str, Tensor]:
    """``signed_distance_map`` of the target with the loss's own map settings, as a data loader makes it."""
    if case.distance_map != "loader":
        return {}
    family = case.entry.family if case.entry.family != "hybrid" else case.boundary
    settings_ = {"spacing": case.value("spacing"), "no_surface": case.value("no_surface", "bound"),
                 "inside_shift": case.value("inside_shift", 0.0) if family == "boundary" else 0.0,
                 "backend": case.value("backend", "auto")}
    target = target.detach()
    if case.mode == "multiclass":
        phi = stableloss.signed_distance_map(target, num_classes=case.shape[1], ignore_index=case.ignore_index,
                                             **settings_)
    else:  # ignored pixels are background in the loss's maps
        labels = target.reshape(case.shape)
        if case.ignore_index is not None:
            labels = torch.where(labels == case.ignore_index, torch.zeros((), dtype=labels.dtype), labels)
        phi = stableloss.signed_distance_map(labels, **settings_)
    return {"distance_map": phi}


def _reference_fn(case: Case, **override: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """``(input64, target64) -> loss64`` from tests/reference.py with every drawn option that changes numbers."""
    entry = case.entry
    given = {k: v for k, v in case.given().items() if k not in opt.NO_NUMERIC_EFFECT}
    given.update(override)
    # The semimetric counts min(p, t), max(p - t, 0), max(t - p, 0): the textbook ones for 0/1 labels,
    # and the library's definition for soft labels, at a tie (an even split) and w.r.t. the target.
    soft = case.mode != "multiclass"
    if entry.family == "region":
        return lambda x, t: entry.reference(x, t, mode=case.mode, soft=soft, **entry.reference_fixed, **given)
    if entry.family == "hybrid":
        dice, focal = given.pop("dice", None), given.pop("focal", None)
        return lambda x, t: reference.boundary_aware_reference(
            x, t, mode=case.mode, boundary=case.boundary, epoch=case.epoch, soft=soft, dice_options=dice,
            focal_options=focal, **given)
    return lambda x, t: entry.reference(x, t, mode=case.mode, **given)


# --- tolerances -----------------------------------------------------------------------------------

def _assert_close(actual, expected, rtol, atol, what: str, case: Case) -> None:
    actual = torch.as_tensor(actual).detach().double()
    expected = torch.as_tensor(expected).detach().double()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}\n{case.describe()}"
    error = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    bad = ~(error <= bound)
    worst = int((error - bound).flatten().argmax())
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.numel()} elements off; worst |a - e| = "
                           f"{float(error.flatten()[worst]):.3g} (bound {float(bound.expand_as(error).flatten()[worst]):.3g}); "
                           f"a={actual.flatten()[bad.flatten()][:4].tolist()} e={expected.flatten()[bad.flatten()][:4].tolist()}"
                           f"\n{case.describe()}")


def _assert_gradient(grad: Tensor, expected: Tensor, ignored: Tensor, case: Case, what: str, allowance=0.0,
                     precise: bool = False, hard: Optional[Tensor] = None) -> None:
    expected = expected.detach().double()
    atol = ATOL_GRAD * float(expected.abs().max()) + 1e-30 + allowance
    _assert_close(grad, expected, RTOL_GRAD, atol, what, case)
    assert (grad.detach()[ignored] == 0).all(), f"{what}: ignored elements got a gradient\n{case.describe()}"
    if precise and _sigmoid_focal(case) and hard is not None:  # the elements with 0/1 labels
        _assert_close(torch.where(hard, grad.detach().double(), 0.0), torch.where(hard, expected, 0.0), RTOL_PRECISE,
                      FLOOR_PRECISE, f"{what} (per element)", case)


def _sigmoid_focal(case: Case) -> bool:
    """The sigmoid focal loss from logits, not normalised: each gradient element is a product of
    per-element factors (on 0/1 labels, each exact)."""
    sigmoid = case.mode != "multiclass" or case.value("multiclass_activation", "softmax") == "sigmoid"
    return (case.entry.family == "focal" and sigmoid and case.from_logits and not case.value("normalized", False))


def _focal_residual(case: Case, x64: Tensor, t64: Tensor) -> Tensor:
    """``|p - t|`` per element: the sigmoid focal loss's ``d ce / d x`` (``x`` the logits the loss
    makes of given probabilities)."""
    x = x64.detach()
    if not case.from_logits:
        eps = case.value("eps", 1e-7)
        x = torch.logit(x.clamp(eps, 1 - eps))
    if case.mode == "multiclass":
        t = torch.nn.functional.one_hot(t64.clamp(0, x.shape[1] - 1).long(), x.shape[1]).movedim(-1, 1).double()
    else:
        t = t64.detach().double().reshape(x.shape)
    return (torch.sigmoid(x) - t).abs().clamp_min(1e-300)


def _focal_allowance(case: Case, x64: Tensor, t64: Tensor, g64: Tensor, differentiable: bool) -> Tensor:
    """The focal loss's ``d ce / d x``, formed by autograd from terms of size 1, rounds to ``eps`` times
    ``|d loss / d ce|``: the softmax cross-entropy's ``p_y - 1`` on every route (as in
    ``torch.nn.functional.cross_entropy``), and, while KNOWN_BUGS lists
    "focal-differentiable-confident-positives", the sigmoid's where autograd forms it (the
    differentiable routes; ``normalized=True`` on every route)."""
    if case.entry.family != "focal":
        return torch.zeros(())
    g = g64.detach().abs()
    if case.mode == "multiclass" and case.value("multiclass_activation", "softmax") == "softmax":
        x = x64.detach() if case.from_logits else torch.log(x64.detach().clamp(case.value("eps", 1e-7), 1))
        labels = torch.nn.functional.one_hot(t64.clamp(0, x.shape[1] - 1).long(), x.shape[1]).movedim(-1, 1)
        residual = (torch.softmax(x, 1) - labels).abs().sum(dim=1, keepdim=True).clamp_min(1e-300)
        return K_ROUNDING * EPS32 * 2 * g.sum(dim=1, keepdim=True) / residual
    autograd = differentiable or case.value("normalized", False)  # normalized=True has no custom backward
    if autograd and _sigmoid_focal_bug(case):
        return K_ROUNDING * EPS32 * 2 * g / _focal_residual(case, x64, t64)
    return torch.zeros(())


def _sigmoid_focal_bug(case: Case) -> bool:
    """A sigmoid focal loss while KNOWN_BUGS lists "focal-differentiable-confident-positives"."""
    sigmoid = case.mode != "multiclass" or case.value("multiclass_activation", "softmax") == "sigmoid"
    return case.entry.family == "focal" and sigmoid and "focal-differentiable-confident-positives" in opt.KNOWN_BUGS


def _activation_allowance(case: Case, x64: Tensor, t64: Tensor, weights: Tensor) -> Tensor:
    """The float32 rounding of autograd's activation derivatives, per element of d loss / d input.

    With ``G = d loss / d p`` (float64, the reference on the probabilities): the derivative
    ``y (1 - y)`` of ``torch.sigmoid`` rounds ``1 - y`` to ``eps`` (``y`` is ``p`` or, for ``q =
    sigmoid(-x)``, ``q``), an error up to ``eps |G|``; the softmax's ``e_k / T`` differentiates to
    terms ``p_k (delta_kj - p_j)`` rounded to ``eps p_k p_j``, up to ``eps p_j sum_k |G_k|``, and its
    complement ``q_k``, clamped to 1, loses ``d q_k / dx`` (about ``p_k |G_k|``) where it rounds there. The
    distance and contour losses differentiate ``activate`` with autograd; the region losses' custom
    backwards use ``p q`` (their rounding is :func:`_count_scale`'s); the focal loss differentiates
    its cross-entropy in the precise ``log1p(exp(-|x|))`` form; probabilities given as input have no
    activation.
    """
    if not case.from_logits or case.entry.family in ("focal", "region"):
        return torch.zeros(())
    softmax = case.mode == "multiclass"
    p = (torch.softmax(x64.detach(), 1) if softmax else torch.sigmoid(x64.detach())).requires_grad_(True)
    out = _reference_fn(case, from_logits=False)(p, t64.detach())
    (g,) = torch.autograd.grad((out * weights.double()).sum(), [p], allow_unused=True, materialize_grads=True)
    if not softmax:
        return K_ROUNDING * EPS32 * g.abs()
    p = p.detach()
    # q_k = others / total is clamped to 1: where it rounds there (p_k < eps), d q_k / dx (about p_k) is lost
    lost = torch.where(p < 1e-6, p * g.abs(), 0.0).sum(dim=1, keepdim=True)
    return K_ROUNDING * EPS32 * p * g.abs().sum(dim=1, keepdim=True) + 2 * lost


def _coefficient(losses: Tensor, options: Dict[str, Any], weights: Tensor) -> Tensor:
    """``|d (weights . reduce(losses)) / d losses|`` for the loss's classes, class weights and reduction."""
    dummy = torch.zeros_like(losses, requires_grad=True)
    out = reference._reduce_classes(dummy, options.get("classes"), options.get("class_weights"),
                                    options.get("reduction", "mean"))
    (coef,) = torch.autograd.grad((out * weights).sum(), [dummy], allow_unused=True, materialize_grads=True)
    return coef.abs()


def _region_scale(case: Case, options: Dict[str, Any], fixed: Dict[str, Any], x64: Tensor, t64: Tensor,
                  weights: Tensor) -> Tuple[Tensor, Tensor]:
    def get(name, default):
        return options.get(name, fixed.get(name, default))

    alpha, beta, gamma = get("alpha", 0.5), get("beta", 0.5), get("gamma", 1.0)
    smooth, eps = get("smooth", 0.0), get("eps", 1e-7)
    probs, complement = reference._probs(x64.detach(), case.mode, get("from_logits", True))
    n, c = probs.shape[:2]
    onehot, valid = reference._targets(t64.detach(), case.mode, c, get("ignore_index", None))
    tp, fp, fn = reference.tversky_counts(probs.reshape(n, c, -1) * valid, complement.reshape(n, c, -1), onehot,
                                          get("per_image", False), case.mode != "multiclass")
    denominator = (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)
    scale = (1 + 2 * alpha + 2 * beta) / denominator
    loss = (alpha * fp + beta * fn) / denominator
    numerator = denominator
    if get("log_loss", False):  # d(-log TI) = -dTI / TI
        numerator = torch.maximum(tp + smooth, eps * denominator)
        scale = scale * denominator / numerator
        loss = torch.log(denominator / numerator)
    if gamma != 1.0:
        scale = scale * torch.where(loss > 0, gamma * loss.clamp_min(1e-300) ** (gamma - 1), 0.0)
    if get("ignore_empty", True):
        scale = torch.where(tp + fn > 0, scale, 0.0)
    first = scale * _coefficient(scale, options, weights)
    return first, first * (1 + 2 * alpha + 2 * beta) / torch.minimum(denominator, numerator)


def _dou_scale(case: Case, options: Dict[str, Any], x64: Tensor, t64: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
    smooth, alpha_max = options.get("smooth", 1e-5), options.get("alpha_max", 0.8)
    probs, complement, onehot, valid = reference._spatial_parts(x64.detach(), t64.detach(), case.mode,
                                                                options.get("ignore_index"), options.get("from_logits", True))
    dims = (0,) + tuple(range(2, probs.dim()))
    error = (torch.where(onehot == 1, complement, probs - onehot) * valid) ** 2
    intersection = (probs * valid * onehot).sum(dims)
    denominator = error.sum(dims) + smooth + (1 - alpha_max) * intersection  # alpha <= alpha_max
    scale = 3 * 4 / denominator  # |1 - alpha| <= 2; d difference / dp <= 2, d intersection / dp <= 1
    if options.get("ignore_empty", True):
        scale = torch.where(onehot.sum(dims) > 0, scale, 0.0)
    first = scale * _coefficient(scale, options, weights)
    return first, first * 3 / denominator


def _count_scale(case: Case, x64: Tensor, t64: Tensor, weights: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
    """Per class (and image): bounds on the terms of the first and second derivatives w.r.t. TP, FP,
    FN (region) or the difference and intersection sums (DoU), times ``d (weights . output) / d loss_c``;
    or None.

    Those derivatives are differences of terms (``alpha / D - alpha FP alpha / D^2`` ...) that float32
    rounds to about ``eps`` times the terms, however small the difference (0 for a constant loss).
    """
    family, given = case.entry.family, case.given()
    if family == "region":
        return _region_scale(case, given, dict(case.entry.reference_fixed), x64, t64, weights.double())
    if family == "dou":
        return _dou_scale(case, given, x64, t64, weights.double())
    if family != "hybrid":
        return None
    dice, _, bound = opt.hybrid_weights(case)
    region, boundary = reference.schedule_factors(given.get("schedule"), case.epoch)
    shared = {k: v for k, v in given.items() if k in reference.HYBRID_SHARED}
    scale, second = _region_scale(case, {**shared, **(given.get("dice") or {})}, {}, x64, t64,
                                  weights.double() * region * dice)
    if case.boundary == "dou":
        term = {k: v for k, v in given.items() if k in stableloss.BoundaryDoULoss.spec.accepted}
        more = _dou_scale(case, term, x64, t64, weights.double() * boundary * bound)
        scale, second = scale + more[0].reshape(scale.shape), second + more[1].reshape(second.shape)
    return scale, second


def _allowances(case: Case, x64: Tensor, t64: Tensor, weights: Tensor, differentiable: bool,
                v: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-element float32 rounding allowed in d loss / d input, d loss / d target and the
    Hessian-vector product along ``v`` (see the module docstring).

    ``differentiable``: the route differentiates the library's differentiable definitions
    (``create_graph=True``, ``torch.func``, compile) instead of its custom first-order backwards.
    """
    allow_x = _activation_allowance(case, x64, t64, weights)
    allow_t = torch.zeros(())
    scales = _count_scale(case, x64, t64, weights)
    if scales is None:
        return allow_x, allow_t, 2 * K_ROUNDING * allow_x * float(v.abs().max())
    n, c = x64.shape[:2]
    scale, second = (s.reshape((n if s.dim() == 2 else 1, c) + (1,) * (x64.dim() - 2)) for s in scales)
    x = x64.detach()
    dims = tuple(range(2, x.dim())) if scale.shape[0] > 1 else (0,) + tuple(range(2, x.dim()))
    if not case.from_logits:
        jacobian = torch.ones_like(x)
        rounding = scale
    elif case.mode == "multiclass":  # every class's counts depend on every logit of the pixel
        jacobian = torch.softmax(x, 1)
        rounding = jacobian * scale.sum(dim=1, keepdim=True)
        if differentiable:  # q_k = others / total is clamped to 1: where it rounds there, d q_k / dx is lost
            rounding = rounding + torch.where(jacobian < 1e-6, jacobian * scale / EPS32, 0.0)
        second, dims = second.sum(dim=1, keepdim=True), (1,) + dims
    else:
        jacobian = torch.sigmoid(x) * torch.sigmoid(-x)
        # autograd's sigmoid derivative rounds to eps (see _activation_allowance); the custom backwards use p q
        rounding = scale if differentiable or case.entry.family != "region" else jacobian * scale
    allow_x = allow_x + K_ROUNDING * EPS32 * rounding
    if case.target_grad:
        allow_t = (K_ROUNDING * EPS32 * scale).expand(x64.shape).reshape(t64.shape)
    # the class-level second derivatives couple every pixel of a class (every class, for a softmax)
    spread = (jacobian * v.double().abs()).sum(dim=dims, keepdim=True)
    allow_h = 2 * K_ROUNDING * allow_x * float(v.abs().max()) + K_ROUNDING * EPS32 * jacobian * second * spread
    return allow_x, allow_t, allow_h


# --- the property ---------------------------------------------------------------------------------

PARAMS = [pytest.param(entry, mode, id=f"{entry.name}-{mode}") for entry in LOSSES for mode in MODES]


@pytest.mark.parametrize("entry,mode", PARAMS)
@given(data=st.data())
def test_loss_and_gradients_agree_with_the_float64_reference_for_every_option(entry, mode, data):
    for case in data.draw(st.lists(cases(entry, mode), min_size=1, max_size=opt.CASES_PER_EXAMPLE[entry.family]),
                          label="cases"):
        refusal = opt.expected_refusal(case)
        if refusal is not None:
            exc, pattern = refusal
            logits, target = case.tensors()
            with pytest.raises(exc, match=pattern):
                _build(case)(logits, target)
            continue
        _check(case)


def _check(case: Case, compiled: bool = False) -> None:
    logits, target = case.tensors()
    bug = opt.known_bug(case, logits, target)
    assume(bug != "focal-multiclass-sigmoid-probabilities")
    loss = _build(case)
    extra = _loader_map(case, target)
    if case.entry.family == "hausdorff" or (case.entry.family == "hybrid" and case.boundary == "hausdorff"):
        _assume_unambiguous_mask(case, logits)
    target_grad = case.target_grad
    gen = torch.Generator().manual_seed(case.seed % 1000)

    # the float64 reference: value, gradients (and their graph for the Hessian-vector product)
    x64 = logits.double().requires_grad_(True)
    t64 = target if case.mode == "multiclass" else target.double().requires_grad_(target_grad)  # class indices stay
    out64 = _reference_fn(case)(x64, t64)
    weights = torch.randn(out64.shape, generator=gen)  # float32 values, exact in float64: sum(weights * loss)
    total64 = (out64 * weights.double()).sum()
    double = case.route == "double_backward" and not compiled
    grads64 = torch.autograd.grad(total64, [x64] + ([t64] if target_grad else []), allow_unused=True,
                                  materialize_grads=True, create_graph=double)
    v = torch.randn(logits.shape, generator=gen)  # the direction of the Hessian-vector product and of jvp
    first = _allowances(case, x64, t64, weights, compiled, v)  # the custom first-order backwards (or compile)
    first = (first[0] + _focal_allowance(case, x64, t64, grads64[0], compiled),) + first[1:]
    # the differentiable definitions (create_graph=True, torch.func)
    allowance, allowance_t, allowance_h = _allowances(case, x64, t64, weights, True, v)
    focal = _focal_allowance(case, x64, t64, grads64[0], True)
    allowance, allowance_h = allowance + focal, allowance_h + 2 * K_ROUNDING * focal * float(v.abs().max())
    m = opt.magnitude(case)
    ignored = case.ignored_mask(logits, target)
    ignored_t = target == case.ignore_index if case.ignore_index is not None else torch.zeros(target.shape, dtype=torch.bool)

    def forward(x: Tensor, t: Tensor) -> Tensor:
        return loss(x, t, **extra)

    def scalar(x: Tensor, t: Tensor) -> Tensor:
        return (forward(x, t) * weights).sum()

    if case.value("backend") == "scipy" and opt.runs_a_transform(case) and case.regime != "slab":
        with pytest.raises(ValueError, match=SCIPY_UNDER_TRANSFORM):  # no NumPy data under a transform
            if compiled:
                torch.compile(forward, backend="aot_eager")(logits, target)
            else:
                torch.func.grad(scalar)(logits, target)
        if compiled:
            return

    # backward (every case: the custom first-order backwards), or compiled
    hard = ~ignored & ((target == 0) | (target == 1)).reshape(logits.shape) if case.mode != "multiclass" else ~ignored
    x = logits.clone().requires_grad_(True)
    t_lib = target.clone().requires_grad_(True) if target_grad else target
    out = (torch.compile(forward, backend="aot_eager") if compiled else forward)(x, t_lib)
    _assert_close(out, out64, RTOL, ATOL * m, "loss", case)
    wrt = [x] + ([t_lib] if target_grad else [])
    grads = torch.autograd.grad((out * weights).sum(), wrt, allow_unused=True, materialize_grads=True)
    exact = not compiled or "focal-differentiable-confident-positives" not in opt.KNOWN_BUGS
    _assert_gradient(grads[0], grads64[0], ignored, case, "d loss / d input", first[0], precise=exact, hard=hard)
    if target_grad:
        _assert_gradient(grads[1], grads64[1], ignored_t, case, "d loss / d target", first[1])

    if double:  # the first derivatives with create_graph=True (the differentiable definitions), then d (g . v) / dx
        x = logits.clone().requires_grad_(True)
        t_lib = target.clone().requires_grad_(True) if target_grad else target
        grads = torch.autograd.grad((forward(x, t_lib) * weights).sum(), [x] + ([t_lib] if target_grad else []),
                                    allow_unused=True, materialize_grads=True, create_graph=True)
        exact = "focal-differentiable-confident-positives" not in opt.KNOWN_BUGS
        _assert_gradient(grads[0], grads64[0], ignored, case, "d loss / d input (create_graph)", allowance,
                         precise=exact, hard=hard)
        if target_grad:
            _assert_gradient(grads[1], grads64[1], ignored_t, case, "d loss / d target (create_graph)", allowance_t)
        hvp = _grad_or_zero((grads[0] * v).sum(), x)
        hvp64 = _grad_or_zero((grads64[0] * v.double()).sum(), x64)
        atol = ATOL_HVP * float(hvp64.abs().max()) + 1e-30 + allowance_h
        if _sigmoid_focal_bug(case):  # its second derivative too
            atol = atol + K_ROUNDING * EPS32 * 2 * hvp64.abs() / _focal_residual(case, x64, t64)
        _assert_close(hvp, hvp64, RTOL_HVP, atol, "Hessian-vector product", case)
        assert (hvp[ignored] == 0).all(), f"Hessian-vector product: ignored elements got one\n{case.describe()}"
    if compiled or case.regime == "slab" or (case.value("backend") == "scipy" and opt.runs_a_transform(case)):
        return

    # torch.func.grad_and_value (every case): value and gradients through the differentiable definitions
    total_magnitude = m * float(weights.abs().sum())
    grad_fn = torch.func.grad_and_value(scalar, argnums=(0, 1) if target_grad else 0)
    result, value = grad_fn(logits, target)
    found: Tuple[Tensor, ...] = result if target_grad else (result,)
    _assert_close(value, total64, RTOL, ATOL * total_magnitude, "loss (torch.func)", case)
    exact = "focal-differentiable-confident-positives" not in opt.KNOWN_BUGS
    _assert_gradient(found[0], grads64[0], ignored, case, "d loss / d input (torch.func)", allowance, precise=exact,
                     hard=hard)
    if target_grad:
        _assert_gradient(found[1], grads64[1], ignored_t, case, "d loss / d target (torch.func)", allowance_t)
    if case.route != "jvp":
        return

    # torch.func.jvp: along v (and w for the target), then along a direction on the ignored elements only
    primals: Tuple[Tensor, ...] = (logits,)
    tangents: Tuple[Tensor, ...] = (v,)
    expected = (grads64[0] * v.double()).sum()
    scale = (grads64[0] * v.double()).abs().sum() + (allowance * v.double().abs()).sum() / ATOL_GRAD
    if target_grad:
        w = torch.randn(target.shape, generator=gen)
        primals, tangents = (logits, target), (v, w)
        expected = expected + (grads64[1] * w.double()).sum()
        scale = scale + (grads64[1] * w.double()).abs().sum() + (allowance_t * w.double().abs()).sum() / ATOL_GRAD

    def along(*args: Tensor) -> Tensor:
        return scalar(args[0], args[1] if len(args) > 1 else target)

    value, tangent = torch.func.jvp(along, primals, tangents)[:2]
    _assert_close(value, total64, RTOL, ATOL * total_magnitude, "loss (jvp)", case)
    _assert_close(tangent, expected, RTOL_GRAD, ATOL_GRAD * float(scale) + 1e-30, "jvp tangent", case)
    if ignored.any():
        along_ignored = (torch.where(ignored, v, 0.0),) + tuple(torch.zeros_like(t) for t in tangents[1:])
        tangent = torch.func.jvp(along, primals, along_ignored)[1]
        assert tangent == 0, f"jvp along ignored elements: {float(tangent)} != 0\n{case.describe()}"


def _grad_or_zero(output: Tensor, wrt: Tensor) -> Tensor:
    if not output.requires_grad:  # the gradient does not depend on the input (e.g. p * phi with clamped p)
        return torch.zeros_like(wrt)
    return torch.autograd.grad(output, wrt, allow_unused=True, materialize_grads=True)[0]


def _assume_unambiguous_mask(case: Case, logits: Tensor) -> None:
    """Hausdorff-DT's predicted mask ``p > threshold`` must be the same in float32 and float64: a pixel
    within rounding of the threshold flips it, and the distance map with it (a discontinuity, not an error)."""
    options = {**reference.HYBRID_DEFAULT_BOUNDARY_OPTIONS.get(case.boundary or "", {}), **case.given()}
    threshold = options.get("threshold", 0.5)
    if not case.from_logits:
        return  # the same probabilities in both
    activation = (lambda z: torch.softmax(z, 1)) if case.mode == "multiclass" else torch.sigmoid
    assume(bool(((activation(logits) > threshold) == (activation(logits.double()) > threshold)).all()))


# --- torch.compile (slow on CPU: a few cases per loss family) -------------------------------------

COMPILED = ("dice", "focal", "boundary", "hausdorff", "dou", "hybrid")


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=2)
@given(data=st.data())
def test_compiled_loss_agrees_with_the_float64_reference(name, data):
    entry = opt.BY_NAME[name]
    mode = data.draw(st.sampled_from(MODES), label="mode")
    case = data.draw(cases(entry, mode), label="case")
    assume(case.regime == "small" and opt.expected_refusal(case) is None)
    torch._dynamo.reset()
    _check(case, compiled=True)
