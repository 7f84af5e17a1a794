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
        return _SigmoidPair.apply(x)
    p = _Softmax.apply(x)
    others = torch.stack([p.narrow(1, 0, c).sum(1) + p.narrow(1, c + 1, p.shape[1] - c - 1).sum(1)
                          for c in range(p.shape[1])], dim=1)
    return p, others


class _SigmoidPair(torch.autograd.Function):
    """``(sigmoid(x), sigmoid(-x))`` with the derivative ``p q`` of each, itself differentiable.

    Autograd's sigmoid derivative ``y (1 - y)`` rounds ``1 - y`` to 0 above x = 37 in float64 (and
    its second derivative sooner); ``p q`` from the pair keeps every order exact.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sigmoid(x), torch.sigmoid(-x)

    @staticmethod
    def backward(ctx, grad_p, grad_q):
        (x,) = ctx.saved_tensors
        p, q = _SigmoidPair.apply(x)
        return (grad_p - grad_q) * p * q


class _Softmax(torch.autograd.Function):
    """``softmax(x)`` over dim 1 with the backward ``p_k sum_j p_j (g_k - g_j)``, itself differentiable.

    Autograd's ``p_k (g_k - sum_j p_j g_j)`` cancels where ``p_k`` rounds to 1 (a margin above 37 in
    float64) and gives 0 for the label's logit; the pairwise form has no such cancellation.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.softmax(x, 1)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        p = _Softmax.apply(x)
        pairwise = grad.unsqueeze(2) - grad.unsqueeze(1)  # [:, k, j] = g_k - g_j
        return p * (p.unsqueeze(1) * pairwise).sum(2)


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
    return loss.mean() if weights is None else (loss * weights).sum() / weights.sum().clamp_min(1e-300)  # 0 / 0: 0


def tversky_counts(probs, complement, target, per_image, soft):
    dims = (2,) if per_image else (0, 2)
    if soft:  # min(p, t), max(p - t, 0), max(t - p, 0) per element, written (a -+ |a|) / 2 (an even split at a tie)
        # t - p, as q - (1 - t) for labels near 1 (q exact where p rounds to 1) and t - p near 0 (p exact where q does)
        slack = torch.where(target >= 0.5, complement - (1 - target), target - probs)
        gap = -slack
        return ((probs + target - gap.abs()) / 2).sum(dims), ((gap + gap.abs()) / 2).sum(dims), ((slack + slack.abs()) / 2).sum(dims)
    return (probs * target).sum(dims), (probs * (1 - target)).sum(dims), (complement * target).sum(dims)


def tversky_reference(logits, target, *, mode, alpha=0.5, beta=0.5, gamma=1.0, classes=None, log_loss=False,
                      from_logits=True, smooth=0.0, ignore_index=None, eps=1e-7, class_weights=None,
                      per_image=False, ignore_empty=True, reduction="mean", soft=False, log_cosh=False):
    """Textbook (focal-)Tversky loss in float64 (Dice: alpha = beta = 0.5; Jaccard: 1, 1)."""
    probs, complement = _probs(logits, mode, from_logits)
    n, c = probs.shape[:2]
    probs, complement = probs.reshape(n, c, -1), complement.reshape(n, c, -1)
    onehot, valid = _targets(target, mode, c, ignore_index)
    probs, complement = probs * valid, complement * valid
    tp, fp, fn = tversky_counts(probs, complement, onehot, per_image, soft)
    denominator = (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)
    score = (tp + smooth) / denominator
    # 1 - score, without rounding it through score (float64 too would lose a loss of 1e-15):
    one_minus = torch.where(tp + alpha * fp + beta * fn + smooth >= eps, alpha * fp + beta * fn,
                            denominator - tp - smooth) / denominator
    if log_loss:  # -log(max(score, eps)), as -log1p(-(1 - score)) where score is near 1
        kept = score >= eps  # the other branch gets a finite dummy: a where() passes 0 * inf = NaN back
        loss = torch.where(kept, -torch.log1p(-torch.where(kept, one_minus, 0.0)), -math.log(eps))
    else:
        loss = one_minus
    loss = _power(torch.where(loss < 0, 0.0, loss), gamma)  # clamp_min(0) would pass no gradient at a loss of 0
    if log_cosh:
        loss = torch.log1p(torch.expm1(loss) ** 2 / (2 * torch.exp(loss)))  # log cosh, as cosh - 1 = (e^x - 1)^2 / 2e^x
    if ignore_empty:
        loss = loss * ((tp + fn) > 0)
    return _reduce_classes(loss, classes, class_weights, reduction)


def focal_reference(logits, target, *, mode, alpha=None, gamma=2.0, ignore_index=None, reduction="mean",
                    normalized=False, reduced_threshold=None, class_weights=None, multiclass_activation="softmax",
                    eps=1e-7, from_logits=True):
    """Textbook focal loss in float64: -alpha_t (1 - p_t)^gamma log p_t.

    With ``from_logits=False`` the input holds probabilities, clamped to ``[eps, 1 - eps]``: the
    softmax focal loss takes ``log p`` as its logits, the sigmoid focal loss (every other mode and
    activation, each channel an independent probability) ``log(p / (1 - p))``.
    """
    softmax = mode == "multiclass" and multiclass_activation == "softmax"
    x = logits.double()
    if not from_logits:
        p = x.clamp(eps, 1 - eps)
        x = torch.log(p) if softmax else torch.log(p) - torch.log1p(-p)
    x = x.clamp(-LIMIT, LIMIT)
    n, c = x.shape[:2]
    if softmax:
        labels = target.long()
        valid = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
        safe = torch.where(valid, labels, 0)
        # The documented cap: a pixel costs at most 65504 (the clamp alone would allow 2 * 65504).
        log_pt = _log_softmax_at(x, safe).clamp_min(-LIMIT)
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
    return per_class.mean() if weights is None else (per_class * weights).sum() / weights.sum().clamp_min(1e-300)


def _log_softmax_at(x, labels):
    """``log softmax(x)[y]`` per pixel. Where ``y`` holds the largest logit, ``-log1p(sum_{k != y}
    exp(x_k - x_y))``: ``x_y - logsumexp(x)`` would round a confident pixel's ``-1e-19`` to 0."""
    x_y = x.gather(1, labels.unsqueeze(1))
    top = x.amax(1, keepdim=True)
    others = torch.exp(torch.minimum(x - x_y, torch.zeros(()))).scatter(1, labels.unsqueeze(1), 0.0).sum(1, keepdim=True)
    confident = -torch.log1p(others)
    general = x_y - top - torch.log(torch.exp(x - top).sum(1, keepdim=True))
    return torch.where(x_y >= top, confident, general).squeeze(1)


def _focal_factor(log_pt, gamma, reduced_threshold):
    one_minus = -torch.expm1(log_pt)
    factor = _power(one_minus, gamma)
    if reduced_threshold is not None:
        # p_t < threshold, as log p_t < log threshold: exp(log p_t) rounds a confident p_t to 1
        factor = torch.where(log_pt < math.log(reduced_threshold), torch.ones_like(factor),
                             _power(one_minus / reduced_threshold, gamma))
    return factor


def _power(x, gamma):
    """``x ** gamma`` for ``x >= 0``, with derivatives 0 (not ``0 * inf``) at ``x = 0`` for every order."""
    if gamma == 1.0:
        return x
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0) ** gamma, 0.0 ** gamma)


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


def _spatial_parts(logits, target, mode, ignore_index, from_logits=True):
    """Float64 probabilities p, complements q, one-hot targets (N, C, *S) and validity (N, C|1, *S)."""
    probs, complement = _probs(logits, mode, from_logits)
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
                       ignore_index=None, classes=None, class_weights=None, reduction="mean", distance_map=None,
                       from_logits=True):
    """Kervadec's boundary loss in float64: mean over pixels of p * phi, per class."""
    probs, _, onehot, valid = _spatial_parts(logits, target, mode, ignore_index, from_logits)
    phi, bound = signed_map_reference(onehot > 0.5, spacing, inside_shift, no_surface)
    if distance_map is not None:
        phi = distance_map.double()
    if normalize:
        phi = phi / bound
    return _reduce_classes(_class_mean(probs * phi, valid), classes, class_weights, reduction)


def hausdorff_reference(logits, target, *, mode, alpha=2.0, threshold=0.5, spacing=None, normalize=False,
                        no_surface="bound", ignore_index=None, classes=None, class_weights=None, reduction="mean",
                        from_logits=True):
    """Karimi and Salcudean's HD loss in float64: mean of (p - t)^2 (d_p^a + d_t^a), per class."""
    probs, complement, onehot, valid = _spatial_parts(logits, target, mode, ignore_index, from_logits)
    d_t, bound = signed_map_reference(onehot > 0.5, spacing, 0.0, no_surface)
    d_p, _ = signed_map_reference((probs > threshold) & valid, spacing, 0.0, no_surface)
    weight = d_p.abs() ** alpha + d_t.abs() ** alpha
    if normalize:
        weight = weight / bound**alpha
    error = torch.where(onehot == 1, complement, probs - onehot) ** 2
    return _reduce_classes(_class_mean(error * weight, valid), classes, class_weights, reduction)


def boundary_dou_reference(logits, target, *, mode, alpha_max=0.8, smooth=1e-5, ignore_empty=True, ignore_index=None,
                           classes=None, class_weights=None, reduction="mean", from_logits=True):
    """Sun et al.'s boundary DoU in float64, written after their reference code (cross-kernel boundary).

    Soft targets: the adaptive ``alpha`` (area and boundary) is that of the mask ``t >= 1/2``; the
    sums and the emptiness of a class use the soft values.
    """
    import torch.nn.functional as F

    probs, complement, onehot, valid = _spatial_parts(logits, target, mode, ignore_index, from_logits)
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
    hard = (onehot.detach() >= 0.5).double()  # the target itself for hard labels
    flat = hard.reshape((-1, 1) + hard.shape[2:])
    counts = conv(F.pad(flat, (1, 1) * spatial), kernel[None, None]).reshape(hard.shape) * hard
    boundary = ((counts > 0) & (counts < 2 * spatial + 1)).double().sum(dims)
    area = hard.sum(dims)
    alpha = torch.clamp(2 * (1 - (boundary + smooth) / (area + smooth)) - 1, max=alpha_max)
    intersect = (probs * onehot).sum(dims)
    error = (torch.where(onehot == 1, complement, probs - onehot) * valid) ** 2
    difference = error.sum(dims)
    loss = (difference + smooth) / (difference + smooth + (1 - alpha) * intersect)
    if ignore_empty:
        loss = torch.where(onehot.detach().sum(dims) == 0, 0.0, loss)
    return _reduce_classes(loss, classes, class_weights, reduction)


# --- the boundary-aware hybrid and its weight schedules -------------------------------------------

HYBRID_DEFAULT_WEIGHTS = {None: (0.7, 0.3, 0.0), "dou": (0.5, 0.0, 0.5), "boundary": (0.7, 0.3, 100.0),
                          "hausdorff": (0.7, 0.3, 100.0)}
"""BoundaryAwareLoss's documented default ``(dice, focal, boundary)`` weights per ``boundary=`` name."""
HYBRID_DEFAULT_BOUNDARY_OPTIONS = {"boundary": {"normalize": True}, "hausdorff": {"normalize": True}, "dou": {}}
"""The boundary term's documented default options (distances divided by the image's extent diagonal)."""
HYBRID_BOUNDARY_TERMS = {"boundary": boundary_reference, "hausdorff": hausdorff_reference, "dou": boundary_dou_reference}
HYBRID_SHARED = ("ignore_index", "from_logits", "class_weights", "classes")
"""Options the hybrid passes to every term that takes them (Dice and the boundary term take all four,
Focal all but ``classes``)."""


def schedule_factors(schedule=None, epoch=0):
    """``(region, boundary)`` weight factors at ``epoch``: ``None``/``"constant"``: ``(1, 1)``;
    Kervadec's rebalancing, ``"rebalance"`` or ``(start, increment, floor)``: ``(max(1 - d e, floor), start + d e)``."""
    if schedule in (None, "constant"):
        return 1.0, 1.0
    start, increment, floor = (0.01, 0.01, 0.1) if schedule == "rebalance" else schedule
    moved = increment * epoch
    return max(1.0 - moved, floor), start + moved


def boundary_aware_reference(logits, target, *, mode, boundary="dou", dice_weight=None, focal_weight=None,
                             boundary_weight=None, schedule=None, epoch=0, dice_options=None, focal_options=None,
                             ignore_index=None, from_logits=True, class_weights=None, classes=None, soft=False,
                             **boundary_options):
    """``r (w_d Dice + w_f Focal(gamma=2)) + b w_b boundary`` in float64, ``(r, b)`` the schedule's factors.

    The shared options (:data:`HYBRID_SHARED`) reach every term that takes them; ``boundary_options``
    reach the boundary term (over its defaults); ``dice_options`` / ``focal_options`` describe a
    Dice / Focal module given in place of the default one. ``soft`` selects the semimetric Dice counts.
    """
    defaults = HYBRID_DEFAULT_WEIGHTS[boundary]
    weights = [d if w is None else w for w, d in zip((dice_weight, focal_weight, boundary_weight), defaults, strict=True)]
    region, boundary_factor = schedule_factors(schedule, epoch)
    shared = {"ignore_index": ignore_index, "from_logits": from_logits}
    total = region * weights[0] * tversky_reference(logits, target, mode=mode, classes=classes, class_weights=class_weights,
                                                    soft=soft, **shared, **(dice_options or {}))
    if weights[1] > 0:
        focal = {"gamma": 2.0, **(focal_options or {})}
        total = total + region * weights[1] * focal_reference(logits, target, mode=mode, class_weights=class_weights,
                                                              **shared, **focal)
    if boundary is not None:
        options = {**HYBRID_DEFAULT_BOUNDARY_OPTIONS[boundary], **boundary_options}
        term = HYBRID_BOUNDARY_TERMS[boundary](logits, target, mode=mode, classes=classes, class_weights=class_weights,
                                               **shared, **options)
        total = total + boundary_factor * weights[2] * term
    return total


# --- the rest of segmentation-models-pytorch's losses: Lovasz, soft BCE, soft cross-entropy, MCC ----

def _lovasz_grad_textbook(sorted_labels):
    """Berman et al.'s Algorithm 1: ``J_i - J_{i-1}`` of the Jaccard loss of each prefix (float64)."""
    total = sorted_labels.sum()
    intersection = total - sorted_labels.cumsum(0)
    union = total + (1 - sorted_labels).cumsum(0)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def _lovasz_flat(errors, labels):
    """The Lovasz extension of one row of kept elements: sorted errors dotted with the prefix increments."""
    if errors.numel() == 0:
        return errors.sum() * 0
    sorted_errors, order = torch.sort(errors, descending=True)
    return torch.dot(torch.relu(sorted_errors), _lovasz_grad_textbook(labels[order]))


def lovasz_reference(logits, target, *, mode, per_image=False, ignore_index=None, from_logits=True):
    """Lovasz hinge (binary, multilabel: all elements together) or Lovasz-softmax (multiclass), in float64.

    Written from Berman et al.'s reference code: ignored pixels are removed by boolean indexing,
    each row sorted, and the weights are differences of the prefixes' Jaccard losses.
    """
    n = logits.shape[0]
    groups = [slice(i, i + 1) for i in range(n)] if per_image else [slice(None)]
    if mode == "multiclass":
        probs, complement = _probs(logits, mode, from_logits)
        c = probs.shape[1]
        losses = []
        for g in groups:
            p = probs[g].reshape(probs[g].shape[0], c, -1).movedim(1, -1).reshape(-1, c)
            q = complement[g].reshape(probs[g].shape[0], c, -1).movedim(1, -1).reshape(-1, c)
            labels = target[g].reshape(-1).long()
            keep = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
            p, q, labels = p[keep], q[keep], labels[keep]
            per_class = []
            for k in range(c):
                fg = (labels == k).double()
                if fg.sum() == 0:
                    continue
                errors = torch.where(fg == 1, q[:, k], p[:, k])
                per_class.append(_lovasz_flat(errors, fg))
            losses.append(torch.stack(per_class).mean() if per_class else probs.sum() * 0)
        return torch.stack(losses).mean()
    losses = []
    for g in groups:
        x = logits[g].double().reshape(-1)
        t = target[g].double().reshape(-1)
        keep = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        x, t = x[keep], t[keep]
        if from_logits:
            errors = 1 - x.clamp(-LIMIT, LIMIT) * (2 * t - 1)
        else:
            errors = (t - x.clamp(0, 1)).abs()
        losses.append(_lovasz_flat(errors, t))
    return torch.stack(losses).mean()


def _reduce_elements(loss, reduction):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def soft_bce_reference(logits, target, *, weight=None, ignore_index=-100, reduction="mean", smooth_factor=None,
                       pos_weight=None):
    """-w [w+ t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] on smoothed targets, float64; ignored elements 0."""
    x = logits.double().clamp(-LIMIT, LIMIT)
    t = target.double().reshape(x.shape)
    keep = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t = torch.where(keep, t, 0.0)
    if smooth_factor is not None:
        t = (1 - t) * smooth_factor + t * (1 - smooth_factor)
    positive = 1.0 if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float64)
    loss = -(positive * t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x))
    if weight is not None:
        loss = loss * torch.as_tensor(weight, dtype=torch.float64)
    return _reduce_elements(loss * keep, reduction)


def soft_cross_entropy_reference(logits, target, *, reduction="mean", smooth_factor=None, ignore_index=-100, dim=1):
    """fairseq's label-smoothed NLL in float64: (1 - e) (-log p_y) + e / C sum_k (-log p_k); ignored pixels 0."""
    log_p = torch.log_softmax(logits.double().clamp(-LIMIT, LIMIT), dim=dim)
    labels = target.long()
    if labels.dim() == log_p.dim():
        labels = labels.squeeze(dim)
    keep = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
    nll = -log_p.gather(dim, torch.where(keep, labels, 0).unsqueeze(dim)).squeeze(dim)
    epsilon = smooth_factor or 0.0
    loss = (1 - epsilon) * nll + epsilon / log_p.shape[dim] * -log_p.sum(dim)
    return _reduce_elements(loss * keep, reduction)


def mcc_reference(probs, target, *, eps=1e-5):
    """1 - MCC of soft counts (each plus eps) over the whole batch, float64; takes probabilities."""
    p = probs.double().clamp(0, 1).reshape(-1)
    t = target.double().reshape(-1)
    tp, fp = (p * t).sum() + eps, (p * (1 - t)).sum() + eps
    fn, tn = ((1 - p) * t).sum() + eps, ((1 - p) * (1 - t)).sum() + eps
    return 1 - (tp * tn - fp * fn) / torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
