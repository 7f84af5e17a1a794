"""The shell every loss class shares: validated options held as attributes, option tensors as buffers.

A loss class holds one frozen options object (:mod:`stableloss._options`) and exposes each of its
fields as an attribute, as segmentation-models-pytorch users expect (``crit.smooth``,
``crit.alpha``, ``crit.classes``, ...). Setting one builds a new options object, so the value is
validated on the spot (or the set raises); setting an option the loss fixes (``DiceLoss().alpha``)
raises. Per-class options are also kept as tensors, as non-persistent buffers so that ``.to()``
moves them, and they stay float32 (``classes``: int64) whatever dtype the module is cast to:
``module.to(torch.bfloat16)`` would otherwise round a weight of 0.3 to 0.3008.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from stableloss._options import OptionSpec

TENSOR_OPTIONS: Dict[str, torch.dtype] = {"classes": torch.long, "class_weights": torch.float32, "alpha": torch.float32,
                                          "weight": torch.float32, "pos_weight": torch.float32}
"""Options that the forward pass needs as tensors, and the dtype each keeps (soft BCE's ``weight`` and
``pos_weight`` are nested tuples of any shape)."""


def _buffer_name(option: str) -> str:
    return f"{option}_tensor"


class OptionsModule(nn.Module):
    """Base of the loss classes: ``self.options`` plus one validated attribute per option.

    Subclasses set :attr:`spec` (which options the loss takes and fixes) and call
    ``super().__init__(**options)`` with every option value.
    """

    spec: ClassVar[OptionSpec]
    positional: ClassVar[Tuple[str, ...]] = ("mode",)
    """The options a caller may pass by position, in segmentation-models-pytorch's order."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        spec = cls.spec = dataclasses.replace(spec, owner=cls.__name__)  # messages name the class
        for name in spec.accepted:
            setattr(cls, name, property(_getter(name), _setter(name), doc=f"The ``{name}`` option (validated on set)."))
        for name, value in spec.fixed.items():
            setattr(cls, name, property(_constant(value), _refuse(name, spec)))
        if "__init__" not in cls.__dict__:  # show the real signature in help() and IDEs that read it
            def __init__(self: OptionsModule, *args: Any, **options: Any) -> None:
                OptionsModule.__init__(self, *args, **options)

            __init__.__signature__ = spec.class_signature(cls.positional)  # type: ignore[attr-defined]
            __init__.__doc__ = cls.__doc__
            cls.__init__ = __init__  # type: ignore[method-assign]

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__()
        if len(args) > len(self.positional):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.positional)} positional arguments "
                            f"({', '.join(self.positional)}); received {len(args)}")
        for name, value in zip(self.positional, args, strict=False):
            if name in options:
                raise TypeError(f"{type(self).__name__} got multiple values for argument {name!r}")
            options[name] = value
        self._option_device = torch.device("cpu")
        self._install(self.spec.build(options))

    @property
    def options(self) -> Any:
        """The validated, frozen options object (:class:`~stableloss._options.RegionOptions` or
        :class:`~stableloss._options.FocalOptions`)."""
        return self._options

    def option_tensor(self, name: str) -> Optional[Tensor]:
        """The buffer of a per-class option (``classes``, ``class_weights``, ``alpha``), or None."""
        return self._buffers.get(_buffer_name(name))

    def _install(self, options: Any) -> None:
        """Hold ``options`` and rebuild the option buffers from its (exact, Python) values."""
        self._options = options
        for name, dtype in TENSOR_OPTIONS.items():
            if not hasattr(options, name):
                continue
            value = getattr(options, name)
            tensor = torch.tensor(value, dtype=dtype, device=self._option_device) if isinstance(value, tuple) else None
            self.register_buffer(_buffer_name(name), tensor, persistent=False)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "OptionsModule":
        # Follow the module's device, but rebuild the option tensors in their own dtype from the
        # exact option values (a float32 -> bfloat16 -> float32 round trip would change them).
        super()._apply(fn, *args, **kwargs)
        self._option_device = fn(torch.zeros(())).device
        self._install(self._options)
        return self

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self._options, name)!r}" for name in self.spec.accepted)


def _getter(name: str):
    def get(self: OptionsModule) -> Any:
        value = getattr(self._options, name)
        if name in TENSOR_OPTIONS and isinstance(value, tuple):
            return self.option_tensor(name)
        return value

    return get


def _setter(name: str):
    def set_(self: OptionsModule, value: Any) -> None:
        changes = {f: getattr(self._options, f) for f in self.spec.accepted}
        changes[name] = value
        self._install(self.spec.build(changes))

    return set_


def _constant(value: Any):
    def get(self: OptionsModule) -> Any:
        return value

    return get


def _refuse(name: str, spec: OptionSpec):
    def set_(self: OptionsModule, value: Any) -> None:
        raise AttributeError(f"{spec.owner} fixes {name} = {spec.fixed[name]!r} ({spec.hint}); received {name}={value!r}")

    return set_
