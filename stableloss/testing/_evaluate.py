"""Run one loss on one :class:`Example` in one precision context, and judge the result.

A *precision context* says how the logits reach the loss:

============== ================================ =========================================
name           logits passed to the loss         target passed to the loss
============== ================================ =========================================
float32        float32                           as built (float32 or long)
fp16-autocast  rounded to float16, inside        as built
               ``torch.autocast(device, float16)``
bf16-autocast  rounded to bfloat16, inside       as built
               ``torch.autocast(device, bfloat16)``
fp16           float16 tensors, no autocast      float targets cast to float16
bf16           bfloat16 tensors, no autocast     float targets cast to bfloat16
============== ================================ =========================================

Under autocast a network's output is already half precision, so the logits are rounded first: a
float32 logit of 65520 or more becomes ``inf`` in float16, as it would in a real network.

The reference is the same loss on the **same rounded logits** in float64 (or float32 when the loss
raises in float64), or a ``reference=`` formula called in float64, so it measures the error the loss
adds, not the rounding of the input. The relative error is ``|loss - ref| / max(|ref|,
REFERENCE_FLOOR)``; the floor keeps a loss that is essentially 0 (say 1e-9, where float32 rounding of
a sigmoid near 1 is a 100 % error) from failing: below it the check is absolute,
``tolerance * REFERENCE_FLOOR``. A loss that returns a tensor rather than a scalar is averaged (in
float64) first.

The accuracy check is never skipped in silence: when a tolerance is set and the loss is finite, a
reference that raises (in every dtype tried) or is not finite fails the outcome (reason ``ref``),
with the reason in :attr:`Outcome.reference_note`. A reference weaker than float64 (the float32
fallback, or a loss that returns float32 for float64 logits) is used, and said so in the same note.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from stableloss.testing._conventions import check_convention, convert_input, convert_target
from stableloss.testing._data import Example

CONTEXTS: dict[str, tuple[torch.dtype, bool]] = {
    "float32": (torch.float32, False),
    "fp16-autocast": (torch.float16, True),
    "bf16-autocast": (torch.bfloat16, True),
    "fp16": (torch.float16, False),
    "bf16": (torch.bfloat16, False),
}
"""Context name -> (dtype of the logits, inside autocast)."""

DEFAULT_TOLERANCE = 1e-3
"""Largest relative error against the float64 reference that a cell may show."""

REFERENCE_FLOOR = 1e-4
"""Denominator floor of the relative error (see the module docstring)."""

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Outcome:
    """What happened when a loss ran on one example in one context.

    Attributes:
        example: The input.
        context: The context name (a key of :data:`CONTEXTS`).
        value: The loss as a Python float (the mean when the loss returned a tensor), or None.
        grad_nonfinite: Number of non-finite entries of the gradient w.r.t. the logits (or -1 when
            no gradient reached the logits).
        grad_numel: Number of logits.
        reference: The reference loss value (possibly non-finite), or None when it raised.
        reference_dtype: The precision the reference was computed in (``"float64"``, or
            ``"float32"`` for the fallback or a loss that returns float32), or None.
        error: Relative error against the reference, or None when either is not finite.
        tolerance: The largest allowed ``error`` (None: not checked).
        exception: ``"TypeName: message"`` when the loss raised, else None.
        reference_note: Why there is no usable reference, or why it is weaker than float64; None
            when the reference is a finite float64 value.
    """

    example: Example
    context: str
    value: float | None = None
    grad_nonfinite: int = 0
    grad_numel: int = 0
    reference: float | None = None
    reference_dtype: str | None = None
    error: float | None = None
    tolerance: float | None = DEFAULT_TOLERANCE
    exception: str | None = None
    reference_note: str | None = None

    @property
    def loss_finite(self) -> bool:
        return self.exception is None and self.value is not None and math.isfinite(self.value)

    @property
    def grad_finite(self) -> bool:
        """A gradient reached the logits and every entry is finite."""
        return self.exception is None and self.grad_nonfinite == 0

    @property
    def reference_ok(self) -> bool:
        """No tolerance to check, or a finite reference to check it against."""
        return self.tolerance is None or (self.reference is not None and math.isfinite(self.reference))

    @property
    def within_tolerance(self) -> bool:
        """No tolerance to check, or an error that was measured and is at most the tolerance."""
        return self.tolerance is None or (self.error is not None and self.error <= self.tolerance)

    @property
    def ok(self) -> bool:
        """Loss finite, gradient present and finite, and (with a tolerance) within it of a finite reference."""
        return self.loss_finite and self.grad_finite and self.within_tolerance

    @property
    def reason(self) -> str:
        """One word for the table ('' when ok).

        ``raised`` (the loss raised), ``loss`` (non-finite loss), ``grad`` (non-finite gradient),
        ``nograd`` (no gradient reached the logits), ``ref`` (no finite reference to check the
        tolerance against), ``err`` (relative error above the tolerance).
        """
        if self.exception is not None:
            return "raised"
        if not self.loss_finite:
            return "loss"
        if self.grad_nonfinite < 0:
            return "nograd"
        if not self.grad_finite:
            return "grad"
        if not self.reference_ok:
            return "ref"
        return "" if self.within_tolerance else "err"

    def describe(self) -> str:
        """A sentence with everything needed to read and reproduce the outcome."""
        head = f"{self.example.describe()} [{self.context}]: "
        if self.exception is not None:
            return head + f"raised {self.exception}; reproduce with {self.example!r}"
        if self.grad_nonfinite < 0:
            grad = "no gradient reached the logits"
        else:
            grad = f"grad {self.grad_nonfinite} of {self.grad_numel} non-finite"
        ref = "n/a" if self.reference is None else f"{self.reference:.6g} ({self.reference_dtype})"
        if self.reference_note is not None:
            ref += f" [{self.reference_note}]"
        err = "n/a" if self.error is None else f"{self.error:.1e}"
        return head + f"loss {self.value!r}, {grad}, reference {ref}, relative error {err}; reproduce with {self.example!r}"


def context_inputs(logits: Tensor, target: Tensor, context: str) -> tuple[Tensor, Tensor]:
    """The (rounded) logits and the target as the loss receives them in ``context``."""
    dtype, autocast = CONTEXTS[context]
    rounded = logits.to(dtype)
    if not autocast and target.is_floating_point():
        target = target.to(dtype, copy=True)
    else:
        target = target.clone()  # a loss that edits its target in place must not change later contexts
    return rounded, target


def _scalar(out: object) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"the loss must return a tensor; it returned {type(out).__name__}")
    return out.double().mean() if out.numel() != 1 else out.double().reshape(())


def reference_value(
    loss: LossFn, rounded: Tensor, target: Tensor, reference: LossFn | None = None
) -> tuple[float | None, str | None, str | None]:
    """The reference on ``rounded`` logits, without grad: ``(value, dtype, note)``.

    With ``reference=None`` it is ``loss`` itself in float64, else in float32 when float64 raises.
    A given ``reference`` (say a float64 textbook formula) is called in float64 only. ``value`` is
    None when every attempt raised; ``dtype`` is the precision of the result (lower than the
    inputs' when the function returns, say, float32 for float64 logits); ``note`` says why the value
    is missing or not a float64 one, and when it is not finite (None when all is well).
    """
    who = "the loss itself" if reference is None else "the reference"
    fn = loss if reference is None else reference
    problems = []
    for dtype in (torch.float64,) if reference is not None else (torch.float64, torch.float32):
        name = asked = str(dtype).replace("torch.", "")
        x = rounded.to(dtype, copy=True)
        t = target.to(dtype, copy=True) if target.is_floating_point() else target.clone()
        try:
            with torch.no_grad():
                out = fn(x, t)
                value = float(_scalar(out))
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next dtype, and say why
            problems.append(f"{who} raised in {asked}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            continue
        if out.is_floating_point() and torch.finfo(out.dtype).bits < torch.finfo(dtype).bits:
            name = str(out.dtype).replace("torch.", "")
            problems.append(f"{who} returned {name} for {asked} logits")
        if not math.isfinite(value):
            problems.append(f"{who} is {value} on these logits")
        return value, name, "; ".join(problems) or None
    return None, None, "; ".join(problems)


@functools.cache
def autocast_applies(device_type: str, dtype: torch.dtype) -> bool:
    """True when ``torch.autocast(device_type, dtype=dtype)`` really casts a matmul to ``dtype``.

    torch before 2.2 *disables* CPU autocast for float16 with a warning instead of raising; a
    context run that way would check nothing about autocast, so :func:`evaluate` fails it instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autocast(device_type, dtype=dtype):
            a = torch.ones(2, 2, device=device_type)
            return (a @ a).dtype == dtype


def evaluate(
    loss: LossFn,
    example: Example,
    context: str,
    *,
    device: str = "cpu",
    tolerance: float | None = DEFAULT_TOLERANCE,
    reference: LossFn | None = None,
    tensors: tuple[Tensor, Tensor] | None = None,
    references: dict | None = None,
    reference_floor: float | Callable[[Example], float] = REFERENCE_FLOOR,
    input: str = "logits",
    target_layout: str | None = None,
) -> Outcome:
    """Run ``loss`` on ``example`` in ``context``: forward, backward, and compare with the reference.

    Args:
        loss: Any callable ``(logits, target) -> tensor``.
        example: The input spec.
        context: A key of :data:`CONTEXTS`.
        device: ``"cpu"`` or ``"cuda"`` (autocast runs on this device type).
        tolerance: Largest relative error accepted (None: only finiteness is checked).
        reference: Optional float64 reference ``(logits, target) -> loss``; default: ``loss`` itself
            in float64 (see ``reference_value``). With a tolerance, a reference that raises or
            is not finite where the loss is finite fails the outcome (reason ``ref``).
        tensors: ``example.tensors(device)``, when the caller already built them.
        references: A dict the caller keeps per example to reuse references across contexts.
        reference_floor: The magnitude below which the error is judged absolutely (the denominator
            is ``max(|reference|, reference_floor)``), or a function of the example giving it: for a
            loss whose terms have another natural scale than 1 (a boundary loss in pixels sums
            terms of the size of the image, which may cancel to 0), ``REFERENCE_FLOOR`` times it.
        input: What the loss takes: ``"logits"``, or ``"probabilities"`` (the example's logits
            through a float32 sigmoid, or softmax in multiclass mode, before they are rounded; the
            gradient is then taken with respect to them). See ``stableloss.testing._conventions``.
        target_layout: ``None`` (the mode's own), ``"indices"``, ``"indices-channel"`` (``(N, 1, *S)``
            class indices, MONAI's ``to_onehot_y``) or ``"one-hot"``. ``reference`` takes the input
            and target in the same convention as ``loss``.

    Returns:
        An :class:`Outcome`. Exceptions raised by the loss are caught and recorded in it.

    Example:
        >>> from stableloss import DiceLoss
        >>> ex = Example("binary", (2, 1, 16, 16), "blob", "wrong", 1e5)
        >>> evaluate(DiceLoss("binary"), ex, "fp16").ok
        True
    """
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {tuple(CONTEXTS)}; received {context!r}")
    input, target_layout = check_convention(example.mode, input, target_layout)
    logits, target = example.tensors(device) if tensors is None else tensors
    logits = convert_input(logits, example.mode, input)
    target = convert_target(target, example.mode, target_layout, example.shape[1])
    rounded, context_target = context_inputs(logits, target, context)
    dtype, autocast = CONTEXTS[context]
    device_type = torch.device(device).type
    if autocast and not autocast_applies(device_type, dtype):
        return Outcome(example, context, tolerance=tolerance, exception=(
            f"RuntimeError: torch.autocast({device_type!r}, dtype={dtype}) does not cast in torch {torch.__version__} "
            f"(CPU float16 autocast needs torch >= 2.2): context {context!r} was not checked"))
    x = rounded.detach().clone().requires_grad_(True)
    guard = torch.autocast(device_type, dtype=dtype) if autocast else contextlib.nullcontext()
    try:
        with guard:
            value = _scalar(loss(x, context_target))
        if value.requires_grad:  # else no gradient reaches the logits: reported as grad_nonfinite = -1
            value.backward()
    except Exception as exc:  # noqa: BLE001 - a loss that raises is a failing cell, not a crash
        message = " ".join(str(exc).split())[:300]
        return Outcome(example, context, tolerance=tolerance, exception=f"{type(exc).__name__}: {message}")
    grad_nonfinite = -1 if x.grad is None else int((~torch.isfinite(x.grad)).sum())
    key = rounded.dtype
    if references is not None and key in references:
        ref, ref_dtype, note = references[key]
    else:
        ref, ref_dtype, note = reference_value(loss, rounded, target, reference)
        if references is not None:
            references[key] = (ref, ref_dtype, note)
    number = float(value.detach())
    error = None
    if ref is not None and math.isfinite(number) and math.isfinite(ref):
        floor = reference_floor(example) if callable(reference_floor) else reference_floor
        error = abs(number - ref) / max(abs(ref), floor)
    return Outcome(example, context, number, grad_nonfinite, x.numel(), ref, ref_dtype, error, tolerance,
                   reference_note=note)
