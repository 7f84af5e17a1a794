"""The options a hybrid's terms share: which term takes which, whether they agree, and how a
shared value reaches every term (:class:`~stableloss.BoundaryAwareLoss` and its functional twin).

An option that two terms of a hybrid both have must mean the same for both: a Dice term that
counts the pixels a boundary term ignores gives a number no single loss defines. The hybrid passes
each shared option to every term that has it and refuses, when it is built, terms that disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Dict, Optional, Tuple

from torch import Tensor, nn

SHARED_OPTIONS = ("ignore_index", "from_logits", "classes", "class_weights", "validate_args")
"""Options a hybrid passes to every term that has them (Dice, Focal, the boundary term), so that the
terms agree on which pixels count, how the input is read and how classes are weighed."""

AGREED_OPTIONS = ("mode", "ignore_index", "from_logits", "classes", "class_weights")
"""Options on which every term that has them must agree (checked when the hybrid is built)."""


def takes(term: object, name: str) -> bool:
    """Whether ``term`` has the option ``name`` (a stableloss loss's spec, or an attribute of another module)."""
    spec = getattr(type(term), "spec", None)
    accepted = getattr(spec, "accepted", None)
    if accepted is not None:
        return name in accepted
    return hasattr(term, name)


def option_value(term: object, name: str) -> object:
    options = getattr(term, "options", None)
    if options is not None and hasattr(options, name):  # a stableloss loss: the exact Python value, not a buffer
        return getattr(options, name)
    value = getattr(term, name)
    if isinstance(value, Tensor):
        return tuple(value.tolist()) if value.dim() else value.item()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def disagree(values: Mapping[str, object]) -> bool:
    """Whether the values differ (``(1, 2) == (1.0, 2.0)``: a foreign module's list equals our tuple)."""
    distinct: list = []
    for value in values.values():
        if not any(value == seen for seen in distinct):
            distinct.append(value)
    return len(distinct) > 1


def split_shared(options: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(shared options, boundary-only options)`` of a hybrid's keyword arguments."""
    shared = {k: v for k, v in options.items() if k in SHARED_OPTIONS}
    return shared, {k: v for k, v in options.items() if k not in SHARED_OPTIONS}


def check_agreement(mode: str, terms: Mapping[str, nn.Module], given: Mapping[str, Any], supplied: Tuple[str, ...]) -> None:
    """Every term has each option the hybrid was given, and all terms that have an option agree on it.

    ``supplied`` names the terms the caller built (``dice=``, ``focal=``, a boundary module): the
    hybrid's options were not passed to those, so a term that lacks a given option, or holds another
    value, is refused here rather than left to disagree at the first batch.
    """
    for name in given:
        lacking = [t for t in terms if not takes(terms[t], name)]
        holders = [type(term) for term in terms.values() if takes(term, name) and hasattr(type(term), "spec")]
        if holders and not disagree({"given": as_tuple(given[name]), "default": option_default(holders[0], name)}):
            continue  # the option's default value: a term without the option computes as if it had it
        if lacking:
            raise TypeError(f"BoundaryAwareLoss was given {name}={given[name]!r}, but the term(s) {lacking} have no "
                            f"{name} option, so they would not honour it; "
                            + ("drop the Focal term (focal_weight=0) or use class_weights" if name == "classes"
                               else "build those terms yourself with an equivalent setting"))
    for name in AGREED_OPTIONS:
        values = {t: option_value(term, name) for t, term in terms.items() if takes(term, name)}
        if name == "mode":
            values = {"BoundaryAwareLoss": mode, **values}
        if disagree(values):
            hint = (f"pass {name}= to BoundaryAwareLoss so that every term gets it" if name != "mode"
                    else "build every term with the hybrid's mode")
            raise ValueError(f"the terms of BoundaryAwareLoss disagree on {name}: "
                             + ", ".join(f"{t}={v!r}" for t, v in values.items())
                             + f" (terms given by the caller: {list(supplied) or 'none'}); {hint}")


def takes_class(cls: Any, name: str) -> bool:
    return name in cls.spec.accepted


def shared_property(name: str) -> property:
    def get(self: Any) -> Any:
        for term in self._terms.values():
            if takes(term, name):
                return getattr(term, name)
        raise AttributeError(f"no term of this BoundaryAwareLoss has the option {name!r}")

    def set_(self: Any, value: Any) -> None:
        holders = [term for term in self._terms.values() if takes(term, name)]
        if not holders:
            raise AttributeError(f"no term of this BoundaryAwareLoss has the option {name!r}; received {name}={value!r}")
        for term in holders:  # validate for every stableloss term first, so that a bad value changes none
            spec = getattr(type(term), "spec", None)
            if spec is not None:
                spec.build({**{f: getattr(term.options, f) for f in spec.accepted}, name: value})  # type: ignore[attr-defined]
        for term in holders:
            setattr(term, name, value)
        check_agreement(self.mode, dict(self.losses), {name: value}, tuple(self._terms))

    return property(get, set_, doc=f"The ``{name}`` option of every term that has it (set on all of them).")


def merge_shared(per_term: Mapping[str, Tuple[Any, Optional[Mapping[str, object]]]],
                  given: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Each term's options with the shared ones added; refuses a term without a given option and disagreement."""
    merged: Dict[str, Dict[str, Any]] = {}
    for term, (cls, own) in per_term.items():
        options = dict(own or {})
        for name, value in given.items():
            if name in options and disagree({"own": as_tuple(options[name]), "given": as_tuple(value)}):
                raise ValueError(f"{term}_options[{name!r}] = {options[name]!r} contradicts {name}={value!r} given to "
                                 "boundary_aware_loss (the shared value goes to every term)")
            if name in cls.spec.accepted:
                options[name] = value
            else:
                raise TypeError(f"boundary_aware_loss was given {name}={value!r}, but the {term} term has no {name} "
                                "option, so it would not honour it; drop the Focal term (focal_weight=0) or use class_weights")
        merged[term] = options
    for name in AGREED_OPTIONS[1:]:
        values = {t: opts.get(name, option_default(per_term[t][0], name)) for t, opts in merged.items()
                  if name in per_term[t][0].spec.accepted}
        if disagree({t: tuple(v) if isinstance(v, list) else v for t, v in values.items()}):
            raise ValueError(f"the terms of boundary_aware_loss disagree on {name}: "
                             + ", ".join(f"{t}={v!r}" for t, v in values.items())
                             + f"; pass {name}= to boundary_aware_loss so that every term gets it")
    return merged


def option_default(cls: Any, name: str) -> object:
    return next(f.default for f in dataclasses.fields(cls.spec.options_type) if f.name == name)


def as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value
