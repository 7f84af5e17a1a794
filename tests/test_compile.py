"""torch.compile(fullgraph=True) over every loss: static and dynamic shapes, several hyper-parameters.

Settings are validated when a loss is built, so a compiled forward holds no ``math.isfinite`` or
``.item()`` on a setting: a recompilation that makes a setting symbolic (a second loss with another
``gamma`` in the same process, or ``dynamic=True``) must not break the graph.
"""

import inspect

import pytest
import torch

import stableloss
from tests.inputs import make_case
from tests.registry import cases

CASES, IDS = cases()


def _eager_and_compiled(loss, logits, target, extra=None, **compile_options):
    extra = extra or {}
    eager_x = logits.clone().requires_grad_(True)
    eager = loss(eager_x, target, **extra)
    eager.backward()
    compiled_x = logits.clone().requires_grad_(True)
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager", **compile_options)(compiled_x, target, **extra)
    compiled.backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(compiled_x.grad, eager_x.grad, rtol=1e-5, atol=1e-8)


ONE_PER_LOSS = ("dice-1", "tversky-1", "jaccard-0", "focal-1", "logcosh-0", "seed-0", "boundary-0", "hausdorff-0",
                "dou-0", "hybrid-0", "lovasz-0")  # one per loss (of those taking multilabel): compiling is slow on CPU


@pytest.mark.parametrize("info,options", [c for c, i in zip(CASES, IDS, strict=False) if i in ONE_PER_LOSS], ids=ONE_PER_LOSS)
def test_compile_dynamic_shapes_equals_eager(info, options):
    torch._dynamo.reset()
    loss = info.build("multilabel", **options)
    takes_maps = "distance_map" in inspect.signature(loss.forward).parameters or (
        isinstance(loss, stableloss.CombinedLoss) and any(
            "distance_map" in inspect.signature(term.forward).parameters for term in loss.losses.values()))
    for spatial in ((6, 7), (9, 5)):  # a second shape: dynamic dims, no recompilation needed
        logits, target = make_case("multilabel", seed=70, spatial=spatial)
        # with dynamic shapes, the target maps come from the loader (they are no part of the graph)
        extra = {"distance_map": stableloss.signed_distance_map(target)} if takes_maps else {}
        _eager_and_compiled(loss, logits, target, extra, dynamic=True)


@pytest.mark.parametrize("cls,settings", [
    (stableloss.FocalLoss, [{"gamma": 2.0}, {"gamma": 0.5}, {"gamma": 3.0, "alpha": 0.25}]),
    (stableloss.TverskyLoss, [{"alpha": 0.7, "beta": 0.3}, {"alpha": 0.3, "beta": 0.7, "gamma": 0.75}, {}]),
    (stableloss.DiceLoss, [{"smooth": 1.0}, {"smooth": 0.5, "eps": 1e-5}, {"log_loss": True}]),
])
def test_several_losses_of_one_kind_compile_in_one_process(cls, settings):
    torch._dynamo.reset()
    logits, target = make_case("binary", seed=71)
    for options in settings:  # each new setting recompiles, and dynamo may turn floats symbolic
        _eager_and_compiled(cls("binary", **options), logits, target)


@pytest.mark.parametrize("fn,options", [(stableloss.tversky_loss, {"alpha": 0.7, "beta": 0.3}),
                                        (stableloss.focal_loss, {"gamma": 0.5}),
                                        (stableloss.dice_loss, {"smooth": 1.0})])
def test_functions_compile_with_dynamic_true(fn, options):
    torch._dynamo.reset()
    logits, target = make_case("multiclass", seed=72)
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    torch.testing.assert_close(compiled(logits, target, mode="multiclass", **options),
                               fn(logits, target, mode="multiclass", **options), rtol=1e-6, atol=1e-7)


def test_tversky_with_unequal_weights_compiles_with_inductor():
    torch._dynamo.reset()
    logits, target = make_case("binary", seed=73, spatial=(16, 16))
    loss = stableloss.TverskyLoss("binary", alpha=0.7, beta=0.3)
    torch.testing.assert_close(torch.compile(loss, fullgraph=True)(logits, target), loss(logits, target),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss_name", ["focal", "dice", "hybrid-boundary"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_compiled_gradient_equals_eager_for_focal_dice_and_their_hybrid(loss_name, dtype):
    # torch 2.11's dynamo returned a zero gradient for an autograd.Function whose forward built its
    # outputs in place (the focal term; found on a GPU machine): the compiled gradient must be the
    # eager one, for float32 logits and for float16 ones (whose cast is the clamp's fresh copy).
    torch._dynamo.reset()
    loss = {"focal": lambda: stableloss.FocalLoss("multilabel", gamma=2.0),
            "dice": lambda: stableloss.DiceLoss("multilabel"),
            "hybrid-boundary": lambda: stableloss.BoundaryAwareLoss("multilabel", boundary="boundary")}[loss_name]()
    logits, target = make_case("multilabel", seed=74, spatial=(9, 7))
    logits = logits.to(dtype)
    eager_x, compiled_x = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    loss(eager_x, target).backward()
    torch.compile(loss, fullgraph=True, backend="aot_eager")(compiled_x, target).backward()
    assert float(eager_x.grad.abs().sum()) > 0
    torch.testing.assert_close(compiled_x.grad, eager_x.grad, rtol=1e-3, atol=1e-6)
