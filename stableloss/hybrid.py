"""The boundary-aware hybrid: Dice and Focal region terms plus a distance- or contour-based term."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, Optional, Union

from torch import Tensor, nn

from stableloss import _checks
from stableloss.boundary import BoundaryLoss, boundary_loss
from stableloss.boundary_dou import BoundaryDoULoss, boundary_dou_loss
from stableloss.combined import CombinedLoss
from stableloss.dice import DiceLoss, dice_loss
from stableloss.focal import FocalLoss, focal_loss
from stableloss.hausdorff import HausdorffDTLoss, hausdorff_dt_loss
from stableloss.schedule import make_schedule

BOUNDARY_TERMS = {"boundary": (BoundaryLoss, boundary_loss), "hausdorff": (HausdorffDTLoss, hausdorff_dt_loss),
                  "dou": (BoundaryDoULoss, boundary_dou_loss)}
"""``boundary=`` names: Kervadec's boundary loss, Karimi's Hausdorff-DT loss, Sun's boundary DoU."""

DEFAULT_BOUNDARY = "boundary"
DEFAULT_BOUNDARY_WEIGHT = 100.0
DEFAULT_BOUNDARY_OPTIONS: Dict[str, Dict[str, Any]] = {"boundary": {"normalize": True}, "hausdorff": {"normalize": True},
                                                       "dou": {}}
"""The boundary term's default options: distances divided by the image's extent diagonal, so the
term's scale does not depend on the image size or on the units of ``spacing``."""


def _boundary_term(mode: str, boundary: object, options: Mapping[str, Any]) -> Optional[nn.Module]:
    if boundary is None:
        if options:
            raise TypeError(f"boundary options {sorted(options)} were given but boundary=None (the seed recipe has none)")
        return None
    if isinstance(boundary, nn.Module):
        if options:
            raise TypeError(f"boundary options {sorted(options)} were given with a boundary module: set them on the module")
        return boundary
    name = _checks.check_choice("boundary", boundary, tuple(BOUNDARY_TERMS))
    return BOUNDARY_TERMS[name][0](mode, **{**DEFAULT_BOUNDARY_OPTIONS[name], **options})


class BoundaryAwareLoss(CombinedLoss):
    """Dice + Focal + a boundary term, with a weight schedule: boundary-aware by construction.

    .. math::

        \\mathcal{L} = r(e) \\bigl(w_d \\mathcal{L}_{Dice} + w_f \\mathcal{L}_{Focal}\\bigr)
        + b(e) \\, w_b \\, \\mathcal{L}_{boundary}

    with ``(r(e), b(e))`` the schedule's factors at epoch ``e`` (1 and 1 for the constant
    schedule). The region terms keep the overlap high; the boundary term is what makes the loss
    boundary-aware: a wrongly predicted pixel costs its distance from the target's surface
    (``boundary="boundary"``, Kervadec et al.), its squared distances to both surfaces
    (``"hausdorff"``), or the boundary-weighted DoU ratio (``"dou"``). ``boundary=None`` is the liver
    experiment's recipe, exactly ``0.7 Dice + 0.3 Focal(gamma=2)``, whose Focal term does not make it
    boundary-aware (``bench/grad_norms.py`` measures both).

    Args:
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        boundary: ``"boundary"`` (default), ``"hausdorff"``, ``"dou"``, a loss module
            ``(input, target, [distance_map]) -> loss``, or None (no boundary term).
        dice: The Dice term; default ``DiceLoss(mode)``.
        focal: The Focal term; default ``FocalLoss(mode, gamma=2.0)``.
        dice_weight: ``w_d`` (default 0.7).
        focal_weight: ``w_f`` (default 0.3).
        boundary_weight: ``w_b`` (default 100, with distances normalised by the image's extent: see the Note).
        schedule: None or ``"constant"`` (default), ``"rebalance"`` (:class:`RebalanceSchedule`:
            Kervadec's, for raw distances), or a schedule object. Call :meth:`step` once per epoch.
        **boundary_options: Options of the boundary term when ``boundary`` is a name (``spacing``,
            ``normalize``, ``ignore_index``, ...). Default: ``normalize=True`` for the distance losses.

    Note:
        Why the default boundary weight is 100: the boundary loss is a mean over *all* pixels of
        ``p * phi / B`` (distances divided by the image's extent diagonal ``B``, so the term does
        not depend on the image size or on the units of ``spacing``), so a pixel's gradient is about
        ``(d / B) / #pixels``, while Dice's is about ``1 / #target pixels``. At weight 100 a
        confidently wrong island far from the object gets 1.44 times the gradient of the contour
        band (the seed recipe: 0.59, Dice: 0.08; ``python bench/grad_norms.py --only boundary``):
        the loss reacts to errors by their distance, which region terms cannot. The liver
        example's table (docs/liver-example.md) reports what it does to Dice and HD95.

    Shape:
        - As for :class:`~stableloss.DiceLoss`; ``forward(input, target, distance_map=None)``
          passes the loader's target maps to the boundary term. Output: a float32 scalar.

    Example:
        >>> criterion = BoundaryAwareLoss("binary")
        >>> criterion.weights
        {'dice': 0.7, 'focal': 0.3, 'boundary': 100.0}
        >>> BoundaryAwareLoss("binary", boundary=None).weights  # the seed experiment's recipe
        {'dice': 0.7, 'focal': 0.3}
    """

    def __init__(
        self,
        mode: str,
        boundary: Union[None, str, nn.Module] = DEFAULT_BOUNDARY,
        *,
        dice: Optional[nn.Module] = None,
        focal: Optional[nn.Module] = None,
        dice_weight: float = 0.7,
        focal_weight: float = 0.3,
        boundary_weight: float = DEFAULT_BOUNDARY_WEIGHT,
        schedule: object = None,
        **boundary_options: Any,
    ) -> None:
        mode = _checks.check_mode(mode)
        terms: Dict[str, nn.Module] = {"dice": DiceLoss(mode) if dice is None else dice,
                                       "focal": FocalLoss(mode, gamma=2.0) if focal is None else focal}
        base = {"dice": _checks.check_number("dice_weight", dice_weight, low=0.0),
                "focal": _checks.check_number("focal_weight", focal_weight, low=0.0)}
        term = _boundary_term(mode, boundary, boundary_options)
        if term is not None:
            terms["boundary"] = term
            base["boundary"] = _checks.check_number("boundary_weight", boundary_weight, low=0.0)
        super().__init__(terms, base)
        self.mode = mode
        self.base_weights = base
        self.schedule = make_schedule(schedule)
        self._apply_schedule()

    def step(self) -> None:
        """Advance the weight schedule by one epoch (call once per epoch)."""
        self.schedule.step()
        self._apply_schedule()

    def _apply_schedule(self) -> None:
        region, boundary = self.schedule.factors()
        self.weights = {name: w * (boundary if name == "boundary" else region) for name, w in self.base_weights.items()}

    def get_extra_state(self) -> Dict[str, Any]:
        return {"schedule": self.schedule.state_dict()}

    def set_extra_state(self, state: Any) -> None:
        self.schedule.load_state_dict(state["schedule"])
        self._apply_schedule()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", schedule={self.schedule!r}"


def boundary_aware_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    distance_map: Optional[Tensor] = None,
    boundary: Optional[str] = DEFAULT_BOUNDARY,
    dice_weight: float = 0.7,
    focal_weight: float = 0.3,
    boundary_weight: float = DEFAULT_BOUNDARY_WEIGHT,
    dice_options: Optional[Mapping[str, object]] = None,
    focal_options: Optional[Mapping[str, object]] = None,
    boundary_options: Optional[Mapping[str, object]] = None,
) -> Tensor:
    """Functional twin of :class:`BoundaryAwareLoss` (constant weights; no schedule state).

    Args:
        input, target: As for :func:`~stableloss.dice_loss`.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        distance_map: The target's signed maps for the boundary term, or None.
        boundary: ``"boundary"``, ``"hausdorff"``, ``"dou"`` or None (the seed recipe).
        dice_weight, focal_weight, boundary_weight: The weights (0.7, 0.3, 100).
        dice_options, focal_options, boundary_options: Keyword options of each term's function
            (focal's default ``gamma=2``; the boundary term's default ``normalize=True``).

    Returns:
        A float32 scalar.

    Example:
        >>> logits, target = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
        >>> round(boundary_aware_loss(logits, target, mode="binary", boundary=None).item(), 4)  # 0.7 D + 0.3 F
        0.2853
    """
    weights = {"dice": _checks.check_number("dice_weight", dice_weight, low=0.0),
               "focal": _checks.check_number("focal_weight", focal_weight, low=0.0)}
    total = weights["dice"] * dice_loss(input, target, mode=mode, **dict(dice_options or {}))
    total = total + weights["focal"] * focal_loss(input, target, mode=mode, **{"gamma": 2.0, **dict(focal_options or {})})
    if boundary is None:
        if boundary_options or distance_map is not None:
            raise TypeError("boundary_options and distance_map need a boundary term; received boundary=None")
        return total
    name = _checks.check_choice("boundary", boundary, tuple(BOUNDARY_TERMS))
    fn = BOUNDARY_TERMS[name][1]
    options = {**DEFAULT_BOUNDARY_OPTIONS[name], **dict(boundary_options or {})}
    extra = {} if name == "dou" else {"distance_map": distance_map}
    if name == "dou" and distance_map is not None:
        raise TypeError("distance_map is not used by boundary='dou' (it needs no distance transform)")
    weight = _checks.check_number("boundary_weight", boundary_weight, low=0.0)
    return total + weight * fn(input, target, mode=mode, **extra, **options)

