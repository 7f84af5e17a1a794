"""The option sets as type checkers and editors see them: keyword arguments and attributes.

Each loss takes its options as ``**options: Unpack[<Loss>Kwargs]`` (PEP 692): mypy and pyright report
a misspelled or wrongly typed option, and an editor completes the names. Each loss class also
inherits, for type checkers only, an ``<Loss>Attributes`` class that declares its options as
attributes (``crit.smooth = 1.0``; the per-class ones read back as tensors, the fixed ones are
read-only). The option sets themselves are declared in :mod:`stableloss._options` (the frozen
dataclasses that validate them, from which ``OptionsModule`` makes the run-time signatures and
properties); this module is their static view, and ``tests/test_typing.py`` holds the two equal:
the names are the options a loss accepts (less those its class takes by position, which its
``__init__`` spells out for type checkers), and each type is the dataclass field's, with a
per-class tuple widened to what a caller may pass (a sequence, a 1-D tensor or an array).

``Unpack`` comes from ``typing_extensions`` for type checkers only (they ship it on every Python),
so the package needs nothing beyond ``typing`` at run time.
"""

from __future__ import annotations

from typing import Any, NoReturn, Optional, Sequence, Tuple, TypedDict, Union

from numpy.typing import NDArray
from torch import Tensor

IntSequence = Union[Sequence[int], Tensor, NDArray[Any]]
"""Class indices: a sequence of ints, a 1-D integer tensor or array (``classes``)."""

FloatSequence = Union[Sequence[float], Tensor, NDArray[Any]]
"""Numbers, one per class (``class_weights``, focal ``alpha``) or per spatial dim (``spacing``)."""


class RegionClassKwargs(TypedDict, total=False):
    """The keyword-only options of the region-loss classes (:class:`~stableloss.RegionOptions`)."""

    class_weights: Optional[FloatSequence]
    per_image: bool
    ignore_empty: bool
    global_batch: bool
    reduction: str
    validate_args: bool
    fused: Optional[bool]


class LogCoshDiceKwargs(RegionClassKwargs, total=False):
    """The keyword options of :func:`~stableloss.log_cosh_dice_loss` (Dice's without ``log_loss``)."""

    classes: Optional[IntSequence]
    from_logits: bool
    smooth: float
    ignore_index: Optional[int]
    eps: float


class DiceKwargs(LogCoshDiceKwargs, total=False):
    """The keyword options of :func:`~stableloss.dice_loss` and :func:`~stableloss.jaccard_loss`."""

    log_loss: bool


class TverskyKwargs(DiceKwargs, total=False):
    """The keyword options of :func:`~stableloss.tversky_loss`: Dice's plus the Tversky weights."""

    alpha: float
    beta: float
    gamma: float


class FocalClassKwargs(TypedDict, total=False):
    """The keyword-only options of :class:`~stableloss.FocalLoss` (:class:`~stableloss.FocalOptions`)."""

    class_weights: Optional[FloatSequence]
    multiclass_activation: str
    validate_args: bool
    fused: Optional[bool]


class FocalKwargs(FocalClassKwargs, total=False):
    """The keyword options of :func:`~stableloss.focal_loss`."""

    alpha: Union[None, float, FloatSequence]
    gamma: float
    ignore_index: Optional[int]
    from_logits: bool
    eps: float
    reduction: str
    normalized: bool
    reduced_threshold: Optional[float]


class _SpatialKwargs(TypedDict, total=False):
    """The options every boundary loss takes (:class:`~stableloss.BoundaryOptions`)."""

    classes: Optional[IntSequence]
    from_logits: bool
    ignore_index: Optional[int]
    class_weights: Optional[FloatSequence]
    reduction: str
    validate_args: bool


class _DistanceKwargs(_SpatialKwargs, total=False):
    """The options of the losses that use distance maps (boundary, Hausdorff-DT)."""

    spacing: Union[None, float, FloatSequence]
    no_surface: str
    normalize: bool
    backend: str


class BoundaryKwargs(_DistanceKwargs, total=False):
    """The keyword options of :func:`~stableloss.boundary_loss` and :class:`~stableloss.BoundaryLoss`."""

    inside_shift: float


class HausdorffClassKwargs(_DistanceKwargs, total=False):
    """The keyword-only options of :class:`~stableloss.HausdorffDTLoss`."""

    threshold: float


class HausdorffKwargs(HausdorffClassKwargs, total=False):
    """The keyword options of :func:`~stableloss.hausdorff_dt_loss`."""

    alpha: float


class BoundaryDoUKwargs(_SpatialKwargs, total=False):
    """The keyword options of :func:`~stableloss.boundary_dou_loss` and :class:`~stableloss.BoundaryDoULoss`."""

    alpha_max: float
    smooth: float
    ignore_empty: bool


class BoundaryAwareKwargs(BoundaryKwargs, HausdorffKwargs, BoundaryDoUKwargs, total=False):
    """The ``**options`` of :class:`~stableloss.BoundaryAwareLoss`: the shared options and every boundary term's.

    The shared ones (``ignore_index``, ``from_logits``, ``classes``, ``class_weights``,
    ``validate_args``) go to every term; the others to the boundary term named by ``boundary=``,
    which refuses, when the loss is built, an option it does not take (``spacing`` with ``"dou"``).
    """


def _declared() -> NoReturn:
    raise NotImplementedError("a declaration for type checkers: OptionsModule makes the real property")


class _ClassSubset:
    """``classes``: set from indices, read back as the int64 buffer (or None)."""

    @property
    def classes(self) -> Optional[Tensor]: ...

    @classes.setter
    def classes(self, value: Optional[IntSequence]) -> None: ...


class _ClassWeights:
    """``class_weights``: set from numbers, read back as the float32 buffer (or None)."""

    @property
    def class_weights(self) -> Optional[Tensor]: ...

    @class_weights.setter
    def class_weights(self, value: Optional[FloatSequence]) -> None: ...


class _RegionAttributes(_ClassSubset, _ClassWeights):
    mode: str
    from_logits: bool
    smooth: float
    ignore_index: Optional[int]
    eps: float
    per_image: bool
    ignore_empty: bool
    global_batch: bool
    reduction: str
    validate_args: bool
    fused: Optional[bool]


class _FixedTverskyWeights:
    """``alpha``, ``beta``, ``gamma`` of a loss that fixes them (Dice, Jaccard, log-cosh Dice): read-only."""

    @property
    def alpha(self) -> float:
        _declared()

    @property
    def beta(self) -> float:
        _declared()

    @property
    def gamma(self) -> float:
        _declared()


class LogCoshDiceAttributes(_RegionAttributes, _FixedTverskyWeights):
    """The option attributes of :class:`~stableloss.LogCoshDiceLoss`."""


class DiceAttributes(_RegionAttributes, _FixedTverskyWeights):
    """The option attributes of :class:`~stableloss.DiceLoss` and :class:`~stableloss.JaccardLoss`."""

    log_loss: bool


class TverskyAttributes(_RegionAttributes):
    """The option attributes of :class:`~stableloss.TverskyLoss`."""

    log_loss: bool
    alpha: float
    beta: float
    gamma: float


class FocalAttributes(_ClassWeights):
    """The option attributes of :class:`~stableloss.FocalLoss`."""

    mode: str
    gamma: float
    ignore_index: Optional[int]
    from_logits: bool
    eps: float
    reduction: str
    normalized: bool
    reduced_threshold: Optional[float]
    multiclass_activation: str
    validate_args: bool
    fused: Optional[bool]

    @property
    def alpha(self) -> Union[None, float, Tensor]: ...

    @alpha.setter
    def alpha(self, value: Union[None, float, FloatSequence]) -> None: ...


class _SpatialAttributes(_ClassSubset, _ClassWeights):
    mode: str
    from_logits: bool
    ignore_index: Optional[int]
    reduction: str
    validate_args: bool


class _DistanceAttributes(_SpatialAttributes):
    no_surface: str
    normalize: bool
    backend: str

    @property
    def spacing(self) -> Union[None, float, Tuple[float, ...]]: ...

    @spacing.setter
    def spacing(self, value: Union[None, float, FloatSequence]) -> None: ...


class BoundaryAttributes(_DistanceAttributes):
    """The option attributes of :class:`~stableloss.BoundaryLoss`."""

    inside_shift: float


class HausdorffAttributes(_DistanceAttributes):
    """The option attributes of :class:`~stableloss.HausdorffDTLoss`."""

    alpha: float
    threshold: float


class BoundaryDoUAttributes(_SpatialAttributes):
    """The option attributes of :class:`~stableloss.BoundaryDoULoss`."""

    alpha_max: float
    smooth: float
    ignore_empty: bool


class BoundaryAwareAttributes(_ClassSubset, _ClassWeights):
    """The shared options of :class:`~stableloss.BoundaryAwareLoss` as attributes (each set on every term)."""

    ignore_index: Optional[int]
    from_logits: bool
    validate_args: bool


# --- the rest of segmentation-models-pytorch's losses (Lovasz, soft BCE, soft CE, MCC) -----------------

WeightLike = Union[Tensor, NDArray[Any], Sequence[Any], float]
"""A broadcast weight (soft BCE's ``weight``, ``pos_weight``): a tensor, array, nested list or number."""


class ValidateArgsKwargs(TypedDict, total=False):
    """The keyword-only option of :class:`~stableloss.LovaszLoss`, :class:`~stableloss.SoftBCEWithLogitsLoss`,
    :class:`~stableloss.SoftCrossEntropyLoss` and :class:`~stableloss.MCCLoss` (the others are smp's positional ones)."""

    validate_args: bool


class LovaszAttributes:
    """The option attributes of :class:`~stableloss.LovaszLoss`."""

    mode: str
    per_image: bool
    ignore_index: Optional[int]
    from_logits: bool
    validate_args: bool


class SoftBCEAttributes:
    """The option attributes of :class:`~stableloss.SoftBCEWithLogitsLoss` (the weights read back as float32 buffers)."""

    ignore_index: Optional[int]
    reduction: str
    smooth_factor: Optional[float]
    validate_args: bool

    @property
    def weight(self) -> Optional[Tensor]: ...

    @weight.setter
    def weight(self, value: Optional[WeightLike]) -> None: ...

    @property
    def pos_weight(self) -> Optional[Tensor]: ...

    @pos_weight.setter
    def pos_weight(self, value: Optional[WeightLike]) -> None: ...


class SoftCrossEntropyAttributes:
    """The option attributes of :class:`~stableloss.SoftCrossEntropyLoss`."""

    reduction: str
    smooth_factor: Optional[float]
    ignore_index: Optional[int]
    dim: int
    validate_args: bool


class MCCAttributes:
    """The option attributes of :class:`~stableloss.MCCLoss`."""

    eps: float
    validate_args: bool
