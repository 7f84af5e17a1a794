"""The fused Triton kernels against the eager path they replace (CPU: Triton's interpreter; CUDA when present).

Every test name contains ``triton`` (``pytest -k triton``). Without a GPU this module sets
``TRITON_INTERPRET=1`` before the kernels are first imported, so that Triton runs them on CPU
tensors; shapes are small (the interpreter executes each block operation in numpy) but cover
sizes that are not a multiple of the block and rows split over several programs.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch

pytest.importorskip("triton")

from stableloss import _fused, _sigmoid_focal

if not _fused.triton_installed():
    pytest.skip("the fused path needs torch.library.custom_op (torch 2.4+)", allow_module_level=True)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FUNCTIONS = {"overlap": _fused.overlap_sums, "focal": _fused.sigmoid_focal_sums, "hybrid": _fused.overlap_focal_sums}


@pytest.fixture(scope="module", autouse=True)
def _kernels_runnable():
    if DEVICE == "cuda":
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        from stableloss._fused import _kernels

        if not _kernels.INTERPRETED:  # imported before, without the variable (pytest's doctest collection)
            importlib.reload(_kernels)  # triton.jit decides at decoration whether it interprets
        assert _kernels.INTERPRETED
        yield


def make_inputs(shape, *, dtype=torch.float32, scale=4.0, soft=False, valid=None, seed=0):
    """Flat ``(N, C, S)`` logits (a leaf of ``dtype``), target (0 at ignored pixels) and validity mask.

    ``valid``: None, ``"pixel"`` (an ``(N, 1, S)`` mask, as binary ``ignore_index`` gives) or
    ``"class"`` (``(N, C, S)``, multilabel).
    """
    gen = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    logits = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).reshape(n, c, -1)
    target = torch.rand(logits.shape, generator=gen, dtype=torch.float64)
    target = target if soft else (target > 0.5).double()
    mask = None
    if valid is not None:
        mask = torch.rand((n, 1 if valid == "pixel" else c, logits.shape[2]), generator=gen) > 0.25
        target = target * mask
    work = torch.float64 if dtype == torch.float64 else torch.float32
    mask = None if mask is None else mask.to(DEVICE)
    return logits.to(device=DEVICE, dtype=dtype), target.to(device=DEVICE, dtype=work), mask


def run(fn, logits, target, valid, *, fused, target_grad=False, **options):
    """Sums, the gradient for the logits (and target) of a fixed random weighting of them.

    The eager run takes the general focal path, the formula the kernels are written from (the CPU's
    hard-label focal path rounds differently; tests/test_focal_paths.py checks it against float64).
    """
    x = logits.detach().clone().requires_grad_()
    t = target.detach().clone().requires_grad_(target_grad)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_sigmoid_focal, "hard_label_sign", lambda *args: None)
        out = fn(x, t, valid, fused=fused, **options)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out * weights.to(out)).sum().backward()
    return out.detach(), x.grad, t.grad


def relative(a, b) -> float:
    """Largest error over the largest magnitude of the reference (0 when both are 0)."""
    scale = b.double().abs().max()
    err = (a.double() - b.double()).abs().max()
    return 0.0 if err == 0 else float(err / scale)


def assert_matches_eager(fn, logits, target, valid, *, target_grad=False, **options):
    fused = run(fn, logits, target, valid, fused=True, target_grad=target_grad, **options)
    eager = run(fn, logits, target, valid, fused=False, target_grad=target_grad, **options)
    torch.testing.assert_close(fused[0], eager[0], rtol=1e-6, atol=0.0)
    assert relative(fused[1], eager[1]) <= 1e-6
    if target_grad:
        assert relative(fused[2], eager[2]) <= 1e-6
    return fused


OVERLAP_CASES = [  # shape (N, C, *S), per_image, validity mask, soft labels
    ((2, 1, 37), False, None, False),
    ((2, 1, 67), True, "pixel", False),
    ((2, 3, 5, 7), False, "class", False),
    ((2, 2, 5, 7), True, None, True),
    ((1, 2, 3, 4, 5), False, "pixel", True),
    ((3, 1, 1), False, None, False),
]


@pytest.mark.parametrize("shape,per_image,valid,soft", OVERLAP_CASES, ids=[str(c) for c in OVERLAP_CASES])
def test_triton_overlap_sums_match_eager_float32(shape, per_image, valid, soft):
    logits, target, mask = make_inputs(shape, soft=soft, valid=valid)
    out = assert_matches_eager(_fused.overlap_sums, logits, target, mask, per_image=per_image)[0]
    assert out.shape == ((3, shape[0], shape[1]) if per_image else (3, shape[1]))


FOCAL_CASES = [
    {"gamma": 2.0},
    {"gamma": 0.0, "alpha": 0.25},
    {"gamma": 0.5, "alpha": 0.75},
    {"gamma": 1.0, "alpha": "per-class"},
    {"gamma": 2.5, "reduced_threshold": 0.5},
    {"gamma": 0.0, "reduced_threshold": 0.3, "alpha": 0.4},
    {"gamma": 0.5, "reduced_threshold": 0.5, "per_image": True},
]


def _options(options, classes):
    options = dict(options)
    if options.get("alpha") == "per-class":
        options["alpha"] = torch.linspace(0.2, 0.9, classes, device=DEVICE)
    return options


@pytest.mark.parametrize("options", FOCAL_CASES, ids=[str(c) for c in FOCAL_CASES])
def test_triton_focal_sums_match_eager_float32(options):
    logits, target, mask = make_inputs((2, 2, 41), valid="class", scale=6.0)
    assert_matches_eager(_fused.sigmoid_focal_sums, logits, target, mask, **_options(options, 2))


@pytest.mark.parametrize("options", [{"gamma": 2.0}, {"gamma": 1.5, "alpha": 0.25, "per_image": True}], ids=str)
def test_triton_hybrid_sums_match_eager_and_the_separate_kernels(options):
    logits, target, mask = make_inputs((2, 3, 6, 7), valid="pixel")
    both = assert_matches_eager(_fused.overlap_focal_sums, logits, target, mask, **options)[0]
    focal_options = {k: v for k, v in options.items() if k != "per_image"}
    overlap = _fused.overlap_sums(logits, target, mask, options.get("per_image", False), fused=True)
    focal = _fused.sigmoid_focal_sums(logits, target, mask, per_image=options.get("per_image", False), fused=True,
                                      **focal_options)
    torch.testing.assert_close(both, torch.cat([overlap, focal]), rtol=0, atol=0)


@pytest.mark.parametrize("name,options", [("overlap", {}), ("focal", {"gamma": 0.5, "alpha": 0.3}),
                                          ("hybrid", {"gamma": 2.0, "reduced_threshold": 0.4})])
def test_triton_gradient_with_respect_to_soft_target_matches_eager(name, options):
    logits, target, mask = make_inputs((2, 2, 37), soft=True, valid="pixel")
    assert_matches_eager(FUNCTIONS[name], logits, target, mask, target_grad=True, **options)


def assert_half_precision_error_within_eager_error(fn, logits, target, mask, **options):
    """Cut Cross-Entropy's rule: the fused error against float64 is at most the eager error + 1e-5."""
    fused = run(fn, logits, target, mask, fused=True, **options)
    eager = run(fn, logits, target, mask, fused=False, **options)
    exact = run(fn, logits.double(), target.double(), mask, fused=False, **options)  # the same rounded logits
    for got, ref, want in zip(fused[:2], eager[:2], exact[:2], strict=False):
        assert got.dtype == ref.dtype
        assert relative(got, want) <= relative(ref, want) + 1e-5
    return fused


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_triton_half_precision_error_within_eager_error_fp16_bf16(name, dtype):
    logits, target, mask = make_inputs((2, 2, 45), dtype=dtype, scale=8.0, valid="pixel", seed=3)
    assert_half_precision_error_within_eager_error(FUNCTIONS[name], logits, target, mask)


EXTREMES = ["inf", "saturated", "empty", "full", "single-pixel", "all-ignored"]


@pytest.mark.parametrize("case", EXTREMES)
def test_triton_extremes_finite_and_as_eager_fp16(case):
    logits, target, mask = make_inputs((2, 1, 7, 5), dtype=torch.float16, valid="pixel", seed=4)
    if case == "inf":  # fp16 overflow, confidently right and wrong
        logits = (torch.where(target > 0, 1.0, -1.0) * (logits.float().abs() * 3e4)).half()
        logits[0, 0, :6] = -logits[0, 0, :6]
        assert torch.isinf(logits).any()
    elif case == "saturated":
        logits = torch.where(target > 0, 65504.0, -65504.0).half()
    elif case in ("empty", "full", "single-pixel"):
        target = torch.zeros_like(target) if case != "full" else mask.expand_as(target).float()
        if case == "single-pixel":
            target[1, 0, 3] = 1.0
            mask[1, 0, 3] = True
    else:
        mask = torch.zeros_like(mask)
        target = torch.zeros_like(target)
    for per_image in (False, True):
        fused = assert_half_precision_error_within_eager_error(_fused.overlap_focal_sums, logits, target, mask,
                                                               per_image=per_image)
        torch.testing.assert_close(fused[0], _fused.overlap_focal_sums(logits, target, mask, per_image=per_image,
                                                                       fused=False), rtol=1e-6, atol=0.0)
        assert torch.isfinite(fused[0]).all() and torch.isfinite(fused[1]).all()
        assert fused[1].dtype == torch.float16
    if case == "all-ignored":
        assert not fused[1].any()


def test_triton_nan_logit_stays_nan():
    logits, target, _ = make_inputs((1, 2, 9))
    logits[0, 1, 4] = math.nan
    for fn in FUNCTIONS.values():
        out = fn(logits, target, fused=True)
        eager = fn(logits, target, fused=False)
        assert torch.equal(out.isnan(), eager.isnan()) and out[..., 1].isnan().any() and not out[..., 0].isnan().any()


def _hybrid(x, t, mask, **options):
    return _fused.overlap_focal_sums(x, t, mask, fused=True, **options)


@pytest.mark.parametrize("options", [{"gamma": 1.5, "alpha": 0.25}, {"gamma": 0.5, "reduced_threshold": 0.6},
                                     {"gamma": 2.0, "alpha": "per-class", "per_image": True}], ids=str)
def test_triton_gradcheck_and_gradgradcheck_float64(options):
    logits, target, mask = make_inputs((1, 2, 5), dtype=torch.float64, scale=2.0, valid="pixel", soft=True, seed=5)
    options = _options(options, 2)
    x = logits.requires_grad_()
    t = target.clamp(0.05, 0.95).requires_grad_()  # no kink of min/max at the perturbed points
    tol = {"eps": 1e-6, "atol": 1e-7, "rtol": 1e-4, "fast_mode": True}  # a random projection of the Jacobian: few calls
    assert torch.autograd.gradcheck(lambda x, t: _hybrid(x, t, None, **options), (x, t), **tol)
    masked = (t * mask).detach()  # 0 at ignored pixels (the contract): a kink in t there, so only x varies
    assert torch.autograd.gradcheck(lambda x: _hybrid(x, masked, mask, **options), (x,), **tol)
    assert torch.autograd.gradgradcheck(lambda x: _hybrid(x, masked, mask, **options), (x,), **tol)


def test_triton_create_graph_gradient_equals_kernel_gradient():
    logits, target, mask = make_inputs((2, 2, 37), valid="pixel", soft=True)
    x = logits.requires_grad_()
    out = _hybrid(x, target, mask, gamma=2.0, alpha=0.25)
    weights = torch.rand(out.shape, generator=torch.Generator().manual_seed(2)).to(out)
    kernel, = torch.autograd.grad((out * weights).sum(), x, retain_graph=True)
    graph, = torch.autograd.grad((out * weights).sum(), x, create_graph=True)
    assert graph.requires_grad and relative(graph.detach(), kernel) <= 1e-6


def test_triton_custom_ops_pass_opcheck():
    logits, target, mask = make_inputs((1, 2, 5), valid="pixel", soft=True)
    alpha = torch.tensor([0.3, 0.6], device=DEVICE)
    args = (logits.requires_grad_(), target, mask, alpha, True, True, 1.5, None, 0.5)
    torch.library.opcheck(torch.ops.stableloss.sigmoid_sums.default, args)
    grad = torch.randn(5, 1, 2, device=DEVICE)
    backward_args = (grad, logits.detach(), target, mask, alpha, True, True, 1.5, None, 0.5, True, True)
    torch.library.opcheck(torch.ops.stableloss.sigmoid_sums_backward.default, backward_args)


def _dice_focal(x, t, mask):
    tp, fp, fn, focal, count = _fused.overlap_focal_sums(x, t, mask, gamma=2.0, fused=True)
    return ((fp + fn) / (2 * tp + fp + fn)).mean() + (focal / count).mean()


def test_triton_compile_fullgraph_and_func_grad_over_the_custom_op():
    logits, target, mask = make_inputs((2, 1, 6, 5), valid="pixel")
    x = logits.requires_grad_()
    eager = _dice_focal(x, target, mask)
    eager_grad, = torch.autograd.grad(eager, x)
    compiled = torch.compile(_dice_focal, fullgraph=True, backend="aot_eager")
    value = compiled(x, target, mask)
    grad, = torch.autograd.grad(value, x)
    torch.testing.assert_close(value, eager, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-9)
    func_grad = torch.func.grad(_dice_focal)(logits.detach(), target, mask)
    torch.testing.assert_close(func_grad, eager_grad, rtol=1e-6, atol=1e-9)


COMPILE_SCRIPT = r"""
import json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from stableloss._fused import _kernels as K
assert not K.INTERPRETED
ints = {"C", "S", "chunk", "parts", "rows", "sxn", "sxc", "sxs", "stn", "stc", "sts", "svn", "svc", "svs"}
def signature(fn, pointers, constexprs):
    return {a: pointers.get(a) or ("i32" if a in ints else "fp32") for a in fn.arg_names if a not in constexprs}
report = []
for x, acc, flags in json.loads(sys.argv[1]):
    ptrs = dict(x_ptr=f"*{x}", t_ptr=f"*{acc}", v_ptr="*u8", a_ptr=f"*{acc}", out_ptr=f"*{acc}", g_ptr=f"*{acc}",
                gx_ptr=f"*{x}", gt_ptr=f"*{acc}")
    for fn, extra in ((K._forward_kernel, {}), (K._backward_kernel, {"WANT_X": True, "WANT_T": True})):
        constexprs = dict(flags, BLOCK=1024, **extra)
        src = ASTSource(fn=fn, signature=signature(fn, ptrs, constexprs), constexprs=constexprs)
        ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm["ptx"]
        report.append((fn.__name__, x, "lg2.approx" in ptx))
print(json.dumps(report))
"""

COMPILED_VARIANTS = [  # logits, accumulator, flags: together they reach every constexpr branch
    ("fp16", "fp32", {"HAS_VALID": True, "OVERLAP": True, "FOCAL": True, "ALPHA": 1, "GAMMA": 2, "THRESHOLD": False}),
    ("bf16", "fp32", {"HAS_VALID": False, "OVERLAP": True, "FOCAL": False, "ALPHA": 0, "GAMMA": 0, "THRESHOLD": False}),
    ("fp32", "fp32", {"HAS_VALID": True, "OVERLAP": False, "FOCAL": True, "ALPHA": 2, "GAMMA": 4, "THRESHOLD": True}),
    ("fp64", "fp64", {"HAS_VALID": True, "OVERLAP": True, "FOCAL": True, "ALPHA": 1, "GAMMA": 3, "THRESHOLD": True}),
    ("fp32", "fp32", {"HAS_VALID": False, "OVERLAP": False, "FOCAL": True, "ALPHA": 0, "GAMMA": 1, "THRESHOLD": False}),
]


@pytest.mark.slow
def test_triton_kernels_compile_for_cuda_sm90():
    """The compiled (libdevice) path, which the interpreter does not run, builds PTX for an H100/H200 without a GPU."""
    import json
    import os
    import subprocess
    import sys

    backends = pytest.importorskip("triton.backends")
    if "nvidia" not in getattr(backends, "backends", {}):
        pytest.skip("Triton has no NVIDIA backend here")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT, json.dumps(COMPILED_VARIANTS)], capture_output=True,
                          text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report) == 2 * len(COMPILED_VARIANTS)
    assert not any(approx_log for _, _, approx_log in report)  # accurate libdevice logs, not lg2.approx


E2E_IDS = ("dice-0", "dice-3", "tversky-1", "jaccard-0", "focal-1", "focal-3", "logcosh-0", "seed-0")


def _e2e_cases():
    from tests.registry import cases

    all_cases, ids = cases()
    return [case for case, name in zip(all_cases, ids, strict=False) if name in E2E_IDS], [i for i in ids if i in E2E_IDS]


E2E_CASES, E2E_NAMES = _e2e_cases()


def _loss_and_grad(call, logits, target, monkeypatch, setting):
    """Loss and gradient with ``STABLELOSS_FUSED=setting``, checking which path ran (the unfused run
    takes the general focal path, the kernels' formula: see :func:`run`)."""
    from stableloss._fused import _launch

    launches = []
    forward = _launch.forward
    monkeypatch.setattr(_launch, "forward", lambda *args, **kw: launches.append(1) or forward(*args, **kw))
    monkeypatch.setenv(_fused.ENV_VAR, setting)
    hard_label_sign = _sigmoid_focal.hard_label_sign
    monkeypatch.setattr(_sigmoid_focal, "hard_label_sign", lambda *args: None)
    x = logits.detach().clone().requires_grad_()
    loss = call(x, target)
    loss.backward()
    monkeypatch.setattr(_launch, "forward", forward)
    monkeypatch.setattr(_sigmoid_focal, "hard_label_sign", hard_label_sign)
    assert bool(launches) == (setting == "1")
    return loss.detach(), x.grad


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("info,options", E2E_CASES, ids=E2E_NAMES)
def test_triton_losses_end_to_end_match_eager(info, options, mode, monkeypatch):
    """The public losses with STABLELOSS_FUSED=1 (their sigmoid sums fused) against STABLELOSS_FUSED=0."""
    from tests.inputs import make_case

    logits, target = make_case(mode, seed=7, spatial=(5, 6), batch=2)
    logits, target = logits.to(DEVICE), target.to(DEVICE)
    def call(x, t):
        return info.call(x, t, mode, **options)
    fused = _loss_and_grad(call, logits, target, monkeypatch, "1")
    eager = _loss_and_grad(call, logits, target, monkeypatch, "0")
    torch.testing.assert_close(fused[0], eager[0], rtol=1e-6, atol=1e-7)
    assert relative(fused[1], eager[1]) <= 1e-6


@pytest.mark.parametrize("name", ["dice_loss", "focal_loss", "boundary_aware_loss"])
def test_triton_losses_with_ignore_index_and_fp16_infinite_logits_end_to_end(name, monkeypatch):
    import stableloss

    gen = torch.Generator().manual_seed(8)
    target = (torch.rand(2, 1, 6, 7, generator=gen) > 0.5).float()
    target[0, 0, :2] = -1  # ignore_index
    logits = (torch.randn(2, 1, 6, 7, generator=gen) * 4e4).half()  # ~30% overflow to +-inf
    logits, target = logits.to(DEVICE), target.to(DEVICE)
    options = {"dice_options": {"ignore_index": -1}, "focal_options": {"ignore_index": -1}, "boundary": None} if (
        name.startswith("boundary")) else {"ignore_index": -1}
    def call(x, t):
        return getattr(stableloss, name)(x, t, mode="binary", **options)
    fused = _loss_and_grad(call, logits, target, monkeypatch, "1")
    eager = _loss_and_grad(call, logits, target, monkeypatch, "0")
    assert torch.isinf(logits).any() and torch.isfinite(fused[0]) and torch.isfinite(fused[1]).all()
    torch.testing.assert_close(fused[0], eager[0], rtol=1e-6, atol=1e-7)
    assert not fused[1][0, 0, :2].any()  # ignored pixels get no gradient


@pytest.mark.slow
def test_triton_bench_speed_cuda_rows_run_on_cpu(tmp_path):
    """bench/speed.py's CUDA comparison (fused sources, compiled smp, U-Net step) runs end to end on CPU."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("segmentation_models_pytorch")
    root = Path(__file__).resolve().parents[1]
    sources = "stableloss-eager,stableloss-fused,fused-1read,smp,smp-compiled"
    command = [sys.executable, str(root / "bench" / "speed.py"), "--device", "cpu", "--shape", "2x1x32x32",
               "--precisions", "float32", "--losses", "dice,hybrid", "--sources", sources,
               "--compile-backend", "aot_eager", "--unet", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)]
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=root, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "speed.json").read_text())["rows"]
    loss_rows = {row["impl"]: row for row in rows if "table" not in row}
    step_rows = {row["impl"]: row for row in rows if row.get("table") == "unet_step"}
    expected = {f"{source}:{loss}" for source in sources.split(",") for loss in ("dice", "hybrid")}
    expected.discard("fused-1read:dice")
    assert expected <= set(loss_rows) and expected <= set(step_rows)
    assert all(row["finite"] and row["x_floor"] > 0 and row["peak_MiB"] > 0 for row in loss_rows.values())
    assert all(row["step_ms"] > 0 and row["loss_share"] < 1 for row in step_rows.values())


def test_triton_tiny_counts_keep_float32_relative_precision_near_a_perfect_prediction():
    """FN and FP of a near-perfect prediction are sums of terms near 1e-13; focal's of terms near 1e-40."""
    target = (torch.rand(2, 1, 50, generator=torch.Generator().manual_seed(9)) > 0.5).double()
    logits = (torch.where(target > 0, 30.0, -30.0) + torch.linspace(-1, 1, 50, dtype=torch.float64)).float().double()
    exact = _fused.overlap_focal_sums(logits, target, gamma=2.0, fused=False)  # float64, the same rounded logits
    fused = _fused.overlap_focal_sums(logits.float().to(DEVICE), target.float().to(DEVICE), gamma=2.0, fused=True)
    assert 0 < exact[1].item() < 1e-10 and 0 < exact[3].item() < 1e-30
    torch.testing.assert_close(fused.cpu().double(), exact, rtol=1e-6, atol=0.0)


def test_triton_strided_inputs_match_eager():
    """Channels-last logits and a transposed target are read through their strides, not copied."""
    logits, target, mask = make_inputs((2, 3, 40), valid="pixel", soft=True, seed=10)
    logits = logits.transpose(1, 2).contiguous().transpose(1, 2)  # strides (S C, 1, C)
    target = target.transpose(1, 2).contiguous().transpose(1, 2)
    assert not logits.is_contiguous() and not target.is_contiguous()
    assert_matches_eager(_fused.overlap_focal_sums, logits, target, mask, target_grad=True, gamma=2.0, alpha=0.25)


INEXACT_OPTIONS = [  # gamma, alpha, reduced_threshold: gamma and alpha are not float32 numbers
    {"gamma": 1.7, "alpha": 0.3},
    {"gamma": 1 / 3, "alpha": 1 / 3},
    {"gamma": 2 / 3, "reduced_threshold": 0.3},  # gamma also reaches the kernel in threshold ** -gamma
    {"gamma": 2.2, "alpha": (1 / 3, 0.7)},  # a float64 per-class alpha tensor
]


@pytest.mark.parametrize("options", INEXACT_OPTIONS, ids=str)
@pytest.mark.parametrize("name", ["focal", "hybrid"])
def test_triton_float64_gamma_and_alpha_not_exact_in_float32_match_the_float64_reference(name, options):
    """Float64 logits are summed in float64, with gamma and alpha at (nearly) float64 precision: the
    kernels rebuild them from two float32 halves (48 bits); a float32 cast would err by about 1e-8."""
    from tests.reference import focal_reference

    alpha = options.get("alpha")
    inexact = [options["gamma"], *((alpha,) if isinstance(alpha, float) else alpha or ())]
    assert all(float(torch.tensor(value, dtype=torch.float32)) != value for value in inexact)
    logits, target, mask = make_inputs((2, 2, 41), dtype=torch.float64, scale=4.0, soft=True, valid="class", seed=11)
    fused_alpha = torch.tensor(alpha, dtype=torch.float64, device=DEVICE) if isinstance(alpha, tuple) else alpha
    kw = {"gamma": options["gamma"], "alpha": fused_alpha, "reduced_threshold": options.get("reduced_threshold")}
    x = logits.detach().clone().requires_grad_()
    sums = FUNCTIONS[name](x, target, mask, fused=True, **kw)
    focal = sums[3 if name == "hybrid" else 0]
    assert focal.dtype == torch.float64
    weights = torch.tensor([0.8, -1.3], dtype=torch.float64, device=DEVICE)
    kernel_grad, = torch.autograd.grad((focal * weights).sum(), x, retain_graph=True)
    graph_grad, = torch.autograd.grad((focal * weights).sum(), x, create_graph=True)  # the differentiable backward
    x_ref = logits.detach().cpu().clone().requires_grad_()
    labels = torch.where(mask.cpu(), target.cpu(), -1.0)  # -1: ignored
    per_element = focal_reference(x_ref, labels, mode="multilabel", gamma=options["gamma"], alpha=alpha, ignore_index=-1,
                                  reduced_threshold=options.get("reduced_threshold"), reduction="none")
    expected = per_element.sum(dim=(0, 2))
    expected_grad, = torch.autograd.grad((expected * weights.cpu()).sum(), x_ref)
    assert relative(focal.detach().cpu(), expected.detach()) <= 1e-12  # float32 gamma or alpha: about 1e-8
    assert relative(kernel_grad.cpu(), expected_grad) <= 1e-12
    assert relative(graph_grad.detach().cpu(), expected_grad) <= 1e-12
