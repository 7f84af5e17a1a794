"""Float64 textbook references, written from the papers' formulas, independently of stableloss.

They share no code with the package: probabilities come straight from ``sigmoid``/``softmax`` in
float64, counts are the textbook ``sum p t``, ``sum p (1 - t)``, ``sum (1 - p) t`` (or, for soft
labels, the semimetric counts of Wang and Blaschko 2023), and focal is ``-(1 - p_t)^gamma log p_t``.
The only shared convention is the documented clamp of logits to +-65504.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIMIT = 65504.0


def _probs(logits, mode, from_logits=True):
    """Float64 probabilities p and their complements 1 - p, the latter not rounded through p."""
    x = logits.double()
    if not from_logits:
        p = x.clamp(0, 1)
        return p, 1 - p
    x = x.clamp(-LIMIT, LIMIT)
    if mode != "multiclass":
        return torch.sigmoid(x), torch.sigmoid(-x)
    p = torch.softmax(x, 1)
    others = torch.stack([p.narrow(1, 0, c).sum(1) + p.narrow(1, c + 1, p.shape[1] - c - 1).sum(1)
                          for c in range(p.shape[1])], dim=1)
    return p, others


def _targets(target, mode, num_classes, ignore_index):
    """(N, C, S) float64 targets and an (N, C or 1, S) validity mask."""
    n = target.shape[0]
    if mode == "multiclass":
        labels = target.reshape(n, -1).long()
        valid = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
        onehot = F.one_hot(torch.where(valid, labels, 0), num_classes).permute(0, 2, 1).double()
        return onehot * valid.unsqueeze(1), valid.unsqueeze(1)
    flat = target.reshape(n, num_classes, -1).double()
    valid = torch.ones_like(flat, dtype=torch.bool) if ignore_index is None else flat != ignore_index
    return torch.where(valid, flat, 0.0), valid


def _reduce_classes(loss, classes, class_weights, reduction):
    weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float64)
    if classes is not None:
        loss = loss[..., list(classes)]
        weights = None if weights is None else weights[list(classes)]
    if weights is not None:
        weights = torch.broadcast_to(weights, loss.shape)
    if reduction == "none":
        return loss if weights is None else loss * weights
    if reduction == "sum":
        return loss.sum() if weights is None else (loss * weights).sum()
    return loss.mean() if weights is None else (loss * weights).sum() / weights.sum()


def tversky_counts(probs, complement, target, per_image, soft):
    dims = (2,) if per_image else (0, 2)
    if soft:
        p_sum, t_sum = probs.sum(dims), target.sum(dims)
        err = (probs - target).abs().sum(dims)
        tp = (p_sum + t_sum - err) / 2
        return tp, p_sum - tp, t_sum - tp
    return (probs * target).sum(dims), (probs * (1 - target)).sum(dims), (complement * target).sum(dims)


def tversky_reference(logits, target, *, mode, alpha=0.5, beta=0.5, gamma=1.0, classes=None, log_loss=False,
                      from_logits=True, smooth=0.0, ignore_index=None, eps=1e-7, class_weights=None,
                      per_image=False, ignore_empty=True, reduction="mean", soft=False, log_cosh=False):
    """Textbook (focal-)Tversky loss in float64 (Dice: alpha = beta = 0.5; Jaccard: 1, 1)."""
    probs, complement = _probs(logits, mode, from_logits)
    n, c = probs.shape[:2]
    probs, complement = probs.reshape(n, c, -1), complement.reshape(n, c, -1)
    onehot, valid = _targets(target, mode, c, ignore_index)
    probs = probs * valid
    tp, fp, fn = tversky_counts(probs, complement, onehot, per_image, soft)
    denominator = (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)
    score = (tp + smooth) / denominator
    # 1 - score, without rounding it through score (float64 too would lose a loss of 1e-15):
    one_minus = torch.where(tp + alpha * fp + beta * fn + smooth >= eps, alpha * fp + beta * fn,
                            denominator - tp - smooth) / denominator
    if log_loss:  # -log(max(score, eps)), as -log1p(-(1 - score)) where score is near 1
        loss = torch.where(score >= eps, -torch.log1p(-one_minus), -math.log(eps))
    else:
        loss = one_minus
    loss = loss.clamp_min(0) ** gamma
    if log_cosh:
        loss = torch.log1p(torch.expm1(loss) ** 2 / (2 * torch.exp(loss)))  # log cosh, as cosh - 1 = (e^x - 1)^2 / 2e^x
    if ignore_empty:
        loss = loss * ((tp + fn) > 0)
    return _reduce_classes(loss, classes, class_weights, reduction)


def focal_reference(logits, target, *, mode, alpha=None, gamma=2.0, ignore_index=None, reduction="mean",
                    normalized=False, reduced_threshold=None, class_weights=None, multiclass_activation="softmax",
                    eps=1e-7):
    """Textbook focal loss in float64: -alpha_t (1 - p_t)^gamma log p_t."""
    x = logits.double().clamp(-LIMIT, LIMIT)
    n, c = x.shape[:2]
    if mode == "multiclass" and multiclass_activation == "softmax":
        labels = target.long()
        valid = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
        safe = torch.where(valid, labels, 0)
        # The documented cap: a pixel costs at most 65504 (the clamp alone would allow 2 * 65504).
        log_pt = torch.log_softmax(x, 1).gather(1, safe.unsqueeze(1)).squeeze(1).clamp_min(-LIMIT)
        factor = _focal_factor(log_pt, gamma, reduced_threshold)
        loss = -factor * log_pt
        if isinstance(alpha, (list, tuple)):
            loss = loss * torch.tensor(alpha, dtype=torch.float64)[safe]
        elif alpha is not None:
            loss = loss * alpha
        loss = loss * valid
        if normalized:
            loss = loss / (factor * valid).sum().clamp_min(eps)
        # class_weights as torch's cross_entropy(weight=...): a pixel weighs its true class's weight.
        pixel_weight = valid.double() if class_weights is None else torch.tensor(class_weights, dtype=torch.float64)[safe] * valid
        loss = loss * pixel_weight
        if reduction == "none":
            return loss
        return loss.sum() if reduction == "sum" else loss.sum() / pixel_weight.sum().clamp_min(1e-300)
    t, valid = _targets(target, mode, c, ignore_index)
    xf = x.reshape(n, c, -1)
    # log p_t for soft labels: -BCE; for hard labels this is log(sigmoid(+-x)).
    log_pt = -((1 - t) * F.softplus(xf) + t * F.softplus(-xf))  # no cancellation for hard labels
    factor = _focal_factor(log_pt, gamma, reduced_threshold)
    loss = -factor * log_pt
    if isinstance(alpha, (list, tuple)):
        loss = loss * torch.tensor(alpha, dtype=torch.float64).view(1, c, 1)
    elif alpha is not None:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    loss = loss * valid
    if normalized:
        loss = loss / (factor * valid).sum((0, 2), keepdim=True).clamp_min(eps)
    weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float64)
    if reduction == "none":
        out = loss if weights is None else loss * weights.view(1, c, 1)
        return out.reshape(logits.shape)
    per_class_sum = loss.sum((0, 2))
    if reduction == "sum":
        return per_class_sum.sum() if weights is None else (per_class_sum * weights).sum()
    count = torch.broadcast_to(valid, loss.shape).sum((0, 2)).clamp_min(1)
    per_class = per_class_sum / count
    return per_class.mean() if weights is None else (per_class * weights).sum() / weights.sum()


def _focal_factor(log_pt, gamma, reduced_threshold):
    one_minus = -torch.expm1(log_pt)
    factor = one_minus**gamma
    if reduced_threshold is not None:
        factor = torch.where(log_pt.exp() < reduced_threshold, torch.ones_like(factor),
                             (one_minus / reduced_threshold) ** gamma)
    return factor


def log_cosh_reference(logits, target, **kwargs):
    """log(cosh(Dice loss)) per class, float64."""
    return tversky_reference(logits, target, log_cosh=True, **kwargs)


def close(actual, expected, rtol, atol):
    """|a - e| <= atol + rtol |e|, elementwise, for tensors or floats."""
    a = torch.as_tensor(actual, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    return bool(((a - e).abs() <= atol + rtol * e.abs()).all())


LOG_COSH_ONE = math.log(math.cosh(1.0))


# --- distance- and contour-based losses (float64, SciPy's exact EDT per image and channel) -------

def _edt(mask, spacing):
    from scipy import ndimage

    return torch.from_numpy(ndimage.distance_transform_edt(mask.numpy(), sampling=spacing)).double()


def signed_map_reference(mask, spacing=None, inside_shift=0.0, no_surface="bound"):
    """Float64 signed maps of a bool (N, C, *S) mask with SciPy: +outside, -(inside - shift)."""
    spatial = mask.shape[2:]
    spacing = [1.0] * len(spatial) if spacing is None else ([float(spacing)] * len(spatial)
                                                            if isinstance(spacing, (int, float)) else list(spacing))
    bound = math.sqrt(sum((s * h) ** 2 for s, h in zip(spatial, spacing, strict=False)))
    out = torch.zeros(mask.shape, dtype=torch.float64)
    for n in range(mask.shape[0]):
        for c in range(mask.shape[1]):
            m = mask[n, c]
            if not m.any() or m.all():
                value = 0.0 if no_surface == "zero" else (bound if not m.any() else inside_shift - bound)
                out[n, c] = value
                continue
            out[n, c] = torch.where(m, inside_shift - _edt(m, spacing), _edt(~m, spacing))
    return out, bound


def _spatial_parts(logits, target, mode, ignore_index):
    """Float64 probabilities p, complements q, one-hot targets (N, C, *S) and validity (N, C|1, *S)."""
    probs, complement = _probs(logits, mode)
    onehot, valid = _targets(target, mode, logits.shape[1], ignore_index)
    shape = tuple(logits.shape)
    onehot = onehot.reshape(shape)
    valid = valid.reshape((shape[0], valid.shape[1]) + shape[2:])
    return probs, complement, onehot, valid


def _class_mean(values, valid):
    dims = (0,) + tuple(range(2, values.dim()))
    kept = torch.broadcast_to(valid, values.shape).double()
    return (values * kept).sum(dims) / kept.sum(dims).clamp_min(1)


def boundary_reference(logits, target, *, mode, spacing=None, normalize=False, inside_shift=0.0, no_surface="bound",
                       ignore_index=None, classes=None, class_weights=None, reduction="mean", distance_map=None):
    """Kervadec's boundary loss in float64: mean over pixels of p * phi, per class."""
    probs, _, onehot, valid = _spatial_parts(logits, target, mode, ignore_index)
    phi, bound = signed_map_reference(onehot > 0.5, spacing, inside_shift, no_surface)
    if distance_map is not None:
        phi = distance_map.double()
    if normalize:
        phi = phi / bound
    return _reduce_classes(_class_mean(probs * phi, valid), classes, class_weights, reduction)


def hausdorff_reference(logits, target, *, mode, alpha=2.0, threshold=0.5, spacing=None, normalize=False,
                        no_surface="bound", ignore_index=None, classes=None, class_weights=None, reduction="mean"):
    """Karimi and Salcudean's HD loss in float64: mean of (p - t)^2 (d_p^a + d_t^a), per class."""
    probs, complement, onehot, valid = _spatial_parts(logits, target, mode, ignore_index)
    d_t, bound = signed_map_reference(onehot > 0.5, spacing, 0.0, no_surface)
    d_p, _ = signed_map_reference((probs > threshold) & valid, spacing, 0.0, no_surface)
    weight = d_p.abs() ** alpha + d_t.abs() ** alpha
    if normalize:
        weight = weight / bound**alpha
    error = torch.where(onehot == 1, complement, probs - onehot) ** 2
    return _reduce_classes(_class_mean(error * weight, valid), classes, class_weights, reduction)


def boundary_dou_reference(logits, target, *, mode, alpha_max=0.8, smooth=1e-5, ignore_empty=True, ignore_index=None,
                           classes=None, class_weights=None, reduction="mean"):
    """Sun et al.'s boundary DoU in float64, written after their reference code (cross-kernel boundary)."""
    import torch.nn.functional as F

    probs, complement, onehot, valid = _spatial_parts(logits, target, mode, ignore_index)
    dims = (0,) + tuple(range(2, probs.dim()))
    probs, onehot = probs * valid, onehot * valid
    spatial = probs.dim() - 2
    kernel = torch.zeros((3,) * spatial, dtype=torch.float64)
    for axis in range(spatial):  # the cross: the centre and its face neighbours
        index = [1] * spatial
        for k in (0, 2):
            index[axis] = k
            kernel[tuple(index)] = 1.0
    kernel[(1,) * spatial] = 1.0
    conv = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
    flat = onehot.reshape((-1, 1) + onehot.shape[2:])
    counts = conv(F.pad(flat, (1, 1) * spatial), kernel[None, None]).reshape(onehot.shape) * onehot
    boundary = ((counts > 0) & (counts < 2 * spatial + 1)).double().sum(dims)
    area = onehot.sum(dims)
    alpha = torch.clamp(2 * (1 - (boundary + smooth) / (area + smooth)) - 1, max=alpha_max)
    intersect = (probs * onehot).sum(dims)
    error = (torch.where(onehot == 1, complement, probs - onehot) * valid) ** 2
    difference = error.sum(dims)
    loss = (difference + smooth) / (difference + smooth + (1 - alpha) * intersect)
    if ignore_empty:
        loss = torch.where(area == 0, 0.0, loss)
    return _reduce_classes(loss, classes, class_weights, reduction)
