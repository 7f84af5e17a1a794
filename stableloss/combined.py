"""Weighted combinations of losses, and the boundary-aware hybrid (region terms + a boundary term)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, Dict, FrozenSet, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from stableloss import _checks

LossFn = Callable[..., Tensor]


def check_weights(terms: Mapping[str, object], weights: object) -> Dict[str, float]:
    """One finite weight >= 0 per term (a mapping by name or a sequence in order), not all 0."""
    if isinstance(weights, Mapping):
        if set(weights) != set(terms):
            raise ValueError(f"weights must name the same terms as terms {sorted(terms)}; received {sorted(weights)}")
        values = [weights[name] for name in terms]
    else:
        values = list(_checks.as_number_tuple("weights", weights))
        if len(values) != len(terms):
            raise ValueError(f"weights must have one entry per term ({len(terms)}); received {len(values)}")
    checked = [_checks.check_number(f"weights[{name!r}]", w, low=0.0) for name, w in zip(terms, values, strict=False)]
    if not math.fsum(checked) > 0:
        raise ValueError(f"weights must not all be 0; received {checked}")
    return dict(zip(terms, checked, strict=False))


def _check_terms(terms: object) -> Dict[str, LossFn]:
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(f"terms must be a non-empty mapping of name -> loss; received {type(terms).__name__} {terms!r}")
    for name, term in terms.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"terms must be keyed by identifier names; received key {name!r}")
        if not callable(term):
            raise TypeError(f"terms[{name!r}] must be callable (input, target) -> loss; received {type(term).__name__}")
    return dict(terms)


def _keywords(term: LossFn) -> Optional[FrozenSet[str]]:
    """The keyword arguments ``term`` takes after ``(input, target)``; None when it takes ``**kwargs``."""
    try:
        parameters = list(inspect.signature(term.forward if isinstance(term, nn.Module) else term).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: no extra keywords
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


class CombinedLoss(nn.Module):
    """A weighted sum of losses: ``sum_k w_k * loss_k(input, target, **extra)``.

    Any callables ``(input, target) -> scalar`` can be combined: stableloss losses, torch losses,
    losses of other libraries. Terms are named so that a training loop can see each one:
    :meth:`components` returns them unweighted, :meth:`combine` weights and adds them (the forward
    is the two together). Extra keyword arguments of the forward (``distance_map=...``) go to the
    terms whose signature takes them.

    Args:
        terms: Mapping of name to loss module or function. Modules are registered as submodules,
            so ``.to()`` and ``state_dict()`` reach them.
        weights: Mapping of the same names to weights >= 0, or a sequence in the order of
            ``terms`` (default: 1 each). ``loss.weights = {...}`` sets them (validated).

    Shape:
        - input, target: whatever every term accepts; output: a float32 scalar.

    Example:
        >>> import torch.nn.functional as F
        >>> from stableloss import DiceLoss
        >>> bce = lambda x, t: F.binary_cross_entropy_with_logits(x.float(), t.float())
        >>> loss = CombinedLoss({"dice": DiceLoss("binary"), "bce": bce}, weights={"dice": 0.5, "bce": 0.5})
        >>> sorted(loss.components(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)))
        ['bce', 'dice']
    """

    def __init__(self, terms: Mapping[str, LossFn], weights: Union[None, Mapping[str, float], Sequence[float]] = None) -> None:
        super().__init__()
        self._terms = _check_terms(terms)
        self.weights = [1.0] * len(self._terms) if weights is None else weights
        self._keywords = {name: _keywords(term) for name, term in self._terms.items()}
        self.losses = nn.ModuleDict({name: t for name, t in self._terms.items() if isinstance(t, nn.Module)})

    @property
    def weights(self) -> Dict[str, float]:
        """The weight of each term, by name (a copy; set the attribute to change them)."""
        return dict(self._weights)

    @weights.setter
    def weights(self, weights: Union[Mapping[str, float], Sequence[float]]) -> None:
        self._weights = check_weights(self._terms, weights)

    def components(self, input: Tensor, target: Tensor, **extra: Any) -> Dict[str, Tensor]:
        """Each term's loss, unweighted, as float32 scalars keyed by name."""
        unused = set(extra) - set().union(*(k if k is not None else set(extra) for k in self._keywords.values()))
        if unused:
            raise TypeError(f"no term of this CombinedLoss takes the keyword argument(s) {sorted(unused)}; "
                            f"terms: {sorted(self._terms)}")
        out = {}
        for name, term in self._terms.items():
            fn = self.losses[name] if name in self.losses else term
            keywords = self._keywords[name]
            value = fn(input, target, **{k: v for k, v in extra.items() if keywords is None or k in keywords})
            if not isinstance(value, Tensor):  # a term that returns a Python number
                value = torch.as_tensor(value, dtype=torch.float32, device=input.device)
            out[name] = value if value.dtype == torch.float64 else value.float()
        return out

    def combine(self, components: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of :meth:`components`' output."""
        values = [self._weights[name] * value for name, value in components.items()]
        if not values:
            raise ValueError("components must hold at least one term's value; received an empty mapping")
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total

    def forward(self, input: Tensor, target: Tensor, **extra: Any) -> Tensor:
        return self.combine(self.components(input, target, **extra))

    def extra_repr(self) -> str:
        return "weights=" + ", ".join(f"{k}={v:g}" for k, v in self._weights.items())
