"""The fused kernels as ``torch.library`` custom ops, with their fake (meta) kernels and autograd.

``stableloss::sigmoid_sums`` returns ``(K, N, C)`` per-image sums of the enabled quantities (``K = 3``
for the overlap counts TP, FP, FN; ``2`` for the focal loss sum and the count of valid elements;
``5`` for both, in that order). ``stableloss::sigmoid_sums_backward`` is its backward pass. Both
launch Triton kernels (:mod:`stableloss._fused._launch`, imported on first use); registering them
as custom ops lets ``torch.compile`` (``fullgraph=True``), ``torch.func`` and ``torch.library.opcheck``
treat them as single opaque operations.

The autograd formula calls the backward op when the gradient is only needed as numbers; under
``create_graph=True`` (grad mode enabled inside the backward) it computes the same gradient with
differentiable torch operations (:func:`stableloss._fused._differentiable.sums_vjp`), so that second
derivatives are right rather than silently missing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stableloss._activation import compute_dtype
from stableloss._fused._differentiable import sums_vjp


def _rows(overlap: bool, focal: bool) -> int:
    return 3 * int(overlap) + 2 * int(focal)


@torch.library.custom_op("stableloss::sigmoid_sums", mutates_args=())
def sigmoid_sums(
    logits: Tensor,
    target: Tensor,
    valid: Tensor | None,
    alpha: Tensor | None,
    overlap: bool,
    focal: bool,
    gamma: float,
    alpha_scalar: float | None,
    reduced_threshold: float | None,
) -> Tensor:
    """Per-image sums ``(K, N, C)``; see the module docstring and :mod:`stableloss._fused._kernels`."""
    from stableloss._fused import _launch

    return _launch.forward(logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar, reduced_threshold,
                            acc=compute_dtype(logits.dtype))


@sigmoid_sums.register_fake
def _sigmoid_sums_fake(logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar, reduced_threshold):
    shape = (_rows(overlap, focal), logits.shape[0], logits.shape[1])
    return logits.new_empty(shape, dtype=compute_dtype(logits.dtype))


@torch.library.custom_op("stableloss::sigmoid_sums_backward", mutates_args=())
def sigmoid_sums_backward(
    grad: Tensor,
    logits: Tensor,
    target: Tensor,
    valid: Tensor | None,
    alpha: Tensor | None,
    overlap: bool,
    focal: bool,
    gamma: float,
    alpha_scalar: float | None,
    reduced_threshold: float | None,
    want_input: bool,
    want_target: bool,
) -> tuple[Tensor, Tensor]:
    """``(grad_logits, grad_target)``; each is an empty tensor when not wanted."""
    from stableloss._fused import _launch

    return _launch.backward(grad.to(compute_dtype(logits.dtype)), logits, target, valid, alpha, overlap, focal, gamma,
                             alpha_scalar, reduced_threshold, want_input, want_target)


@sigmoid_sums_backward.register_fake
def _sigmoid_sums_backward_fake(grad, logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar,
                                reduced_threshold, want_input, want_target):
    grad_input = logits.new_empty(logits.shape if want_input else (0,))
    grad_target = target.new_empty(logits.shape if want_target else (0,))
    return grad_input, grad_target


def _setup_context(ctx, inputs, output) -> None:
    logits, target, valid, alpha, *options = inputs
    ctx.save_for_backward(logits, target, valid, alpha)
    ctx.options = tuple(options)


def _backward(ctx, grad: Tensor):
    logits, target, valid, alpha = ctx.saved_tensors
    overlap, focal, gamma, alpha_scalar, threshold = ctx.options
    want_input, want_target = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:  # never a silent zero
        raise RuntimeError("stableloss::sigmoid_sums has no gradient for valid or alpha; received alpha (or valid) "
                           "that requires grad. Use the eager path (fused=False) to learn alpha.")
    if torch.is_grad_enabled():  # create_graph=True: a gradient autograd can differentiate again
        grad_input, grad_target = sums_vjp(grad, logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar,
                                           threshold, want_input, want_target)
    else:
        grad_input, grad_target = torch.ops.stableloss.sigmoid_sums_backward(
            grad, logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar, threshold, want_input, want_target)
    return (grad_input if want_input else None, grad_target if want_target else None) + (None,) * 7


torch.library.register_autograd("stableloss::sigmoid_sums", _backward, setup_context=_setup_context)


class _SigmoidSums(torch.autograd.Function):
    """The op with the same autograd formula, as a ``Function`` that ``torch.func`` accepts.

    ``register_autograd``'s generated wrapper defines no ``setup_context``, so ``torch.func.grad``
    rejects it (pytorch/pytorch#170834, open in torch 2.14). Calling the op through this
    ``Function`` keeps one formula for both entry points.
    """

    @staticmethod
    def forward(logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar,  # type: ignore[override]
                reduced_threshold):
        return torch.ops.stableloss.sigmoid_sums(logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar,
                                                 reduced_threshold)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)


def fused_sums(logits: Tensor, target: Tensor, valid: Tensor | None, alpha: Tensor | None, overlap: bool,
               focal: bool, gamma: float, alpha_scalar: float | None, reduced_threshold: float | None) -> Tensor:
    """``stableloss::sigmoid_sums`` with autograd (and ``torch.func``) support: ``(K, N, C)`` per-image sums."""
    return _SigmoidSums.apply(logits, target, valid, alpha, overlap, focal, gamma, alpha_scalar, reduced_threshold)
