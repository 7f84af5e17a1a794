"""The exact Euclidean distance transform engine: distances to the nearest seed pixel.

Private. :mod:`stableloss.distance` and :mod:`stableloss.surface` build on
:func:`distance_to_seeds`, which takes a boolean ``(B, *S)`` tensor of *seeds* and returns, for every
pixel, the Euclidean distance (in the units of ``spacing``) to the nearest seed of its own image,
``inf`` in an image without seeds.

The transform is separable (Saito and Toriwaki 1994; Meijster et al. 2000; Felzenszwalb and
Huttenlocher 2012): the squared distance is a sum over axes, so it is built one axis at a time.

1. The first axis (the last, contiguous one) is a 1-D nearest-seed search: two cumulative scans
   (the last seed at or before each pixel and the first at or after it), exact in O(n).
2. Every further axis takes the previous squared distances ``f`` along each line and computes
   ``g(x) = min_y f(y) + c (x - y)^2`` with ``c = spacing^2``: the lower envelope of parabolas.

   - ``"envelope"``: Felzenszwalb and Huttenlocher's lower-envelope algorithm, vectorised across
     all lines of the batch: one Python step per position along the axis (O(n) steps of O(lines)
     tensor work; the number of parabolas a step removes differs per line, so each step loops
     until no line removes one, a host synchronisation per iteration). The default for long lines.
   - ``"dense"``: the minimum over every ``y`` at once, in chunks of lines: O(n^2) work per line,
     branch-free, no host synchronisation: the default on CUDA for lines up to 2048 pixels, and on
     the CPU for short lines, the cutoff depending on the number of lines (:func:`default_algorithm`).

Everything is float32. Each candidate value is a sum of squared distances rounded a few times, so
the result is within a few float32 ulps of the exact distance (checked against SciPy's float64 in
tests/test_distance_exact.py). The envelope's intersection abscissae are computed in a local form
whose rounding error is relative to the distance at the intersection, not to ``c n^2``.

References:
    P. F. Felzenszwalb and D. P. Huttenlocher, "Distance transforms of sampled functions",
    Theory of Computing 8, 2012. A. Meijster, J. B. T. M. Roerdink and W. H. Hesselink, "A general
    algorithm for computing distance transforms in linear time", ISMM 2000.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

ALGORITHMS = ("envelope", "dense")

# Elements of the (lines, n, n) candidate tensor that the dense algorithm builds at once.
_DENSE_BUDGET = {"cpu": 1 << 22, "cuda": 1 << 26}
# Longest line for which "dense" (O(n^2) per line, branch-free) is the default on CUDA: on an H200 it
# took 0.02x to 0.43x the envelope's time from 64 to 2048 pixels (`bench/edt_cutoff.py --device cuda`,
# docs/benchmarks.md "Second GPU run"); longer lines were not measured.
_DENSE_MAX_LENGTH_CUDA = 2048
# CPU: "dense" costs ~ d n^2 per line, "envelope" ~ n (a + b L) for L lines (a NumPy step per
# position, a: its fixed cost). Fitted to one-thread timings of both on 2-D and 3-D balls
# (`python bench/edt_cutoff.py --threads 1 --clock thread`: n 16 to 128, L 128 to 8192 lines; the
# fit picks the faster one at all 12 sizes; docs/distance.md): a/b ~ 300 lines, b/d ~ 22 pixels.
_CPU_STEP_LINES = 300
_CPU_DENSE_WIDTH = 22
# Lines the envelope algorithm advances together (one Python step per position for all of them).
_ENVELOPE_LINES = 1 << 14
# Lines per chunk of the elementwise passes on CPU (scan, envelope evaluation): on CPU, large fresh
# temporaries cost more in page faults than in arithmetic.
_CPU_PASS_LINES = 256


def distance_to_seeds(
    seeds: Tensor, spacing: Sequence[float], *, backend: str = "torch", algorithm: str | None = None
) -> Tensor:
    """Euclidean distance from every pixel to the nearest seed of its image, float32.

    Args:
        seeds: Boolean ``(B, *S)``; ``len(spacing)`` trailing dims are spatial.
        spacing: Positive pixel size per spatial dim.
        backend: ``"torch"`` (any device) or ``"scipy"`` (CPU tensors; SciPy must be importable).
        algorithm: For ``"torch"``: see :func:`squared_distance_to_seeds`.

    Returns:
        ``(B, *S)`` float32 on the device of ``seeds``; ``inf`` in images without a seed.
    """
    if seeds.numel() == 0:
        return torch.zeros(seeds.shape, dtype=torch.float32, device=seeds.device)
    if seeds.device.type == "meta":  # shape inference: no data to measure
        return torch.empty(seeds.shape, dtype=torch.float32, device=seeds.device)
    if backend == "scipy":
        return _scipy_distance_to_seeds(seeds, spacing)
    return _distance_op(seeds, [float(h) for h in spacing], algorithm)


def _torch_distance_to_seeds(seeds: Tensor, spacing: list[float], algorithm: str | None) -> Tensor:
    """The torch transform as one opaque operation (:data:`_distance_op`): data-dependent steps inside."""
    if seeds.numel() == 0:
        return torch.zeros(seeds.shape, dtype=torch.float32, device=seeds.device)
    return squared_distance_to_seeds(seeds, spacing, algorithm=algorithm).sqrt_().contiguous()


def _distance_like(seeds: Tensor, spacing: list[float], algorithm: str | None) -> Tensor:
    """The fake kernel: a float32 tensor of the seeds' shape (for the compiler's shape propagation)."""
    return seeds.new_empty(seeds.shape, dtype=torch.float32)


def _distance_vmap(info: object, in_dims: tuple[int | None, ...], seeds: Tensor, spacing: list[float],
                   algorithm: str | None) -> tuple[Tensor, int]:
    """vmap's batching rule: the vmapped dim joins the leading batch dims (spatial dims are the last)."""
    seeds = seeds.movedim(in_dims[0], 0) if in_dims[0] is not None else seeds.expand(info.batch_size, *seeds.shape)  # type: ignore[attr-defined]
    return _distance_op(seeds, spacing, algorithm), 0


_distance_op: Callable[[Tensor, list[float], str | None], Tensor]
if hasattr(torch.library, "custom_op"):  # torch >= 2.4: opaque to torch.compile, batched for torch.func.vmap
    # The envelope algorithm branches on the data (stack pops, skipped positions): as a custom op the
    # compiler sees one operation with a fake kernel, never its Python steps, at every image size.
    _distance_op = torch.library.custom_op("stableloss::distance_to_seeds", mutates_args=())(_torch_distance_to_seeds)
    _distance_op.register_fake(_distance_like)
    torch.library.register_vmap("stableloss::distance_to_seeds", _distance_vmap)
else:  # pragma: no cover - torch < 2.4 runs the transform as plain torch code
    _distance_op = _torch_distance_to_seeds


def _scipy_distance_to_seeds(seeds: Tensor, spacing: Sequence[float]) -> Tensor:
    """One ``scipy.ndimage.distance_transform_edt`` per image (SciPy measures to the nearest zero)."""
    from scipy import ndimage  # type: ignore[import-untyped]

    ndim = len(spacing)
    spatial = seeds.shape[seeds.dim() - ndim:]
    images = seeds.reshape((-1,) + tuple(spatial)).numpy()
    out = np.full(images.shape, np.inf, dtype=np.float32)
    has_seed = images.reshape(images.shape[0], -1).any(axis=1)
    for i in np.flatnonzero(has_seed):
        out[i] = ndimage.distance_transform_edt(~images[i], sampling=spacing)
    return torch.from_numpy(out).reshape(seeds.shape)


def default_algorithm(device: torch.device, n: int, lines: int) -> str:
    """The faster algorithm for ``lines`` lines of ``n`` pixels: ``"dense"`` or ``"envelope"``.

    CUDA: ``"dense"`` up to 2048 pixels (branch-free, no host synchronisation; measured faster there). CPU: ``"dense"`` while
    ``n L < 22 (L + 300)``, the measured crossover (module constants): e.g. up to 73 pixels for 128
    lines, 28 for 1,024, 22 for many; a 3-D volume's lines are many, so its cutoff is lower than a
    2-D image's of the same width.
    """
    if device.type != "cpu":
        return "dense" if n <= _DENSE_MAX_LENGTH_CUDA else "envelope"
    return "dense" if n * lines < _CPU_DENSE_WIDTH * (lines + _CPU_STEP_LINES) else "envelope"


def dense_max_length(device: torch.device, lines: int) -> int:
    """The longest line for which :func:`default_algorithm` picks ``"dense"`` with ``lines`` lines."""
    if device.type != "cpu":
        return _DENSE_MAX_LENGTH_CUDA
    return max(1, -(-_CPU_DENSE_WIDTH * (lines + _CPU_STEP_LINES) // lines) - 1)


def squared_distance_to_seeds(
    seeds: Tensor, spacing: Sequence[float], *, algorithm: str | None = None
) -> Tensor:
    """Squared Euclidean distance from every pixel to the nearest seed of its image.

    Args:
        seeds: Boolean ``(B, *S)``; ``len(spacing)`` trailing dims are spatial, the rest is batch.
        spacing: Positive pixel size per spatial dim.
        algorithm: ``"envelope"`` or ``"dense"`` for the axes after the first; None picks
            :func:`default_algorithm` per axis.

    Returns:
        ``(B, *S)`` float32 on the device of ``seeds``; ``inf`` in images that hold no seed.
    """
    ndim = len(spacing)
    first_spatial = seeds.dim() - ndim
    if seeds.numel() == 0:
        return torch.zeros(seeds.shape, dtype=torch.float32, device=seeds.device)
    dist = _scan_axis(seeds, seeds.dim() - 1, float(spacing[-1]))
    for axis in range(first_spatial, seeds.dim() - 1):
        n = seeds.shape[axis]
        method = algorithm or default_algorithm(seeds.device, n, seeds.numel() // n)
        dist = _along_axis(dist, axis, float(spacing[axis - first_spatial]) ** 2, method)
    return dist


def _scan_axis(seeds: Tensor, axis: int, step: float) -> Tensor:
    """Squared distance to the nearest seed on the same line along ``axis`` (two scans), float32."""
    n = seeds.shape[axis]
    moved = seeds.movedim(axis, -1)
    lines = moved.reshape(-1, n)
    out = torch.empty(lines.shape, dtype=torch.float32, device=seeds.device)
    pos = torch.arange(n, dtype=torch.float32, device=seeds.device)
    chunk = _chunk_lines(seeds.device, lines.shape[0])
    for begin in range(0, lines.shape[0], chunk):
        part = lines[begin:begin + chunk]
        before = torch.cummax(torch.where(part, pos, -float("inf")), dim=1).values
        after = torch.cummin(torch.where(part, pos, float("inf")).flip(1), dim=1).values.flip(1)
        gap = torch.minimum(pos - before, after - pos)
        out[begin:begin + chunk] = gap.mul_(step).square_()
    return out.reshape(moved.shape).movedim(-1, axis)


def _along_axis(f: Tensor, axis: int, c: float, algorithm: str) -> Tensor:
    """``g(x) = min_y f(y) + c (x - y)^2`` along ``axis`` for every line of ``f``.

    The envelope algorithm takes its lines in slabs along the largest other dim (at most
    ``_ENVELOPE_LINES`` lines), which bounds the size of its stacks.
    """
    n = f.shape[axis]
    if n == 1:
        return f
    others = [d for d in range(f.dim()) if d != axis]
    split = max(others, key=lambda d: f.shape[d])
    lines_per_slice = max(1, f.numel() // (n * f.shape[split]))
    limit = _ENVELOPE_LINES if algorithm == "envelope" else f.numel()
    step = max(1, limit // lines_per_slice)
    out = torch.empty_like(f)
    for begin in range(0, f.shape[split], step):
        size = min(step, f.shape[split] - begin)
        part = f.narrow(split, begin, size).movedim(axis, 0)
        lines = part.reshape(n, -1)
        done = _lower_envelope(lines, c) if algorithm == "envelope" else _dense_min(lines, c)
        out.narrow(split, begin, size).copy_(done.reshape(part.shape).movedim(0, axis))
    return out


def _chunk_lines(device: torch.device, num_lines: int) -> int:
    """Lines per chunk of an elementwise pass: small temporaries on CPU, one pass on GPUs."""
    return _CPU_PASS_LINES if device.type == "cpu" else max(num_lines, 1)


def _dense_min(f: Tensor, c: float) -> Tensor:
    """Brute-force lower envelope of ``f`` (``(n, L)``, lines along dim 1), chunked over lines."""
    n, num_lines = f.shape
    pos = torch.arange(n, dtype=f.dtype, device=f.device)
    kernel = c * (pos[:, None] - pos[None, :]).square()  # (x, y)
    budget = _DENSE_BUDGET.get(f.device.type, _DENSE_BUDGET["cuda"])
    chunk = max(1, budget // (n * n))
    lines = f.t()  # (L, n): y along dim 1
    out = torch.empty_like(lines)
    for start in range(0, num_lines, chunk):
        block = lines[start:start + chunk]
        out[start:start + chunk] = (block[:, None, :] + kernel[None]).amin(dim=2)
    return out.t()


def _lower_envelope(f: Tensor, c: float) -> Tensor:
    """Felzenszwalb-Huttenlocher lower envelope of ``f`` (``(n, L)``), vectorised over lines.

    Per line the envelope is a stack of parabola apexes ``v[0..k]`` with boundaries ``z[0..k]``:
    parabola ``v[j]`` is the lowest from ``z[j]`` to ``z[j+1]`` (the last one to the end). Lines
    whose ``f(q)`` is ``inf`` (no seed reachable yet) skip the parabola at ``q``; a line with no
    parabola stays ``inf``. The top of each stack is kept in vectors, so a step that removes no
    parabola reads no stack entry; writes of lines that skip a step go to a spare row ``n``.

    The intersection of the parabolas at ``q`` and ``v < q`` is computed as
    ``(f(q) - f(v)) / (2 c (q - v)) + (q + v) / 2``: near an intersection both ``f`` values are
    below the envelope there, so its rounding error is relative to that distance.
    """
    n, num_lines = f.shape
    device, dtype = f.device, f.dtype
    if device.type == "cpu":
        v_np, z_np, top = _envelope_stacks_numpy(f.contiguous().numpy(), c)
        return _evaluate_chunks(f, torch.from_numpy(v_np), torch.from_numpy(z_np), torch.from_numpy(top), c)
    inf = float("inf")
    v = torch.zeros(n + 1, num_lines, dtype=torch.int32, device=device)
    z = torch.full((n + 1, num_lines), inf, dtype=dtype, device=device)
    k = torch.zeros(num_lines, dtype=torch.long, device=device)  # top of the stack, once started
    v_top = torch.zeros(num_lines, dtype=dtype, device=device)
    z_top = torch.full((num_lines,), inf, dtype=dtype, device=device)
    f_top = torch.zeros(num_lines, dtype=dtype, device=device)
    started = torch.zeros(num_lines, dtype=torch.bool, device=device)  # holds a parabola
    finite = torch.isfinite(f)
    steps = finite.any(dim=1).tolist()
    spare = torch.full((num_lines,), n, dtype=torch.long, device=device)
    for q in range(n):
        if not steps[q]:
            continue
        active, f_q = finite[q], f[q]
        ready = active & started
        while True:
            s = (f_q - f_top).div_((q - v_top).mul_(2 * c)).add_((v_top + q).mul_(0.5))
            pop = (s <= z_top).logical_and_(ready)
            if not bool(pop.any()):
                break
            k -= pop.long()  # never below 0: nothing undercuts z[0] = -inf
            below = k[None]
            v_prev = torch.gather(v, 0, below)[0].long()
            v_top = torch.where(pop, v_prev.to(dtype), v_top)
            z_top = torch.where(pop, torch.gather(z, 0, below)[0], z_top)
            f_top = torch.where(pop, torch.gather(f, 0, v_prev[None])[0], f_top)
        s.masked_fill_(~started, -inf)
        k += ready.long()
        started |= active
        slot = torch.where(active, k, spare)[None]
        v.scatter_(0, slot, q)
        z.scatter_(0, slot, s[None])
        v_top.masked_fill_(active, float(q))
        z_top = torch.where(active, s, z_top)
        f_top = torch.where(active, f_q, f_top)
    return _evaluate_chunks(f, v, z, torch.where(started, k, -1), c)


def _envelope_stacks_numpy(f: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CPU form of :func:`_lower_envelope`'s stack building, the same float32 arithmetic in NumPy.

    On the CPU the per-position steps are bound by the cost of each operation call, which NumPy keeps
    several times lower than torch. A step's pops work only on the lines that popped at the previous
    round (a line that keeps its top parabola cannot pop again in this step), and a position where
    every line has a parabola (a row of seeds in every image: the common case) updates the stack
    tops as whole vectors instead of gathering the active lines.

    Returns:
        ``(v, z, top)``: the apexes and boundaries ``(n + 1, L)``, and each line's top index
        (-1 for a line without a parabola).
    """
    n, num_lines = f.shape
    v = np.zeros((n + 1, num_lines), dtype=np.int32)
    z = np.full((n + 1, num_lines), np.inf, dtype=np.float32)
    v_flat, z_flat = v.reshape(-1), z.reshape(-1)  # entry (j, line) at j * L + line
    k = np.full(num_lines, -1, dtype=np.int64)  # top of each stack; -1 before its first parabola
    v_top = np.zeros(num_lines, dtype=np.float32)
    z_top = np.full(num_lines, np.inf, dtype=np.float32)
    f_top = np.zeros(num_lines, dtype=np.float32)
    finite = np.isfinite(f)
    counts = finite.sum(axis=1)
    every = np.arange(num_lines)
    two_c, half = np.float32(2 * c), np.float32(0.5)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for q in np.flatnonzero(counts):
            f_q, q32 = f[q], np.float32(q)
            full = counts[q] == num_lines
            active = every if full else np.flatnonzero(finite[q])
            lines = active[k[active] >= 0]  # lines with a parabola that q may undercut
            while lines.size:
                apex = v_top[lines]
                s = (f_q[lines] - f_top[lines]) / ((q32 - apex) * two_c) + (apex + q32) * half
                lines = lines[s <= z_top[lines]]
                if not lines.size:
                    break
                below = k[lines] - 1  # never below 0: nothing undercuts z[0] = -inf
                k[lines] = below
                previous = v_flat[below * num_lines + lines]
                v_top[lines] = previous
                z_top[lines] = z_flat[below * num_lines + lines]
                f_top[lines] = f[previous, lines]
            if full:
                s = (f_q - f_top) / ((q32 - v_top) * two_c) + (v_top + q32) * half
                s[k < 0] = -np.inf
                k += 1
                slots = k * num_lines + every
                v_top[:], z_top[:], f_top[:] = q32, s, f_q
            else:
                started = k[active] >= 0
                s = np.full(active.size, -np.inf, dtype=np.float32)
                grown = active[started]
                s[started] = ((f_q[grown] - f_top[grown]) / ((q32 - v_top[grown]) * two_c)
                              + (v_top[grown] + q32) * half)
                k[active] += 1
                slots = k[active] * num_lines + active
                v_top[active], z_top[active], f_top[active] = q32, s, f_q[active]
            v_flat[slots] = q
            z_flat[slots] = s
    return v, z, k


def _evaluate_chunks(f: Tensor, v: Tensor, z: Tensor, top: Tensor, c: float) -> Tensor:
    """:func:`_evaluate` over chunks of lines (small temporaries on the CPU)."""
    out = torch.empty_like(f)
    chunk = _chunk_lines(f.device, f.shape[1])
    for begin in range(0, f.shape[1], chunk):
        cols = slice(begin, begin + chunk)
        out[:, cols] = _evaluate(f[:, cols], v[:, cols], z[:, cols], top[cols], c)
    return out


def _evaluate(f: Tensor, v: Tensor, z: Tensor, k: Tensor, c: float) -> Tensor:
    """Envelope value at every pixel ``x``: on segment ``j``, the largest ``j <= k`` with ``z[j] <= x``.

    Segment starts ``ceil(z[j])`` are nondecreasing in ``j``, so ``j = #{j <= k : ceil(z[j]) <= x} - 1``:
    a histogram of the starts and a cumulative sum along the line.
    """
    n, num_lines = f.shape
    device = f.device
    start = z[:n].clamp(-1.0, float(n)).ceil_().clamp_(min=0).long()
    slots = torch.arange(n, device=device)[:, None]
    start = torch.where(slots <= k, start, n)  # entries past the top are stale
    count = torch.zeros(n + 1, num_lines, dtype=torch.int32, device=device)
    count.scatter_add_(0, start, torch.ones(1, 1, dtype=torch.int32, device=device).expand(n, num_lines))
    seg = count[:n].cumsum(0).sub_(1).clamp_(min=0).long()
    best = torch.gather(v, 0, seg).long()
    xs = torch.arange(n, dtype=f.dtype, device=device)[:, None]
    out = torch.gather(f, 0, best).add_((xs - best.to(f.dtype)).square_().mul_(c))
    return out.masked_fill_(k < 0, float("inf"))
