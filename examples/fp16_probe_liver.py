"""Which term of the liver hybrid goes non-finite in fp16, at which slice size and batch size.

Under fp16 autocast the U-Net's logits are float16 and the loss sees them as they are. This probe
feeds float16 logits of the shape the trainer produces (``(batch, 1, size, size)``, liver in 10%
of the pixels) to each term of the experiment's hybrid, from segmentation-models-pytorch and from
stableloss, and reports whether loss and gradient are finite. Three regimes: an untrained network
(logits ~ N(0, 1)), a confident one (|logit| = 8, right on 95% of the pixels), and the confident
one with 0.1% of its logits overflowed to +-inf (a float16 activation above 65504).

Plain float16 logits are what the loss sees under CPU autocast and in a ``.half()`` model. CUDA
autocast runs ``exp`` and ``sum`` in float32, which the probe does not imitate.

    python examples/fp16_probe_liver.py
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch

import stableloss

TERMS = {
    "smp Dice": lambda: smp.losses.DiceLoss("binary"),
    "smp Focal": lambda: smp.losses.FocalLoss("binary", gamma=2.0),
    "stableloss Dice": lambda: stableloss.DiceLoss("binary"),
    "stableloss Focal": lambda: stableloss.FocalLoss("binary", gamma=2.0),
}


def logits_for(regime: str, target: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if regime == "untrained":
        x = torch.randn(target.shape, generator=gen)
    else:
        right = torch.rand(target.shape, generator=gen) < 0.95
        x = torch.where(right == (target > 0), 8.0, -8.0)
        if regime == "overflow":
            x = torch.where(torch.rand(target.shape, generator=gen) < 0.001, x * float("inf"), x)
    return x.half().requires_grad_()


def probe(size: int, batch: int, regime: str) -> dict:
    gen = torch.Generator().manual_seed(0)
    target = (torch.rand(batch, 1, size, size, generator=gen) < 0.1).float()
    out = {}
    for name, make in TERMS.items():
        x = logits_for(regime, target, gen)
        loss = make()(x, target)
        loss.backward()
        grad = x.grad
        out[name] = "ok" if bool(torch.isfinite(loss)) and grad is not None and bool(torch.isfinite(grad).all()) else (
            f"loss {float(loss.detach()):.3g}" if not bool(torch.isfinite(loss)) else "grad non-finite")
    return out


def main() -> None:
    print(f"{'regime':10} {'size':>4} {'batch':>5} {'pixels':>8} | " + " | ".join(f"{n:16}" for n in TERMS))
    for regime in ("untrained", "confident", "overflow"):
        for size, batch in ((64, 8), (96, 16), (256, 16), (512, 16)):
            r = probe(size, batch, regime)
            print(f"{regime:10} {size:>4} {batch:>5} {batch * size * size:>8} | " + " | ".join(f"{r[n]:16}" for n in TERMS))


if __name__ == "__main__":
    main()
