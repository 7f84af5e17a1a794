"""Boundary emphasis of ``grad_norms.py``: where a loss puts its gradient, near the contour or on far errors.

Both measures use one soft prediction of a blob target (:func:`_common.soft_prediction`, the same
seed as before, so the band ratios stay comparable across commits) and the gradient with respect to
the logits:

1. **Band ratio**, on the soft prediction as it is: mean |gradient| on the *band* (pixels within
   :data:`BAND` = 1.5 px of the target's surface, inside or outside) over the mean elsewhere
   (``ratio``), and over the mean inside the object beyond the band (``ratio_vs_inside``).
2. **Far and near errors**, on the same prediction with two confident false positives set to the
   logit ``+island_logit`` (default :data:`ISLAND_LOGIT`, p = 0.982):

   - the *island*: a square (a cube in 3D) of :data:`ISLAND_SIDE` px in the image corner farthest
     from the target, :data:`ISLAND_MARGIN` px from the border;
   - the *shell*: every background pixel at ``BAND < d <= SHELL_OUTER`` px from the target's surface,
     a ring of over-segmentation just beyond the band.

   Reported: mean |gradient| on the island over the mean on the band (``island_vs_band``), on the
   shell over the band (``shell_vs_band``), and on the island over the shell (``far_vs_near``).
   Both errors have the same logit, so ``far_vs_near`` is 1 for a loss that does not care where an
   error is (Dice, Focal) and grows with the island's distance for a distance-based loss.

``--candidates`` adds ``BoundaryAwareLoss`` configurations as extra rows (:func:`candidate_impls`).
"""

from __future__ import annotations

import itertools
import json
import math
import os

import torch
from torch import Tensor

import _common as C
import stableloss as sl

BAND = 1.5
"""Half-width of the band around the target's surface, in pixels."""
SHELL_OUTER = 3.5
"""The near false-positive shell: background pixels at ``BAND < d <= SHELL_OUTER`` px from the surface."""
ISLAND_SIDE = 8
"""Side of the far false-positive island, in pixels (8x8 = 64 pixels in 2D)."""
ISLAND_MARGIN = 8
"""Distance of the island from the image border, in pixels."""
ISLAND_LOGIT = 4.0
"""Logit of the island's and the shell's pixels: confidently wrong, p = sigmoid(4) = 0.982."""
SEED = 2


def _ratio(num: Tensor, den: Tensor) -> float:
    if den > 0:
        return float(num / den)
    return math.nan if num == 0 or not torch.isfinite(num) else math.inf


def far_errors(logits: Tensor, distance: Tensor, *, logit: float, side: int = ISLAND_SIDE,
               margin: int = ISLAND_MARGIN) -> tuple[Tensor, Tensor, Tensor]:
    """The logits with a far island and a near shell of confident false positives.

    Args:
        logits: ``(N, 1, *S)``.
        distance: The target's signed distance ``(N, 1, *S)`` in pixels, positive inside.
        logit: The value given to the island's and the shell's pixels.

    Returns:
        ``(logits, island, shell)``: the new logits and the two boolean masks.
    """
    spatial = logits.shape[2:]
    if any(s < 2 * margin + side for s in spatial):
        raise SystemExit(f"the far-error probe needs images of at least {2 * margin + side} px per side; received {tuple(spatial)}")
    outside = -distance  # distance to the target's surface, positive outside
    island = torch.zeros_like(logits, dtype=torch.bool)
    corners = list(itertools.product(*[(margin, s - margin - side) for s in spatial]))
    for n in range(logits.shape[0]):
        boxes = [(n, 0) + tuple(slice(c, c + side) for c in corner) for corner in corners]
        nearest, box = max(((float(outside[b].min()), b) for b in boxes), key=lambda pair: pair[0])
        if nearest <= SHELL_OUTER:
            raise SystemExit(f"image {n}: no corner is farther than {SHELL_OUTER} px from the target for the far island")
        island[box] = True
    shell = (outside > BAND) & (outside <= SHELL_OUTER)
    value = torch.tensor(logit, dtype=logits.dtype, device=logits.device)
    return torch.where(island | shell, value, logits), island, shell


def probe_description(distance: Tensor, island: Tensor, shell: Tensor, logit: float) -> dict:
    """Size, logit and distances (px from the target's surface) of the island and the shell."""
    outside = -distance
    n = distance.shape[0]
    return {"band_px": BAND, "island_side_px": ISLAND_SIDE, "island_margin_px": ISLAND_MARGIN, "island_logit": logit,
            "island_pixels_per_image": int(island.sum()) // n,
            "island_distance_mean_px": float(outside[island].mean()), "island_distance_min_px": float(outside[island].min()),
            "shell_px": [BAND, SHELL_OUTER], "shell_logit": logit, "shell_pixels_per_image": int(shell.sum()) // n,
            "shell_distance_mean_px": float(outside[shell].mean())}


def _slice(x: Tensor) -> Tensor:
    """The first image's channel 0; for 3D, its middle slice along the first spatial dim."""
    image = x[0, 0]
    while image.dim() > 2:
        image = image[image.shape[0] // 2]
    return image.detach().float().cpu()


def measure(impls: list[C.Impl], shape, device, progress, *, island_logit: float = ISLAND_LOGIT) -> dict:
    """The boundary-emphasis rows of ``impls`` on a soft prediction of ``shape``.

    Returns:
        A dict with ``rows`` (one per implementation; ``error`` where it raised), ``probe`` (the
        island's and shell's description), ``maps`` (label -> |gradient| / band mean on the far-error
        input, one 2D slice), ``target``, ``island`` and ``shell`` (the same slice) for the figures.
    """
    x, t, dist = C.soft_prediction(shape, generator=torch.Generator().manual_seed(SEED))
    x, t, dist = x.to(device), t.to(device), dist.to(device)
    band, inside = dist.abs() <= BAND, dist > BAND
    errors, island, shell = far_errors(x, dist, logit=island_logit)
    rows, maps = [], {}
    for impl in impls:
        first, grad = C.gradient(impl.fn, x, t, None)
        second, grad_errors = C.gradient(impl.fn, errors, t, None)
        progress.update(2)
        row: dict = {"loss": impl.loss, "source": impl.source}
        if grad is None or grad_errors is None:
            row["error"] = first if grad is None else second
            rows.append(row)
            continue
        g, h = grad.abs().double(), grad_errors.abs().double()
        b, rest, inner = g[band].mean(), g[~band].mean(), g[inside].mean()
        hb, hi, hs = h[band].mean(), h[island].mean(), h[shell].mean()
        row.update(ratio=_ratio(b, rest), ratio_vs_inside=_ratio(b, inner), island_vs_band=_ratio(hi, hb),
                   shell_vs_band=_ratio(hs, hb), far_vs_near=_ratio(hi, hs), boundary_mean=float(b), rest_mean=float(rest),
                   errors_band_mean=float(hb), island_mean=float(hi), shell_mean=float(hs))
        rows.append(row)
        maps[impl.label] = _slice(h / hb) if hb > 0 else _slice(h)
    return {"rows": rows, "probe": probe_description(dist, island, shell, island_logit), "maps": maps,
            "target": _slice(t), "island": _slice(island), "shell": _slice(shell)}


def describe(module: object) -> dict:
    """A combined loss's weights and the repr of each term (for the metadata)."""
    terms = getattr(module, "losses", {})
    return {"weights": getattr(module, "weights", None),
            "terms": {name: f"{type(term).__name__}({term.extra_repr()})" for name, term in terms.items()}}


def _value_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def candidate_name(kwargs: dict[str, object]) -> str:
    """``aware(k=v,...)``: the row name of a ``BoundaryAwareLoss`` keyword set."""
    return "aware(" + ",".join(f"{k}={_value_text(v)}" for k, v in kwargs.items()) + ")"


def candidate_impls(text: str, mode: str = "binary") -> list[C.Impl]:
    """``BoundaryAwareLoss(mode, **kwargs)`` rows from ``--candidates``.

    ``text`` is JSON, or the path of a file holding it: a list of keyword objects
    (``[{"boundary_weight": 1.0}, {"boundary": "hausdorff"}]``, rows named ``aware(k=v,...)``),
    one keyword object, or an object of named keyword objects (``{"w1": {"boundary_weight": 1}}``).
    """
    source = text
    if os.path.isfile(text):
        with open(text) as fh:
            text = fh.read()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--candidates must be JSON (or a JSON file) of BoundaryAwareLoss keywords; "
                         f"received {source[:80]!r}: {err}") from None
    if isinstance(spec, dict) and spec and all(isinstance(v, dict) for v in spec.values()):
        named = {str(k): v for k, v in spec.items()}
    elif isinstance(spec, dict):
        named = {candidate_name(spec): spec}
    elif isinstance(spec, list) and all(isinstance(v, dict) for v in spec):
        named = {candidate_name(v): v for v in spec}
        if len(named) < len(spec):
            raise SystemExit(f"--candidates lists the same keyword set twice; received {spec}")
    else:
        raise SystemExit(f"--candidates must be a JSON list of keyword objects, one object, or an object of named objects; "
                         f"received {type(spec).__name__}: {text[:80]!r}")
    taken = [name for name in named if name in C.ALL_LOSSES]
    if taken:
        raise SystemExit(f"--candidates names must differ from the built-in losses {list(C.ALL_LOSSES)}; received {taken}")
    impls = []
    for name, kwargs in named.items():
        try:
            fn = sl.BoundaryAwareLoss(mode, **kwargs)
        except (TypeError, ValueError) as err:
            raise SystemExit(f"--candidates {name}: BoundaryAwareLoss({mode!r}, **{kwargs}) raised "
                             f"{type(err).__name__}: {err}") from None
        impls.append(C.Impl(name, "stableloss", fn))
    return impls
