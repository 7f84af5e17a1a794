"""Triton kernels for the sigmoid path: overlap counts and sigmoid focal sums in one read.

Imported only when Triton is installed (by :mod:`stableloss._fused._launch`). One forward kernel reads the
logits (float16, bfloat16, float32 or float64), the target and the optional validity mask once and
writes, per ``(image, class)`` row and per chunk of the spatial axis, the float32 (float64 for
float64 logits) partial sums of up to five quantities:

- ``OVERLAP``: ``TP = sum min(p v, t)``, ``FP = sum max(p v - t, 0)``, ``FN = sum max(q - (1 - t), 0)``
  with ``p = sigmoid(x)``, ``q = sigmoid(-x)`` and ``v`` the validity mask (the semantics of
  ``_overlap._OverlapSums``);
- ``FOCAL``: ``sum w v (1 - p_t)^gamma ce`` and the count ``sum v`` (``_sigmoid_focal``).

The partials are added by torch afterwards (a deterministic order; no atomics). The backward
kernel reads the same inputs once more and writes the gradient with respect to the logits (and,
optionally, the target) for per-row incoming gradients; nothing input-sized is kept between the
passes. Writing the focal derivative during the forward would need an input-sized float32 buffer
and move more bytes (4 written + 4 read) than reading the logits and target again.

Note:
    Elementary functions come from libdevice (``expf``, ``log1pf``, ``expm1f``, ``powf``: within
    2 ulp, like torch's CUDA kernels) when compiled, because Triton's ``tl.exp`` and ``tl.log`` use
    the approximate ``ex2.approx``/``lg2.approx`` instructions. libdevice does not exist under
    ``TRITON_INTERPRET=1``; there the same functions are computed in float64 from ``exp``/``log``
    (numpy) with Kahan's ``log1p``/``expm1`` formulations, then rounded.
"""

from __future__ import annotations

import triton  # type: ignore[import]
import triton.language as tl  # type: ignore[import]

LIMIT = tl.constexpr(65504.0)  # stableloss._activation.LOGIT_LIMIT, as a constant the kernels can read
GAMMA_ZERO, GAMMA_ONE, GAMMA_TWO, GAMMA_ABOVE_ONE, GAMMA_BELOW_ONE = 0, 1, 2, 3, 4  # the GAMMA constexpr
ALPHA_NONE, ALPHA_SCALAR, ALPHA_PER_CLASS = 0, 1, 2  # the ALPHA constexpr


def interpreted() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``), read as Triton reads it."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    import os

    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


INTERPRETED = interpreted()  # fixed when this module is imported, as ``triton.jit`` fixes it


def _helper(fn):
    """``triton.jit`` for device functions; under the interpreter the plain function (same code), because
    the interpreter re-patches ``triton.language`` on every call of a jitted helper (seconds per launch)."""
    return fn if INTERPRETED else triton.jit(fn)


if INTERPRETED:

    @_helper
    def _exp(x):
        return tl.exp(x.to(tl.float64)).to(x.dtype)

    @_helper
    def _log1p(x):  # x >= 0 here; Goldberg: log(1 + x) x / ((1 + x) - 1) is exact to a few ulp
        w = x.to(tl.float64)
        one = w + 1.0
        tiny = one == 1.0
        return tl.where(tiny, w, tl.log(one) * w / tl.where(tiny, 1.0, one - 1.0)).to(x.dtype)

    @_helper
    def _expm1(x):  # Kahan: (e^x - 1) x / log(e^x)
        w = x.to(tl.float64)
        e = tl.exp(w)
        em1 = e - 1.0
        plain = (e == 1.0) | (em1 == -1.0)
        kahan = em1 * w / tl.log(tl.where(plain, 2.0, e))
        return tl.where(e == 1.0, w, tl.where(em1 == -1.0, -1.0, kahan)).to(x.dtype)

    @_helper
    def _pow(u, y):  # u in [0, 1], y > 0
        w = u.to(tl.float64)
        positive = w > 0.0
        return tl.where(positive, tl.exp(y.to(tl.float64) * tl.log(tl.where(positive, w, 1.0))), 0.0).to(u.dtype)

    @_helper
    def _div(a, b):
        return a / b

    @_helper
    def _total(x):  # tl.sum is a jitted function, unusable here if Triton was imported before TRITON_INTERPRET was set
        return tl.reduce(x, 0, tl.standard._sum_combine)  # the interpreter sums this combine function with numpy

else:
    from triton.language.extra import libdevice  # type: ignore[import]

    @triton.jit
    def _exp(x):
        return libdevice.exp(x)

    @triton.jit
    def _log1p(x):
        return libdevice.log1p(x)

    @triton.jit
    def _expm1(x):
        return libdevice.expm1(x)

    @triton.jit
    def _pow(u, y):
        return libdevice.pow(u, y.to(u.dtype))

    @triton.jit
    def _div(a, b):  # Triton's float32 '/' is div.full (2 ulp); div_rn is IEEE
        if a.dtype == tl.float32:
            return tl.math.div_rn(a, b)
        else:
            return a / b

    @triton.jit
    def _total(x):
        return tl.sum(x, axis=0)


@_helper
def _scalar(hi, lo, ACC: tl.constexpr):
    """A float argument passed as two float32 halves (Triton's float arguments are float32)."""
    return tl.cast(hi, ACC) + tl.cast(lo, ACC)


@_helper
def _elementwise(x, t, v, gamma, scale, cut, FOCAL: tl.constexpr, GAMMA: tl.constexpr, THRESHOLD: tl.constexpr):
    """Per-element quantities shared by both passes (see the module docstring)."""
    nan: tl.constexpr = tl.PropagateNan.ALL
    e = _exp(-tl.abs(x))  # exp(-|x|) in (0, 1]: 0 at +-inf, NaN for NaN
    r = _div(tl.full(e.shape, 1.0, e.dtype), 1.0 + e)
    er = e * r
    positive = x >= 0.0
    p = tl.where(positive, r, er)  # sigmoid(x)
    q = tl.where(positive, er, r)  # sigmoid(-x), not 1 - p
    pv = p * v
    fp_term = tl.maximum(pv - t, 0.0, propagate_nan=nan)
    fn_term = tl.maximum(q - (1.0 - t), 0.0, propagate_nan=nan)
    tp_term = tl.minimum(pv, t, propagate_nan=nan)
    xc = x
    ce = x
    u = x
    factor = x
    if FOCAL:
        xc = tl.minimum(tl.maximum(x, -LIMIT, propagate_nan=nan), LIMIT, propagate_nan=nan)
        # exp(-|xc|) equals e: both are 0 beyond the clamp
        ce = (tl.maximum(xc, 0.0) - t * xc) + _log1p(e)
        u = -_expm1(-ce)
        if GAMMA == 0:
            factor = tl.full(ce.shape, 1.0, ce.dtype)
        elif GAMMA == 1:
            factor = u
        elif GAMMA == 2:
            factor = u * u
        else:
            factor = _pow(u, gamma)
        if THRESHOLD:
            factor = tl.where(ce > cut, 1.0, factor * scale)
    return p, q, pv, tp_term, fp_term, fn_term, xc, ce, u, factor


@_helper
def _load_block(x_ptr, t_ptr, v_ptr, n, c, s, m, sxn, sxc, sxs, stn, stc, sts, svn, svc, svs, alpha, class_alpha,
                ACC: tl.constexpr, HAS_VALID: tl.constexpr, ALPHA: tl.constexpr, BLOCK: tl.constexpr):
    """One block of logits ``x``, target ``t``, validity ``v`` and focal weight ``w`` (alpha times ``v``),
    in the accumulation dtype; both kernels read their inputs through it."""
    x = tl.load(x_ptr + n * sxn + c * sxc + s * sxs, mask=m, other=0.0).to(ACC)
    t = tl.load(t_ptr + n * stn + c * stc + s * sts, mask=m, other=0).to(ACC)
    if HAS_VALID:
        v = tl.load(v_ptr + n * svn + c * svc + s * svs, mask=m, other=0).to(ACC)
    else:
        v = tl.full([BLOCK], 1.0, ACC)
    if ALPHA == 1:
        w = (t * (2.0 * alpha - 1.0) + (1.0 - alpha)) * v
    elif ALPHA == 2:
        w = class_alpha * v
    else:
        w = v
    return x, t, v, w


@triton.jit
def _forward_kernel(
    x_ptr, t_ptr, v_ptr, a_ptr, out_ptr,
    C, S, chunk, parts, rows,
    sxn, sxc, sxs, stn, stc, sts, svn, svc, svs,
    gamma_hi, gamma_lo, alpha_hi, alpha_lo, scale_hi, scale_lo, cut_hi, cut_lo,
    HAS_VALID: tl.constexpr, OVERLAP: tl.constexpr, FOCAL: tl.constexpr, ALPHA: tl.constexpr,
    GAMMA: tl.constexpr, THRESHOLD: tl.constexpr, BLOCK: tl.constexpr,
):
    ACC: tl.constexpr = out_ptr.dtype.element_ty
    row = tl.program_id(0)
    part = tl.program_id(1)
    n = (row // C).to(tl.int64)
    c = (row % C).to(tl.int64)
    gamma = _scalar(gamma_hi, gamma_lo, ACC)
    alpha = _scalar(alpha_hi, alpha_lo, ACC)
    scale = _scalar(scale_hi, scale_lo, ACC)
    cut = _scalar(cut_hi, cut_lo, ACC)
    tp_acc = tl.full([BLOCK], 0.0, ACC)
    fp_acc = tl.full([BLOCK], 0.0, ACC)
    fn_acc = tl.full([BLOCK], 0.0, ACC)
    loss_acc = tl.full([BLOCK], 0.0, ACC)
    count_acc = tl.full([BLOCK], 0.0, ACC)
    class_alpha = alpha
    if ALPHA == 2:
        class_alpha = tl.load(a_ptr + c).to(ACC)
    start = part * chunk
    for offset in tl.range(start, start + chunk, BLOCK):
        s = (offset + tl.arange(0, BLOCK)).to(tl.int64)
        m = s < S
        x, t, v, w = _load_block(x_ptr, t_ptr, v_ptr, n, c, s, m, sxn, sxc, sxs, stn, stc, sts, svn, svc, svs,
                                 alpha, class_alpha, ACC, HAS_VALID, ALPHA, BLOCK)
        _p, _q, _pv, tp_term, fp_term, fn_term, _xc, ce, _u, factor = _elementwise(
            x, t, v, gamma, scale, cut, FOCAL, GAMMA, THRESHOLD)
        if OVERLAP:
            tp_acc += tl.where(m, tp_term, 0.0)
            fp_acc += tl.where(m, fp_term, 0.0)
            fn_acc += tl.where(m, fn_term, 0.0)
        if FOCAL:
            loss_acc += tl.where(m, factor * ce * w, 0.0)
            count_acc += tl.where(m, v, 0.0)
    k = 0
    if OVERLAP:
        tl.store(out_ptr + (0 * rows + row) * parts + part, _total(tp_acc))
        tl.store(out_ptr + (1 * rows + row) * parts + part, _total(fp_acc))
        tl.store(out_ptr + (2 * rows + row) * parts + part, _total(fn_acc))
        k = 3
    if FOCAL:
        tl.store(out_ptr + ((k + 0) * rows + row) * parts + part, _total(loss_acc))
        tl.store(out_ptr + ((k + 1) * rows + row) * parts + part, _total(count_acc))


@_helper
def _focal_slope(u, ce, gamma, scale, cut, GAMMA: tl.constexpr, THRESHOLD: tl.constexpr):
    """``d (factor ce) / d ce``, finite everywhere (``_sigmoid_focal._focal_derivative``)."""
    if GAMMA == 0:
        slope = tl.full(ce.shape, 1.0, ce.dtype)
    elif GAMMA == 4:  # gamma < 1: u^gamma (1 + gamma (1 - u) ce / u), ce / u -> 1 as u -> 0
        nonzero = u > 0.0
        ratio = tl.where(nonzero, _div(ce, tl.where(nonzero, u, 1.0)), 1.0)
        slope = (ratio - ratio * u) * gamma + 1.0
        slope = slope * _pow(u, gamma)
    else:  # u^(gamma - 1) (u + gamma ce (1 - u))
        inner = ce * u * (-gamma) + gamma * ce + u
        if GAMMA == 1:
            slope = inner
        elif GAMMA == 2:
            slope = inner * u
        else:
            slope = inner * _pow(u, gamma - 1.0)
    if THRESHOLD:
        slope = tl.where(ce > cut, 1.0, slope * scale)
    return slope


@triton.jit
def _backward_kernel(
    g_ptr, x_ptr, t_ptr, v_ptr, a_ptr, gx_ptr, gt_ptr,
    C, S, chunk, rows,
    sxn, sxc, sxs, stn, stc, sts, svn, svc, svs,
    gamma_hi, gamma_lo, alpha_hi, alpha_lo, scale_hi, scale_lo, cut_hi, cut_lo,
    HAS_VALID: tl.constexpr, OVERLAP: tl.constexpr, FOCAL: tl.constexpr, ALPHA: tl.constexpr,
    GAMMA: tl.constexpr, THRESHOLD: tl.constexpr, WANT_X: tl.constexpr, WANT_T: tl.constexpr,
    BLOCK: tl.constexpr,
):
    ACC: tl.constexpr = g_ptr.dtype.element_ty
    row = tl.program_id(0)
    part = tl.program_id(1)
    n = (row // C).to(tl.int64)
    c = (row % C).to(tl.int64)
    gamma = _scalar(gamma_hi, gamma_lo, ACC)
    alpha = _scalar(alpha_hi, alpha_lo, ACC)
    scale = _scalar(scale_hi, scale_lo, ACC)
    cut = _scalar(cut_hi, cut_lo, ACC)
    g_tp = tl.load(g_ptr + 0 * rows + row) if OVERLAP else 0.0
    g_fp = tl.load(g_ptr + 1 * rows + row) if OVERLAP else 0.0
    g_fn = tl.load(g_ptr + 2 * rows + row) if OVERLAP else 0.0
    g_fl = tl.load(g_ptr + (3 if OVERLAP else 0) * rows + row) if FOCAL else 0.0
    class_alpha = alpha
    if ALPHA == 2:
        class_alpha = tl.load(a_ptr + c).to(ACC)
    start = part * chunk
    for offset in tl.range(start, start + chunk, BLOCK):
        s = (offset + tl.arange(0, BLOCK)).to(tl.int64)
        m = s < S
        x, t, v, w = _load_block(x_ptr, t_ptr, v_ptr, n, c, s, m, sxn, sxc, sxs, stn, stc, sts, svn, svc, svs,
                                 alpha, class_alpha, ACC, HAS_VALID, ALPHA, BLOCK)
        p, q, pv, _tp_term, fp_term, fn_term, xc, ce, u, factor = _elementwise(
            x, t, v, gamma, scale, cut, FOCAL, GAMMA, THRESHOLD)
        gx = tl.full([BLOCK], 0.0, ACC)
        gt = tl.full([BLOCK], 0.0, ACC)
        if OVERLAP:
            # s = sign(p - t), read from the terms (right even where p rounds to t)
            d = fp_term - fn_term
            sign = tl.where(d > 0.0, 1.0, tl.where(d < 0.0, -1.0, 0.0))
            gx += (sign * ((g_fp + g_fn - g_tp) / 2) + (g_tp + g_fp - g_fn) / 2) * v * pv * q
            gt += (sign * ((g_tp - g_fp - g_fn) / 2) + (g_tp - g_fp + g_fn) / 2) * v
        if FOCAL:
            d_ce = _focal_slope(u, ce, gamma, scale, cut, GAMMA, THRESHOLD) * w * g_fl
            gx += (p * (1.0 - t) - q * t) * d_ce  # sigmoid(x) - t without cancellation at hard labels
            gt += -xc * d_ce
            if ALPHA == 1:
                gt += (2.0 * alpha - 1.0) * v * factor * ce * g_fl
        if WANT_X:
            tl.store(gx_ptr + row.to(tl.int64) * S + s, gx.to(gx_ptr.dtype.element_ty), mask=m)
        if WANT_T:
            tl.store(gt_ptr + row.to(tl.int64) * S + s, gt.to(gt_ptr.dtype.element_ty), mask=m)
