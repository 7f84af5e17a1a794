"""The option sets of the losses, each declared once and validated once.

A loss's settings live in a frozen dataclass (:class:`RegionOptions` for the Dice family,
:class:`FocalOptions` for focal). Building one checks and normalises every field (NumPy scalars
and arrays, tensors and lists become Python numbers and tuples), so a bad setting fails when the
loss is built, not at the first batch, and a forward pass never re-checks it (no host sync, nothing
for ``torch.compile`` to trip over). The functional losses build the dataclass from their keyword
arguments; the classes hold one and expose its fields as validated attributes
(:mod:`stableloss._module`).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

from torch import Tensor

from stableloss import _checks
from stableloss._reduction import check_reduction

FOCAL_ACTIVATIONS = ("softmax", "sigmoid")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class RegionOptions:
    """Options of the overlap (region) losses: Dice, Jaccard, Tversky, focal-Tversky, log-cosh Dice.

    Attributes:
        mode: ``"binary"``, ``"multiclass"`` (softmax over C) or ``"multilabel"`` (sigmoid per C).
        classes: Indices of the classes that enter the mean (segmentation-models-pytorch's option).
        log_loss: Use ``-log(score)`` instead of ``1 - score``.
        from_logits: ``input`` holds logits (True) or probabilities (False).
        smooth: Added to numerator and denominator, >= 0.
        ignore_index: Target value whose pixels are left out of every count.
        eps: Lower bound of the denominator, > 0.
        alpha: Tversky weight of false positives, >= 0 (Dice: 0.5, Jaccard: 1).
        beta: Tversky weight of false negatives, >= 0 (``alpha + beta > 0``).
        gamma: Focal-Tversky exponent, > 0, applied per class.
        class_weights: Non-negative weight per class; the mean over classes becomes a weighted mean.
        per_image: Score each image separately and average (default: one score per class over the
            whole batch, as segmentation-models-pytorch does).
        ignore_empty: A class whose target is empty (in the batch, or in the image with
            ``per_image``) contributes loss 0 and no gradient. With False its score follows the
            formula (use ``smooth > 0``).
        global_batch: Sum the counts over all ``torch.distributed`` ranks before scoring (with
            gradient); without a process group it changes nothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the ``(C,)`` or ``(N, C)`` losses).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.
        fused: Fused Triton kernels for the sigmoid path: ``None`` (default: the ``STABLELOSS_FUSED``
            environment variable, ``1`` on wherever they can run, ``0`` off; unset, eager torch, as
            the kernels have not yet run on a GPU), ``False`` (eager torch), ``True`` (required: a
            ``ValueError`` at the forward where they cannot run). Paths without a kernel (softmax)
            run eagerly whatever the setting.
    """

    mode: str
    classes: Optional[Tuple[int, ...]] = None
    log_loss: bool = False
    from_logits: bool = True
    smooth: float = 0.0
    ignore_index: Optional[int] = None
    eps: float = 1e-7
    alpha: float = 0.5
    beta: float = 0.5
    gamma: float = 1.0
    class_weights: Optional[Tuple[float, ...]] = None
    per_image: bool = False
    ignore_empty: bool = True
    global_batch: bool = False
    reduction: str = "mean"
    validate_args: bool = True
    fused: Optional[bool] = None

    def __post_init__(self) -> None:
        if _checks.is_compiling():  # values were checked when the loss was built, outside the graph
            return
        _set(self, "fused", _checks.check_optional_bool("fused", self.fused))
        mode = _checks.check_mode(self.mode)
        _set(self, "classes", _checks.check_classes(self.classes, mode))
        for flag in ("log_loss", "from_logits", "per_image", "ignore_empty", "global_batch", "validate_args"):
            _set(self, flag, _checks.check_bool(flag, getattr(self, flag)))
        _set(self, "smooth", _checks.check_number("smooth", self.smooth, low=0.0))
        _set(self, "ignore_index", _checks.check_ignore_index(self.ignore_index))
        _set(self, "eps", _checks.check_number("eps", self.eps, low=0.0, low_inclusive=False))
        _set(self, "alpha", _checks.check_number("alpha", self.alpha, low=0.0))
        _set(self, "beta", _checks.check_number("beta", self.beta, low=0.0))
        if self.alpha + self.beta <= 0:
            raise ValueError("alpha + beta must be > 0 (else every prediction scores 1); "
                             f"received alpha={self.alpha}, beta={self.beta}")
        _set(self, "gamma", _checks.check_number("gamma", self.gamma, low=0.0, low_inclusive=False))
        _set(self, "class_weights", _checks.check_weights("class_weights", self.class_weights, mode=mode))
        if self.per_image and self.global_batch:
            raise ValueError("per_image and global_batch must not both be True (per-image scores need no "
                             "cross-rank sums); received per_image=True, global_batch=True")
        _set(self, "reduction", check_reduction(self.reduction))


@dataclass(frozen=True)
class FocalOptions:
    """Options of the focal loss.

    Attributes:
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        alpha: ``None``; a scalar in [0, 1] (sigmoid modes: positives weigh ``alpha``, negatives
            ``1 - alpha``; softmax: every pixel ``alpha``); or one weight >= 0 per class (the weight
            of class ``c``'s channel (sigmoid) or of pixels whose true class is ``c`` (softmax)).
        gamma: Focusing exponent >= 0; 0 gives (weighted) cross-entropy.
        ignore_index: Target value whose pixels are left out (also of the mean's count).
        from_logits: ``input`` holds logits (True) or probabilities (False, clamped to
            ``[eps, 1 - eps]`` and turned into logits).
        eps: Clamp for probabilities and for the ``normalized`` denominator, in (0, 0.5).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        normalized: Divide by the sum of focal factors (Lin et al.'s normalisation).
        reduced_threshold: Reduced focal loss threshold in (0, 1].
        class_weights: Weight per class. Sigmoid modes: weighted mean of the per-class means.
            Softmax: each pixel weighted by its true class's weight, the mean normalised by the
            sum of those weights (``torch.nn.functional.cross_entropy(weight=...)``).
        multiclass_activation: ``"softmax"`` (default) or ``"sigmoid"`` (segmentation-models-pytorch's).
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.
        fused: Fused Triton kernels for the sigmoid path: ``None`` (default: the ``STABLELOSS_FUSED``
            environment variable, ``1`` on wherever they can run, ``0`` off; unset, eager torch, as
            the kernels have not yet run on a GPU), ``False`` (eager torch), ``True`` (required: a
            ``ValueError`` at the forward where they cannot run). Paths without a kernel (softmax,
            ``normalized``, ``reduction="none"``) run eagerly whatever the setting.
    """

    mode: str
    alpha: Union[None, float, Tuple[float, ...]] = None
    gamma: float = 2.0
    ignore_index: Optional[int] = None
    from_logits: bool = True
    eps: float = 1e-7
    reduction: str = "mean"
    normalized: bool = False
    reduced_threshold: Optional[float] = None
    class_weights: Optional[Tuple[float, ...]] = None
    multiclass_activation: str = "softmax"
    validate_args: bool = True
    fused: Optional[bool] = None

    def __post_init__(self) -> None:
        if _checks.is_compiling():
            return
        _set(self, "fused", _checks.check_optional_bool("fused", self.fused))
        mode = _checks.check_mode(self.mode)
        _set(self, "alpha", _checks.check_alpha(self.alpha))
        _set(self, "gamma", _checks.check_number("gamma", self.gamma, low=0.0))
        _set(self, "ignore_index", _checks.check_ignore_index(self.ignore_index))
        for flag in ("from_logits", "normalized", "validate_args"):
            _set(self, flag, _checks.check_bool(flag, getattr(self, flag)))
        _set(self, "eps", _checks.check_number("eps", self.eps, low=0.0, high=0.5, low_inclusive=False,
                                               high_inclusive=False))
        _set(self, "reduction", check_reduction(self.reduction))
        _set(self, "reduced_threshold", _checks.check_optional_number(
            "reduced_threshold", self.reduced_threshold, low=0.0, high=1.0, low_inclusive=False))
        _set(self, "class_weights", _checks.check_weights("class_weights", self.class_weights, mode=mode))
        _set(self, "multiclass_activation", _checks.check_choice(
            "multiclass_activation", self.multiclass_activation, FOCAL_ACTIVATIONS))

    @property
    def softmax(self) -> bool:
        """Whether this is the softmax focal loss (multiclass with the softmax activation)."""
        return self.mode == "multiclass" and self.multiclass_activation == "softmax"


Options = TypeVar("Options", RegionOptions, FocalOptions)


@dataclass(frozen=True)
class OptionSpec:
    """Which options of an option set one loss takes, and which it fixes.

    Attributes:
        owner: The loss's name in messages, e.g. ``"dice_loss()"``.
        options_type: :class:`RegionOptions` or :class:`FocalOptions`.
        fixed: Options the loss sets itself (Dice: ``alpha = beta = 0.5``).
        excluded: Options the loss does not take at all (log-cosh Dice: ``log_loss``).
        hint: Where to go for a fixed option, for the message.
    """

    owner: str
    options_type: Type[Any]
    fixed: Mapping[str, object] = dataclasses.field(default_factory=dict)
    excluded: Tuple[str, ...] = ()
    hint: str = "use TverskyLoss or tversky_loss to choose it"
    accepted: Tuple[str, ...] = dataclasses.field(init=False)
    """The option names a caller may pass, in declaration order (``mode`` first)."""

    def __post_init__(self) -> None:  # computed once: dataclasses.fields() is not traceable by dynamo
        _set(self, "accepted", tuple(f.name for f in dataclasses.fields(self.options_type)
                                     if f.name not in self.fixed and f.name not in self.excluded))

    def build(self, options: Mapping[str, object]) -> Any:
        """The validated options from a caller's keywords; a ``TypeError`` names any unknown one."""
        accepted = self.accepted
        if "mode" not in options:
            raise TypeError(f"{self.owner} missing the required argument 'mode' (one of {_checks.MODES})")
        for name in options:
            if name in self.fixed:
                raise TypeError(f"{self.owner} fixes {name} = {self.fixed[name]!r} ({self.hint}); "
                                f"received {name}={options[name]!r}")
            if name not in accepted:
                raise TypeError(f"{self.owner} got an unexpected keyword argument {name!r}; "
                                f"it takes {', '.join(accepted)}")
        return self.options_type(**options, **self.fixed)

    def function_signature(self, extra: Sequence[str] = ()) -> inspect.Signature:
        """``(input, target, *, mode, <extra>=None, <option>=<default>, ...)``: a functional loss's signature."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [inspect.Parameter("input", kind, annotation=Tensor), inspect.Parameter("target", kind, annotation=Tensor)]
        keywords = self._keyword_parameters(skip=())
        extras = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in extra]
        return inspect.Signature(params + keywords[:1] + extras + keywords[1:], return_annotation=Tensor)

    def class_signature(self, positional: Sequence[str]) -> inspect.Signature:
        """``(self, <smp's positional arguments>, *, <the other options>)`` for a loss class."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        defaults = self._defaults()
        params = [inspect.Parameter("self", kind)]
        params += [inspect.Parameter(name, kind, default=defaults.get(name, inspect.Parameter.empty)) for name in positional]
        params += self._keyword_parameters(skip=positional)
        return inspect.Signature(params, return_annotation=None)

    def _defaults(self) -> Dict[str, object]:
        return {f.name: f.default for f in dataclasses.fields(self.options_type) if f.default is not dataclasses.MISSING}

    def _keyword_parameters(self, skip: Sequence[str]) -> list:
        defaults = self._defaults()
        kind = inspect.Parameter.KEYWORD_ONLY
        return [inspect.Parameter(name, kind, default=defaults.get(name, inspect.Parameter.empty))
                for name in self.accepted if name not in skip]


@dataclass(frozen=True)
class BoundaryOptions:
    """Options of the distance- and contour-based losses: boundary, Hausdorff-DT and boundary DoU.

    Each loss takes the options that apply to it (its docstring lists them).

    Attributes:
        mode: ``"binary"``, ``"multiclass"`` (softmax over C) or ``"multilabel"`` (sigmoid per C).
        classes: Indices of the classes that enter the mean (e.g. ``[1, 2]`` to leave out background).
        from_logits: ``input`` holds logits (True) or probabilities (False).
        ignore_index: Target value whose pixels are left out (and count as background in the maps).
        spacing: Pixel size, one positive number or one per spatial dim (CT voxel spacing in mm);
            distances are in its units. Default 1.
        no_surface: The map of a channel without a surface (empty or full target): ``"bound"`` (the
            image's extent diagonal, so a false positive on an empty image is penalised) or
            ``"zero"`` (MONAI's and Kervadec's zero map). See :func:`~stableloss.signed_distance_map`.
        normalize: Divide the distances by the image's extent diagonal (maps in [-1, 1]).
        inside_shift: Boundary loss: subtracted from the inside distances (1: Kervadec's code).
        alpha: Hausdorff-DT loss: the exponent of the distances (Karimi and Salcudean: 2).
        threshold: Hausdorff-DT loss: a pixel belongs to the predicted mask when ``p > threshold``.
        alpha_max: Boundary DoU loss: the upper limit of its adaptive ``alpha`` (Sun et al.: 0.8).
        smooth: Boundary DoU loss: added to numerator and denominator (Sun et al.: 1e-5).
        ignore_empty: Boundary DoU loss: a class with an empty target gives loss 0 and no gradient.
        class_weights: Non-negative weight per class; the mean over classes becomes a weighted mean.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the ``(C,)`` per-class losses).
        backend: Distance transform backend, ``"auto"``, ``"torch"`` or ``"scipy"``.
        validate_args: Check target values (a host sync); skipped under ``torch.compile``.
    """

    mode: str
    classes: Optional[Tuple[int, ...]] = None
    from_logits: bool = True
    ignore_index: Optional[int] = None
    spacing: Union[None, float, Tuple[float, ...]] = None
    no_surface: str = "bound"
    normalize: bool = False
    inside_shift: float = 0.0
    alpha: float = 2.0
    threshold: float = 0.5
    alpha_max: float = 0.8
    smooth: float = 1e-5
    ignore_empty: bool = True
    class_weights: Optional[Tuple[float, ...]] = None
    reduction: str = "mean"
    backend: str = "auto"
    validate_args: bool = True

    def __post_init__(self) -> None:
        if _checks.is_compiling():
            return
        mode = _checks.check_mode(self.mode)
        _set(self, "classes", _checks.check_classes(self.classes, mode))
        for flag in ("from_logits", "normalize", "ignore_empty", "validate_args"):
            _set(self, flag, _checks.check_bool(flag, getattr(self, flag)))
        _set(self, "ignore_index", _checks.check_ignore_index(self.ignore_index))
        _set(self, "spacing", _checks.check_spacing_option(self.spacing))
        _set(self, "no_surface", _checks.check_choice("no_surface", self.no_surface, ("bound", "zero")))
        _set(self, "inside_shift", _checks.check_number("inside_shift", self.inside_shift, low=0.0))
        _set(self, "alpha", _checks.check_number("alpha", self.alpha, low=0.0, low_inclusive=False))
        _set(self, "threshold", _checks.check_number("threshold", self.threshold, low=0.0, high=1.0,
                                                     low_inclusive=False, high_inclusive=False))
        _set(self, "alpha_max", _checks.check_number("alpha_max", self.alpha_max, low=-1.0, high=1.0,
                                                     high_inclusive=False))
        _set(self, "smooth", _checks.check_number("smooth", self.smooth, low=0.0, low_inclusive=False))
        _set(self, "class_weights", _checks.check_weights("class_weights", self.class_weights, mode=mode))
        _set(self, "reduction", check_reduction(self.reduction))
        _set(self, "backend", _checks.check_choice("backend", self.backend, _checks.BACKENDS))
