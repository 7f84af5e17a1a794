"""The evidence the fused Triton kernels need before automatic mode may select them: one command on a GPU.

The kernels (``stableloss/_fused/``) have run only in Triton's CPU interpreter, which runs one
program at a time and cannot show races or the GPU's math; until a report of this script passes on
a GPU, ``fused=None`` runs the eager path (``stableloss._fused.AUTO_ENABLED = False``). On a machine
with a CUDA GPU and Triton, from the repository root::

    python bench/gpu_evidence.py --out docs/gpu-evidence.json

It runs three parts and writes them all to ``docs/gpu-evidence.json``, with a readable summary
beside it (``docs/gpu-evidence.md``):

1. tests: the CUDA test suite (``pytest -k "(cuda or triton) and not run_on_cpu" tests``, then
   ``pytest -k "cuda and not run_on_cpu" tests`` with ``STABLELOSS_FUSED=1`` so that the generic
   CUDA tests run through the kernels; ``run_on_cpu`` is the interpreter's bench smoke test):
   counts, the failing tests and the tail of the output;
2. agreement: every loss with a kernel (Dice, Jaccard, Tversky, log-cosh Dice, Focal, the Dice +
   Focal hybrid; binary and multilabel) with ``STABLELOSS_FUSED=1`` (fused) and ``0`` (eager)
   against the float64 references of ``tests/reference.py``, values and gradients, on shapes on
   both sides of the kernels' block size (2-D and 3-D, and the real sizes 16x1x512x512 and
   2x1x128^3), dtypes (float64, float32, float16, bfloat16, float16 under autocast) and options
   (``ignore_index``, ``class_weights``, ``per_image``, ``log_loss``, ``smooth``, soft targets,
   overflowing logits, Focal's ``gamma``/``alpha``/``reduced_threshold``/``reduction``). A row
   passes when the fused error against float64 is at most the eager error plus the tolerance of
   :func:`tolerance` (the rule of the interpreter tests; for logits beyond the clamp, whose
   straight-through gradient is not the reference's, the fused gradient is held to the eager one),
   a non-finite fused result fails unless the eager one is non-finite too, and the fused run
   launched the kernels;
3. speed: ``bench/speed.py``'s CUDA rows (eager against fused stableloss, compiled smp, and the
   loss's share of a U-Net step).

The exit status is 0 only when every agreement row and both test runs pass and no part failed to
run. Without a GPU it exits with status 2 and says so. ``--device cpu --interpret --grid tiny``
runs a tiny grid with the kernels in Triton's interpreter (``TRITON_INTERPRET=1``): a check of this
script (``tests/test_bench_smoke.py`` runs it), never evidence.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import _common as C
import _fused_rows
import stableloss as sl
from stableloss import _fused

ROOT = Path(__file__).resolve().parents[1]
NEEDS_CUDA = ("gpu_evidence.py needs a CUDA device (torch.cuda.is_available() is False here{why}); run it on a "
              "machine with an NVIDIA GPU and Triton. To check the script itself on CPU (not evidence): "
              "python bench/gpu_evidence.py --device cpu --interpret --grid tiny --out /tmp/gpu-evidence.json")

DTYPES: dict[str, tuple[torch.dtype, torch.dtype | None]] = {  # name: (logits dtype, autocast dtype)
    "float64": (torch.float64, None),
    "float32": (torch.float32, None),
    "float16": (torch.float16, None),
    "bfloat16": (torch.bfloat16, None),
    "fp16-autocast": (torch.float16, torch.float16),
}
WEIGHTS = (0.2, 1.0, 2.5)  # class_weights, and Focal's per-class alpha rescaled, for the 3 multilabel classes
IGNORE = -1
TEST_RUNS = (  # name, pytest -k expression, STABLELOSS_FUSED
    ("automatic mode", "(cuda or triton) and not run_on_cpu", None),
    (f"{_fused.ENV_VAR}=1", "cuda and not run_on_cpu", "1"),
)
LOSS_NAMES = ("dice", "jaccard", "tversky", "log_cosh_dice", "focal", "hybrid")  # the losses with a kernel (sigmoid modes)


def tolerance(dtype: str, kind: str) -> float:
    """Margin over the eager path's error against float64 that a fused row may have.

    float64: 1e-12. Otherwise the loss value (a float32 sum) 1e-5, and the gradient 1e-5 for float32
    and one unit of rounding (``finfo.eps``, relative to the largest element) for float16 and
    bfloat16, whose gradients are rounded to the logits' dtype, so that a float32 difference of 1e-7
    can round an element the other way.
    """
    if dtype == "float64":
        return 1e-12
    leaf = DTYPES[dtype][0]
    if kind == "grad" and leaf in (torch.float16, torch.bfloat16):
        return float(torch.finfo(leaf).eps)
    return 1e-5


# --- the grid -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossSpec:
    """A loss with a kernel: its public function, the float64 reference, and the options to cross."""

    name: str
    call: Callable[..., Tensor]
    reference: Callable[..., Tensor]
    options: list[dict] = field(default_factory=list)
    multilabel_options: list[dict] = field(default_factory=list)


def _reference_module():
    """``tests/reference.py`` (float64 textbook references, shared with the test suite), loaded by path."""
    spec = importlib.util.spec_from_file_location("stableloss_tests_reference", ROOT / "tests" / "reference.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the float64 references from {ROOT / 'tests' / 'reference.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split_hybrid(options: dict) -> tuple[dict, dict]:
    dice = {k: v for k, v in options.items() if k != "focal"}
    focal = {k: v for k, v in options.get("focal", {}).items()}
    if "ignore_index" in dice:
        focal["ignore_index"] = dice["ignore_index"]
    return dice, focal


def loss_specs() -> list[LossSpec]:
    ref = _reference_module()

    def hybrid(x: Tensor, t: Tensor, *, mode: str, **options: Any) -> Tensor:
        dice, focal = _split_hybrid(options)
        return sl.boundary_aware_loss(x, t, mode=mode, boundary=None, dice_options=dice, focal_options=focal,
                                      dice_weight=C.DICE_WEIGHT, focal_weight=C.FOCAL_WEIGHT)

    def hybrid_reference(x: Tensor, t: Tensor, *, mode: str, soft: bool = False, **options: Any) -> Tensor:
        dice, focal = _split_hybrid(options)
        return (C.DICE_WEIGHT * ref.tversky_reference(x, t, mode=mode, soft=soft, **dice)
                + C.FOCAL_WEIGHT * ref.focal_reference(x, t, mode=mode, **{"gamma": 2.0, **focal}))

    def focal_reference(x: Tensor, t: Tensor, *, mode: str, soft: bool = False, **options: Any) -> Tensor:
        return ref.focal_reference(x, t, mode=mode, **options)

    def jaccard_reference(x: Tensor, t: Tensor, **options: Any) -> Tensor:
        return ref.tversky_reference(x, t, alpha=1.0, beta=1.0, **options)

    region: list[dict] = [{}, {"ignore_index": IGNORE}, {"per_image": True}, {"smooth": 1.0}, {"soft": True}, {"extreme": True}]
    tversky: dict = {"alpha": C.TVERSKY_ALPHA, "beta": C.TVERSKY_BETA}
    return [
        LossSpec("dice", sl.dice_loss, ref.tversky_reference, [*region, {"log_loss": True}],
                 [{"class_weights": WEIGHTS}]),
        LossSpec("jaccard", sl.jaccard_loss, jaccard_reference, [{}, {"ignore_index": IGNORE, "per_image": True}]),
        LossSpec("tversky", sl.tversky_loss, ref.tversky_reference,
                 [tversky, {**tversky, "gamma": 1.5, "ignore_index": IGNORE}, {**tversky, "log_loss": True}]),
        LossSpec("log_cosh_dice", sl.log_cosh_dice_loss, ref.log_cosh_reference,
                 [{}, {"ignore_index": IGNORE}, {"per_image": True, "smooth": 1.0}]),
        LossSpec("focal", sl.focal_loss, focal_reference,
                 [{}, {"gamma": 1.7, "alpha": 0.3}, {"gamma": 0.5}, {"gamma": 0.0, "alpha": 0.25},
                  {"reduced_threshold": 0.5}, {"ignore_index": IGNORE}, {"reduction": "sum"}, {"soft": True},
                  {"extreme": True}],
                 [{"alpha": tuple(w / 3 for w in WEIGHTS)}, {"class_weights": WEIGHTS, "ignore_index": IGNORE}]),
        LossSpec("hybrid", hybrid, hybrid_reference,
                 [{}, {"ignore_index": IGNORE}, {"per_image": True, "focal": {"gamma": 1.7, "alpha": 0.3}}]),
    ]


def grid_shapes(grid: str, interpreted: bool) -> dict[str, list[tuple[int, ...]]]:
    """Shapes per mode: spatial sizes one below, at and above the kernels' block (1024 compiled, 32 under
    the interpreter), 2-D and 3-D, a size split over several programs per row, and (full grid) real sizes."""
    if interpreted:  # block 32
        binary = [(2, 1, 1, 31), (2, 1, 4, 8), (1, 1, 3, 11), (2, 1, 2, 4, 4), (1, 1, 3, 5, 7)]
        multilabel = [(2, 3, 3, 11), (1, 3, 2, 4, 5)]
    else:  # block 1024
        binary = [(2, 1, 31, 33), (2, 1, 32, 32), (2, 1, 5, 205), (3, 1, 8, 8, 16), (2, 1, 9, 11, 13),
                  (4, 1, 97, 101)]
        multilabel = [(2, 3, 31, 33), (2, 3, 5, 205), (4, 3, 97, 101), (1, 3, 9, 11, 13)]
    if grid == "tiny":
        return {"binary": binary[1:2], "multilabel": multilabel[:1]}
    return {"binary": binary, "multilabel": multilabel}


REAL_SHAPES = [(16, 1, 512, 512), (2, 1, 128, 128, 128)]


@dataclass(frozen=True)
class Case:
    loss: LossSpec
    mode: str
    shape: tuple[int, ...]
    dtype: str
    options: dict

    def label(self) -> str:
        return f"{self.loss.name} {self.mode} {'x'.join(map(str, self.shape))} {self.dtype} {_options_text(self.options)}"


def _options_text(options: dict) -> str:
    return json.dumps(options, sort_keys=True, default=str) if options else "{}"


def cases(grid: str, interpreted: bool, dtypes: list[str], losses: list[str] | None = None) -> list[Case]:
    specs = [spec for spec in loss_specs() if losses is None or spec.name in losses]
    shapes = grid_shapes(grid, interpreted)
    out: list[Case] = []
    for spec in specs:
        for mode, mode_shapes in shapes.items():
            options = spec.options + (spec.multilabel_options if mode == "multilabel" else [])
            if grid == "tiny":  # the defaults and the last option (multilabel: a class-weighted one)
                options = [options[0], options[-1]] if mode == "multilabel" else options[:1]
            out.extend(Case(spec, mode, shape, dtype, opts) for shape in mode_shapes for dtype in dtypes for opts in options)
        if grid == "full" and not interpreted:  # real sizes: the defaults and ignore_index
            real_options = [o for o in spec.options if set(o) <= {"ignore_index"}] or spec.options[:1]
            out.extend(Case(spec, "binary", shape, dtype, opts) for shape in REAL_SHAPES for dtype in dtypes
                       for opts in real_options)
    return out


# --- one row ------------------------------------------------------------------------------------------


def make_inputs(case: Case) -> tuple[Tensor, Tensor]:
    """Float64 CPU logits and the float target (``IGNORE`` at ignored pixels) for ``case``."""
    gen = torch.Generator().manual_seed(zlib.crc32(f"{case.mode} {case.shape}".encode()))
    logits = torch.randn(case.shape, generator=gen, dtype=torch.float64) * 4.0
    if case.options.get("extreme"):  # about 30% of the elements overflow float16 to +-inf
        logits = logits * 1e4
    target = torch.rand(case.shape, generator=gen, dtype=torch.float64)
    if not case.options.get("soft"):
        target = (target > 0.6).double()
    ignore = case.options.get("ignore_index")
    if ignore is not None:
        mask_shape = case.shape if case.mode == "multilabel" else (case.shape[0], 1, *case.shape[2:])
        target = torch.where(torch.rand(mask_shape, generator=gen) < 0.05, float(ignore), target)
    return logits, target.float()


@contextlib.contextmanager
def count_launches() -> Iterator[list[int]]:
    """Counts forward launches of the kernels while the block runs."""
    from stableloss._fused import _launch

    launches: list[int] = []
    forward = _launch.forward

    def counted(*args: Any, **kwargs: Any) -> Tensor:
        launches.append(1)
        return forward(*args, **kwargs)

    _launch.forward = counted  # type: ignore[assignment]
    try:
        yield launches
    finally:
        _launch.forward = forward  # type: ignore[assignment]


def _relative(got: Tensor, want: Tensor) -> float:
    """Largest error over the reference's largest magnitude (0 when both are 0; inf for a non-finite result)."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    if not torch.isfinite(got).all():
        return math.inf
    err = float((got - want).abs().max()) if got.numel() else 0.0
    scale = float(want.abs().max()) if want.numel() else 0.0
    return 0.0 if err == 0 else (err / scale if scale > 0 else math.inf)


def _loss_options(case: Case) -> dict:
    return {k: v for k, v in case.options.items() if k not in ("soft", "extreme")}


def run_case(case: Case, device: torch.device) -> dict:
    """Fused, eager and float64 reference for one case: errors, finiteness, pass/fail."""
    logits, target = make_inputs(case)
    leaf_dtype, autocast = DTYPES[case.dtype]
    x = logits.to(device=device, dtype=leaf_dtype)
    rounded = x.detach().cpu().double()  # the reference sees the same rounded logits
    ref_x = rounded.clone().requires_grad_()
    soft = {"soft": True} if case.options.get("soft") else {}
    ref = case.loss.reference(ref_x, target.double(), mode=case.mode, **soft, **_loss_options(case))
    ref_grad, = torch.autograd.grad(ref, ref_x)
    results: dict[str, tuple[Tensor, Tensor | None, int]] = {}
    t = target.to(device)
    for path, setting in (("fused", "1"), ("eager", "0")):
        leaf = x.detach().clone().requires_grad_()
        fn = _fused_rows._with_setting(lambda a, b: case.loss.call(a, b, mode=case.mode, **_loss_options(case)), setting)
        with count_launches() as launches, C.precision_context(device, autocast):
            loss = fn(leaf, t)
        loss.backward()
        results[path] = (loss.detach(), leaf.grad, len(launches))
    row: dict[str, Any] = {"loss": case.loss.name, "mode": case.mode, "shape": "x".join(map(str, case.shape)),
                           "dtype": case.dtype, "options": _options_text(case.options), "reference": float(ref.detach())}
    for path, (value, grad, count) in results.items():
        row[f"{path}_value"] = float(value)
        row[f"{path}_value_err"] = _relative(value, ref.detach())
        row[f"{path}_grad_err"] = _relative(grad, ref_grad) if grad is not None else math.inf
        row[f"{path}_launches"] = count
    fused_grad, eager_grad = results["fused"][1], results["eager"][1]
    row["fused_vs_eager_grad"] = _relative(fused_grad, eager_grad) if fused_grad is not None and eager_grad is not None else math.inf
    problems = []
    if not row["fused_launches"]:
        problems.append("the fused run launched no kernel")
    if row["eager_launches"]:
        problems.append("the eager run launched a kernel")
    for kind in ("value", "grad"):
        fused_err, eager_err = row[f"fused_{kind}_err"], row[f"eager_{kind}_err"]
        limit = eager_err + tolerance(case.dtype, kind)
        if kind == "grad" and case.options.get("extreme"):
            # Beyond the +-65504 clamp the library's gradient is straight-through and the reference's is
            # the textbook one (0): both paths differ from it by design, so the fused one is held to the eager one.
            fused_err, limit = row["fused_vs_eager_grad"], tolerance(case.dtype, kind)
            if not fused_err <= limit:
                problems.append(f"grad: fused differs from eager by {fused_err:.3g} > {limit:.0e} (logits beyond the clamp)")
        elif not fused_err <= limit:  # a NaN fails too
            problems.append(f"{kind}: fused error {fused_err:.3g} > eager error {eager_err:.3g} + {tolerance(case.dtype, kind):.0e}")
    row["passed"] = not problems
    row["why"] = "; ".join(problems)
    return row


def _beyond_clamp(row: dict) -> bool:
    return '"extreme": true' in row["options"]


def _worst(rows: list[dict], key: str) -> float:
    """The largest ``key`` of ``rows`` (inf for a row without it: one that raised), 0 for none."""
    return max((float(r.get(key, math.inf)) for r in rows), default=0.0)


def run_agreement(case_list: list[Case], device: torch.device) -> dict:
    rows = []
    start = time.perf_counter()
    groups: dict[tuple[str, str], list[dict]] = {}
    for index, case in enumerate(case_list, 1):
        try:
            row = run_case(case, device)
        except Exception as err:  # noqa: BLE001 - recorded as a failing row, the run goes on
            row = {"loss": case.loss.name, "mode": case.mode, "shape": "x".join(map(str, case.shape)),
                   "dtype": case.dtype, "options": _options_text(case.options), "passed": False,
                   "why": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"}
        rows.append(row)
        group = groups.setdefault((case.loss.name, case.mode), [])
        group.append(row)
        if not row["passed"]:
            print(f"  FAIL {case.label()}: {row['why']}", flush=True)
        last = index == len(case_list) or (case_list[index].loss.name, case_list[index].mode) != (case.loss.name, case.mode)
        if last:
            failed = sum(not r["passed"] for r in group)
            worst = _worst([r for r in group if not _beyond_clamp(r)], "fused_grad_err")
            print(f"[agreement {index}/{len(case_list)}] {case.loss.name} {case.mode}: {len(group)} rows, {failed} failed, "
                  f"worst fused gradient error {worst:.2e} ({time.perf_counter() - start:.0f} s)", flush=True)
    failed = sum(not r["passed"] for r in rows)
    return {"rows": rows, "total": len(rows), "failed": failed, "passed": len(rows) - failed,
            "rule": "fused error <= eager error + tolerance(dtype), for the loss value and the gradient (errors: largest "
                    "absolute error over the float64 reference's largest magnitude; for logits beyond the +-65504 clamp, "
                    "whose straight-through gradient is not the reference's, the fused gradient's difference from the "
                    "eager one <= tolerance(dtype)); a non-finite fused result fails unless the eager one is non-finite too; "
                    "the fused run launched the kernels",
            "tolerances": {d: {k: tolerance(d, k) for k in ("value", "grad")} for d in DTYPES}}


# --- the test suite ---------------------------------------------------------------------------------


def run_pytest(name: str, paths: list[str], expression: str, fused_setting: str | None, timeout: float) -> dict:
    """One pytest run in a subprocess: counts from its JUnit XML, the failing tests and the output's tail."""
    env = {k: v for k, v in os.environ.items() if k != _fused.ENV_VAR}
    env["CI"] = "true"  # the derandomized Hypothesis profile
    if fused_setting is not None:
        env[_fused.ENV_VAR] = fused_setting
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = os.path.join(tmp, "junit.xml")
        command = [sys.executable, "-m", "pytest", *paths, "-k", expression, "-q", "-rfE", "-p", "no:cacheprovider",
                   f"--junitxml={xml_path}"]
        shown = ("" if fused_setting is None else f"{_fused.ENV_VAR}={fused_setting} ") + shlex.join(["python", *command[1:-1]])
        print(f"[tests] {name}: {shown}", flush=True)
        start = time.perf_counter()
        returncode, output = _stream(command, env, timeout)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        failing: list[str] = []
        if os.path.exists(xml_path):
            root = ET.parse(xml_path).getroot()
            for suite in root.iter("testsuite"):
                for key in counts:
                    counts[key] += int(suite.get(key, 0))
            for case in root.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failing.append(f"{case.get('classname')}::{case.get('name')}")
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    ok = returncode == 0 and passed > 0
    result = {"name": name, "command": shown, "returncode": returncode, "passed": passed, "failed": counts["failures"],
              "errors": counts["errors"], "skipped": counts["skipped"], "failing": failing, "ok": ok,
              "seconds": round(time.perf_counter() - start, 1),
              "tail": output[-6000:] if not ok else "\n".join(output.strip().splitlines()[-3:])}
    print(f"[tests] {name}: {passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
          f"{counts['skipped']} skipped, exit {returncode} ({result['seconds']} s)", flush=True)
    return result


def _stream(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``command`` echoing its output (pytest's progress) as it comes; its exit status (-1: killed after
    ``timeout`` seconds) and the output."""
    lines: list[str] = []
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            print("    " + line, end="", flush=True)
        returncode = proc.wait()
    finally:
        expired = not timer.is_alive()
        timer.cancel()
    if expired and returncode != 0:
        return -1, "".join(lines) + f"\n(killed after {timeout:.0f} s)"
    return returncode, "".join(lines)


# --- speed ------------------------------------------------------------------------------------------


def run_speed(device: torch.device, grid: str, extra: str | None) -> dict:
    """bench/speed.py's CUDA comparison (its rows and metadata), run in this process."""
    import speed

    if extra is not None:
        argv = shlex.split(extra)
    elif grid == "tiny":
        argv = ["--shape", "2x1x32x32", "--precisions", "float32", "--losses", "dice", "--sources",
                "stableloss-eager,stableloss-fused", "--repeats", "1", "--warmup", "0"]
    else:
        argv = ["--sources", "stableloss-eager,stableloss-fused,fused-1read,smp,smp-compiled", "--unet"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--device", device.type, *argv, "--out", tmp]
        print(f"[speed] python bench/speed.py {shlex.join(argv[:-2])}", flush=True)
        try:
            speed.main(argv)
        except BaseException as err:  # noqa: BLE001 - SystemExit from a bad argument included: recorded
            return {"argv": argv[:-2], "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-4000:]}
        data = json.loads(Path(tmp, "speed.json").read_text())
    return {"argv": argv[:-2], "error": None, "rows": data["rows"], "metadata": data["metadata"], "floor": data["floor"]}


# --- the report -------------------------------------------------------------------------------------


def metadata(device: torch.device, args: argparse.Namespace, interpreted: bool) -> dict:
    meta = C.metadata(device)
    triton = sys.modules.get("triton")
    meta["versions"]["triton"] = getattr(triton, "__version__", None)
    meta["cuda"] = torch.version.cuda
    if device.type == "cuda":
        meta["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        meta["multiprocessors"] = torch.cuda.get_device_properties(device).multi_processor_count
    meta.update({"interpreted": interpreted, "grid": args.grid, "auto_enabled": _fused.AUTO_ENABLED,
                 "command": "python " + shlex.join(["bench/gpu_evidence.py", *sys.argv[1:]])})
    return meta


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as the strings "inf", "-inf", "nan" (standard JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dump(report: dict) -> str:
    """The report as standard JSON, indented, with one line per row of the agreement and speed tables."""
    rows: dict[str, str] = {}

    def tokens(table: list[dict]) -> list[str]:
        out = []
        for row in table:
            token = f"@row{len(rows)}@"
            rows[json.dumps(token)] = json.dumps(_finite(row), default=str, allow_nan=False)
            out.append(token)
        return out

    compact = dict(report)
    for part in ("agreement", "speed"):
        if compact.get(part) and "rows" in compact[part]:
            compact[part] = {**compact[part], "rows": tokens(compact[part]["rows"])}
    text = json.dumps(_finite(compact), indent=1, default=str, allow_nan=False)
    for token, row in rows.items():
        text = text.replace(token, row, 1)
    return text + "\n"


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "inf" if math.isinf(v) else f"{v:.2e}" if v and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.3g}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    meta = report["metadata"]
    verdict = report["verdict"]
    lines = ["# GPU evidence for the fused Triton kernels", ""]
    if report["evidence"]:
        lines.append(f"**{verdict}.** Every part ran on a GPU and passed: this report is the evidence for turning "
                     "automatic mode on (`AUTO_ENABLED = True` in `stableloss/_fused/__init__.py`), committed with "
                     "that change.")
    elif meta["device"] == "cpu" or meta["interpreted"]:
        lines.append(f"**{verdict} (smoke run on CPU under Triton's interpreter).** It checks this script, not the "
                     "kernels on a GPU: not evidence.")
    else:
        lines.append(f"**{verdict}.** Not evidence for turning automatic mode on: "
                     + ("a part failed or did not run." if verdict == "FAIL" else "a reduced grid or a skipped part."))
    lines += ["", f"`{meta['command']}` on {meta['device_name']} ({meta['device']}"
              + (f", compute capability {meta['capability']}" if "capability" in meta else "")
              + f"), torch {meta['versions']['torch']}, CUDA {meta['cuda']}, triton {meta['versions']['triton']}, "
              f"stableloss {meta['versions']['stableloss']}, commit {meta['commit']}, {meta['time_utc']}.", ""]
    lines += ["## CUDA test suite", ""]
    if report["tests"] is None:
        lines.append("Skipped (`--skip tests`).")
    else:
        lines.append(_md_table(["run", "command", "passed", "failed", "errors", "skipped", "result"],
                               [[t["name"], f"`{t['command']}`", t["passed"], t["failed"], t["errors"], t["skipped"],
                                 "pass" if t["ok"] else "FAIL"] for t in report["tests"]]))
        for t in report["tests"]:
            if not t["ok"]:
                lines += ["", f"Failing in {t['name']}: " + (", ".join(f"`{f}`" for f in t["failing"]) or "(see the tail)"),
                          "", "```", t["tail"][-3000:], "```"]
    lines += ["", "## Agreement: fused against eager against the float64 reference", ""]
    agreement = report["agreement"]
    if agreement is None:
        lines.append("Skipped (`--skip agreement`).")
    else:
        lines += [f"{agreement['passed']} of {agreement['total']} rows pass. Rule: {agreement['rule']}. Tolerances: "
                  + ", ".join(f"{d} {t['value']:.0e} (value) / {t['grad']:.0e} (gradient)"
                              for d, t in agreement["tolerances"].items()) + ".", ""]
        summary: dict[tuple[str, str], list[dict]] = {}
        for row in agreement["rows"]:
            summary.setdefault((row["loss"], row["dtype"]), []).append(row)
        table: list[list[object]] = []
        for (loss, dtype), rows in summary.items():
            within = [r for r in rows if not _beyond_clamp(r)]
            beyond = [r for r in rows if _beyond_clamp(r)]
            table.append([loss, dtype, len(rows), sum(not r["passed"] for r in rows),
                          *(_worst(rows, k) for k in ("fused_value_err", "eager_value_err")),
                          *(_worst(within, k) for k in ("fused_grad_err", "eager_grad_err")),
                          _worst(beyond, "fused_vs_eager_grad") if beyond else "-"])
        lines.append(_md_table(["loss", "dtype", "rows", "failed", "worst fused value err", "worst eager value err",
                                "worst fused grad err", "worst eager grad err", "beyond the clamp: fused vs eager grad"],
                               table))
        failing = [r for r in agreement["rows"] if not r["passed"]]
        if failing:
            lines += ["", "Failing rows:", "", _md_table(["loss", "mode", "shape", "dtype", "options", "why"],
                                                         [[r["loss"], r["mode"], r["shape"], r["dtype"], r["options"],
                                                           r["why"]] for r in failing])]
    lines += ["", "## Speed rows (bench/speed.py)", ""]
    speed = report["speed"]
    if speed is None:
        lines.append("Skipped (`--skip speed`).")
    elif speed["error"]:
        lines += [f"`python bench/speed.py {shlex.join(speed['argv'])}` failed: {speed['error']}", "", "```",
                  speed["traceback"], "```"]
    else:
        import speed as speed_module

        loss_rows = [r for r in speed["rows"] if "table" not in r]
        step_rows = [r for r in speed["rows"] if r.get("table") == "unet_step"]
        lines += [f"`python bench/speed.py {shlex.join(speed['argv'])}`; floor: {speed['floor']}.", "", "```",
                  C.format_table(loss_rows, speed_module.COLUMNS), "```"]
        if step_rows:
            lines += ["", "U-Net EfficientNet-B0 training step:", "", "```",
                      C.format_table(step_rows, ("shape", "precision", "impl", "step_ms", "loss_share")), "```"]
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="gpu-evidence.json", help="the report (JSON); a .md summary is written beside it")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default); cpu needs --interpret")
    parser.add_argument("--interpret", action="store_true",
                        help="TRITON_INTERPRET=1: the kernels run on CPU tensors in Triton's interpreter (smoke runs)")
    parser.add_argument("--grid", choices=("full", "tiny"), default="full", help="the agreement grid (tiny: a smoke run)")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma list of " + ", ".join(DTYPES))
    parser.add_argument("--losses", default=",".join(LOSS_NAMES), help="comma list of " + ", ".join(LOSS_NAMES))
    parser.add_argument("--skip", default="", help="comma list of parts to leave out: tests, agreement, speed")
    parser.add_argument("--pytest-paths", default="tests", help="what the test runs collect (default: tests)")
    parser.add_argument("--pytest-k", default=None,
                        help="both runs' -k expression instead of " + " and ".join(repr(e) for _, e, _ in TEST_RUNS))
    parser.add_argument("--test-timeout", type=float, default=3600.0, help="seconds per test run")
    parser.add_argument("--speed-args", default=None, help="bench/speed.py arguments instead of the grid's (quoted)")
    args = parser.parse_args(argv)
    unknown = sorted(set(filter(None, args.skip.split(","))) - {"tests", "agreement", "speed"})
    if unknown:
        parser.error(f"--skip must list parts from tests, agreement, speed; received {unknown}")
    for option, value, allowed in (("--dtypes", args.dtypes, list(DTYPES)), ("--losses", args.losses, list(LOSS_NAMES))):
        bad = [v for v in value.split(",") if v not in allowed]
        if bad:
            parser.error(f"{option} must be from {allowed}; received {bad}")
    if args.device == "cpu" and not args.interpret:
        parser.error("--device cpu needs --interpret (the kernels run on CPU tensors only in Triton's interpreter)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are first imported (triton.jit reads it then)
    if args.device == "cuda" and not torch.cuda.is_available():
        why = "" if torch.version.cuda else f": torch {torch.__version__} is a CPU-only build"
        print(NEEDS_CUDA.format(why=why), file=sys.stderr)
        return 2
    if not _fused.triton_installed():
        print("gpu_evidence.py needs Triton (pip install triton) and torch >= 2.4 (torch.library.custom_op); "
              f"received torch {torch.__version__}, Triton {'found' if importlib.util.find_spec('triton') else 'missing'}",
              file=sys.stderr)
        return 2
    from stableloss._fused import _kernels

    interpreted = bool(_kernels.INTERPRETED)
    if args.device == "cpu" and not interpreted:
        print("--interpret did not take effect: the kernels were imported before TRITON_INTERPRET=1 was set",
              file=sys.stderr)
        return 2
    device = torch.device(args.device)
    skip = set(filter(None, args.skip.split(",")))
    meta = metadata(device, args, interpreted)
    print(f"GPU evidence: {meta['device_name']} ({device}{', Triton interpreter' if interpreted else ''}), torch "
          f"{meta['versions']['torch']}, triton {meta['versions']['triton']}, commit {meta['commit']}", flush=True)
    report: dict[str, Any] = {"metadata": meta, "tests": None, "agreement": None, "speed": None}
    if "tests" not in skip:
        paths = args.pytest_paths.split(",")
        report["tests"] = [run_pytest(name, paths, args.pytest_k or expression, setting, args.test_timeout)
                           for name, expression, setting in TEST_RUNS]
    if "agreement" not in skip:
        case_list = cases(args.grid, interpreted, args.dtypes.split(","), args.losses.split(","))
        print(f"[agreement] {len(case_list)} rows: fused and eager against the float64 reference", flush=True)
        report["agreement"] = run_agreement(case_list, device)
    if "speed" not in skip:
        report["speed"] = run_speed(device, args.grid, args.speed_args)
    failed = ((report["tests"] is not None and not all(t["ok"] for t in report["tests"]))
              or (report["agreement"] is not None and report["agreement"]["failed"] > 0)
              or (report["speed"] is not None and report["speed"]["error"] is not None))
    report["verdict"] = "FAIL" if failed else "PASS"
    complete = (args.grid == "full" and not skip and args.pytest_k is None and args.pytest_paths == "tests"
                and args.speed_args is None and args.dtypes == ",".join(DTYPES) and args.losses == ",".join(LOSS_NAMES))
    report["evidence"] = not failed and device.type == "cuda" and not interpreted and complete
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    C.atomic_write(str(out), dump(report))
    summary = out.with_suffix(".md")
    C.atomic_write(str(summary), markdown(report))
    print(f"{report['verdict']}: wrote {out} and {summary}" + ("" if report["evidence"] else " (not evidence: see the summary)"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
