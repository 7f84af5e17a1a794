"""The options as type checkers see them: held equal to the run-time option specs, and checked by mypy and pyright.

Each loss's options have a run-time view (the option dataclass, the ``OptionSpec`` built from it, the
signature and the attributes ``OptionsModule`` makes) and a static one (:mod:`stableloss._typing`:
the ``**options: Unpack[...]`` TypedDicts, the positional parameters each class spells out for type
checkers, and the option attributes). The first tests hold the two equal without a type checker, and
pin the run-time signatures; the last ones run ``mypy --strict`` and pyright on
``tests/typing_snippets/`` (every documented call accepted; every unknown or wrongly typed option
refused, naming it) and skip when a checker is not installed (the ``test`` extra installs both).
"""

import ast
import dataclasses
import importlib.util
import inspect
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union, get_args, get_origin, get_type_hints

import pytest
from torch import Tensor

import stableloss as sl
from stableloss import _typing
from stableloss._module import TENSOR_OPTIONS, OptionsModule
from stableloss._options import BoundaryOptions, FocalOptions, OptionSpec, RegionOptions
from stableloss._smp_options import WeightValues
from stableloss.hybrid import BOUNDARY_TERMS, SHARED_OPTIONS

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = Path(__file__).resolve().parent / "typing_snippets"
ACCEPTED, REJECTED = SNIPPETS / "accepted.py", SNIPPETS / "rejected.py"

LOSS_CLASSES = [getattr(sl, n) for n in sl.__all__ if isinstance(getattr(sl, n), type) and issubclass(getattr(sl, n), OptionsModule)]
OPTION_FUNCTIONS = [getattr(sl, n) for n in sl.__all__ if n.endswith("_loss") and n != "boundary_aware_loss"]
PUBLIC_LOSSES = [n for n in sl.__all__ if n.endswith(("Loss", "_loss"))]

PINNED_SIGNATURES = {
    'BoundaryAwareLoss': (
        "(mode: 'str', boundary: 'Union[None, str, nn.Module]' = 'dou', *, dice: 'Optional[nn.Module]' = None, "
        "focal: 'Optional[nn.Module]' = None, dice_weight: 'Optional[float]' = None, "
        "focal_weight: 'Optional[float]' = None, boundary_weight: 'Optional[float]' = None, schedule: 'object' = None, "
        "**options: 'Any') -> 'None'"
    ),
    'BoundaryAwareLoss.__init__': (
        "(self, mode: 'str', boundary: 'Union[None, str, nn.Module]' = 'dou', *, dice: 'Optional[nn.Module]' = None, "
        "focal: 'Optional[nn.Module]' = None, dice_weight: 'Optional[float]' = None, "
        "focal_weight: 'Optional[float]' = None, boundary_weight: 'Optional[float]' = None, schedule: 'object' = None, "
        "**options: 'Any') -> 'None'"
    ),
    'BoundaryDoULoss': (
        '(mode, *, classes=None, from_logits=True, ignore_index=None, alpha_max=0.8, smooth=1e-05, ignore_empty=True, '
        "class_weights=None, reduction='mean', validate_args=True) -> None"
    ),
    'BoundaryDoULoss.__init__': (
        '(self, mode, *, classes=None, from_logits=True, ignore_index=None, alpha_max=0.8, smooth=1e-05, '
        "ignore_empty=True, class_weights=None, reduction='mean', validate_args=True) -> None"
    ),
    'BoundaryLoss': (
        "(mode, *, classes=None, from_logits=True, ignore_index=None, spacing=None, no_surface='bound', "
        "normalize=False, inside_shift=0.0, class_weights=None, reduction='mean', backend='auto', "
        'validate_args=True) -> None'
    ),
    'BoundaryLoss.__init__': (
        "(self, mode, *, classes=None, from_logits=True, ignore_index=None, spacing=None, no_surface='bound', "
        "normalize=False, inside_shift=0.0, class_weights=None, reduction='mean', backend='auto', "
        'validate_args=True) -> None'
    ),
    'CombinedLoss': "(terms: 'Mapping[str, LossFn]', weights: 'Union[None, Mapping[str, float], Sequence[float]]' = None) -> 'None'",
    'CombinedLoss.__init__': (
        "(self, terms: 'Mapping[str, LossFn]', weights: 'Union[None, Mapping[str, float], "
        "Sequence[float]]' = None) -> 'None'"
    ),
    'DiceLoss': (
        '(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, *, '
        "class_weights=None, per_image=False, ignore_empty=True, global_batch=False, reduction='mean', "
        'validate_args=True, fused=None) -> None'
    ),
    'DiceLoss.__init__': (
        '(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, *, '
        "class_weights=None, per_image=False, ignore_empty=True, global_batch=False, reduction='mean', "
        'validate_args=True, fused=None) -> None'
    ),
    'FocalLoss': (
        "(mode, alpha=None, gamma=2.0, ignore_index=None, from_logits=True, eps=1e-07, reduction='mean', "
        "normalized=False, reduced_threshold=None, *, class_weights=None, multiclass_activation='softmax', "
        'validate_args=True, fused=None) -> None'
    ),
    'FocalLoss.__init__': (
        "(self, mode, alpha=None, gamma=2.0, ignore_index=None, from_logits=True, eps=1e-07, reduction='mean', "
        "normalized=False, reduced_threshold=None, *, class_weights=None, multiclass_activation='softmax', "
        'validate_args=True, fused=None) -> None'
    ),
    'HausdorffDTLoss': (
        "(mode, alpha=2.0, *, classes=None, from_logits=True, ignore_index=None, spacing=None, no_surface='bound', "
        "normalize=False, threshold=0.5, class_weights=None, reduction='mean', backend='auto', "
        'validate_args=True) -> None'
    ),
    'HausdorffDTLoss.__init__': (
        '(self, mode, alpha=2.0, *, classes=None, from_logits=True, ignore_index=None, spacing=None, '
        "no_surface='bound', normalize=False, threshold=0.5, class_weights=None, reduction='mean', backend='auto', "
        'validate_args=True) -> None'
    ),
    'JaccardLoss': (
        '(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, *, '
        "class_weights=None, per_image=False, ignore_empty=True, global_batch=False, reduction='mean', "
        'validate_args=True, fused=None) -> None'
    ),
    'JaccardLoss.__init__': (
        '(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, *, '
        "class_weights=None, per_image=False, ignore_empty=True, global_batch=False, reduction='mean', "
        'validate_args=True, fused=None) -> None'
    ),
    'LogCoshDiceLoss': (
        '(mode, classes=None, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, *, class_weights=None, '
        "per_image=False, ignore_empty=True, global_batch=False, reduction='mean', validate_args=True, "
        'fused=None) -> None'
    ),
    'LogCoshDiceLoss.__init__': (
        '(self, mode, classes=None, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, *, class_weights=None, '
        "per_image=False, ignore_empty=True, global_batch=False, reduction='mean', validate_args=True, "
        'fused=None) -> None'
    ),
    'TverskyLoss': (
        '(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, alpha=0.5, '
        'beta=0.5, gamma=1.0, *, class_weights=None, per_image=False, ignore_empty=True, global_batch=False, '
        "reduction='mean', validate_args=True, fused=None) -> None"
    ),
    'TverskyLoss.__init__': (
        '(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None, eps=1e-07, '
        'alpha=0.5, beta=0.5, gamma=1.0, *, class_weights=None, per_image=False, ignore_empty=True, '
        "global_batch=False, reduction='mean', validate_args=True, fused=None) -> None"
    ),
    'boundary_aware_loss': (
        "(input: 'Tensor', target: 'Tensor', *, mode: 'str', distance_map: 'Optional[Tensor]' = None, "
        "boundary: 'Optional[str]' = 'dou', dice_weight: 'Optional[float]' = None, "
        "focal_weight: 'Optional[float]' = None, boundary_weight: 'Optional[float]' = None, "
        "dice_options: 'Optional[Mapping[str, object]]' = None, focal_options: 'Optional[Mapping[str, "
        "object]]' = None, boundary_options: 'Optional[Mapping[str, object]]' = None, "
        "ignore_index: 'Optional[int]' = None, from_logits: 'Optional[bool]' = None, "
        "classes: 'Optional[Sequence[int]]' = None, class_weights: 'Optional[Sequence[float]]' = None, "
        "validate_args: 'Optional[bool]' = None) -> 'Tensor'"
    ),
    'boundary_dou_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, classes=None, from_logits=True, ignore_index=None, '
        "alpha_max=0.8, smooth=1e-05, ignore_empty=True, class_weights=None, reduction='mean', "
        'validate_args=True) -> torch.Tensor'
    ),
    'boundary_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, distance_map=None, classes=None, from_logits=True, '
        "ignore_index=None, spacing=None, no_surface='bound', normalize=False, inside_shift=0.0, class_weights=None, "
        "reduction='mean', backend='auto', validate_args=True) -> torch.Tensor"
    ),
    'dice_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, classes=None, log_loss=False, from_logits=True, '
        'smooth=0.0, ignore_index=None, eps=1e-07, class_weights=None, per_image=False, ignore_empty=True, '
        "global_batch=False, reduction='mean', validate_args=True, fused=None) -> torch.Tensor"
    ),
    'focal_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, alpha=None, gamma=2.0, ignore_index=None, '
        "from_logits=True, eps=1e-07, reduction='mean', normalized=False, reduced_threshold=None, class_weights=None, "
        "multiclass_activation='softmax', validate_args=True, fused=None) -> torch.Tensor"
    ),
    'hausdorff_dt_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, distance_map=None, classes=None, from_logits=True, '
        "ignore_index=None, spacing=None, no_surface='bound', normalize=False, alpha=2.0, threshold=0.5, "
        "class_weights=None, reduction='mean', backend='auto', validate_args=True) -> torch.Tensor"
    ),
    'jaccard_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, classes=None, log_loss=False, from_logits=True, '
        'smooth=0.0, ignore_index=None, eps=1e-07, class_weights=None, per_image=False, ignore_empty=True, '
        "global_batch=False, reduction='mean', validate_args=True, fused=None) -> torch.Tensor"
    ),
    'log_cosh_dice_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, classes=None, from_logits=True, smooth=0.0, '
        'ignore_index=None, eps=1e-07, class_weights=None, per_image=False, ignore_empty=True, global_batch=False, '
        "reduction='mean', validate_args=True, fused=None) -> torch.Tensor"
    ),
    'tversky_loss': (
        '(input: torch.Tensor, target: torch.Tensor, *, mode, classes=None, log_loss=False, from_logits=True, '
        'smooth=0.0, ignore_index=None, eps=1e-07, alpha=0.5, beta=0.5, gamma=1.0, class_weights=None, '
        "per_image=False, ignore_empty=True, global_batch=False, reduction='mean', validate_args=True, "
        'fused=None) -> torch.Tensor'
    ),
}
"""``str(inspect.signature(...))`` of every public loss before the static view was added (help(), IDEs
that read the run-time signature and the docs show these)."""

ANNOTATION_UPGRADE = ("**options: 'Any'", "**options: 'Unpack[BoundaryAwareKwargs]'")
"""The one run-time change: BoundaryAwareLoss's ``**options`` now carries its TypedDict (names, kinds,
defaults and every other annotation as pinned)."""


class _Unpack:
    """Stands for ``typing_extensions.Unpack`` when a declaration for type checkers is evaluated here."""

    def __class_getitem__(cls, item: Any) -> Tuple[str, Any]:
        return ("Unpack", item)


def keyword_type(annotation: Any) -> Any:
    """What a caller may pass for an option field of this type: a per-class tuple widens to a sequence, tensor or array."""
    if annotation == Tuple[int, ...]:
        return _typing.IntSequence
    if annotation == Tuple[float, ...]:
        return _typing.FloatSequence
    if annotation == WeightValues:  # soft BCE's broadcast weights, of any shape
        return _typing.WeightLike
    if get_origin(annotation) is Union:
        return Union[tuple(keyword_type(arg) for arg in get_args(annotation))]
    return annotation


def attribute_type(name: str, annotation: Any) -> Any:
    """What reading the option attribute gives: the per-class options come back as their buffer."""
    if name not in TENSOR_OPTIONS:
        return annotation
    if get_origin(annotation) is Union:
        return Union[tuple(Tensor if get_origin(arg) is tuple else arg for arg in get_args(annotation))]
    return Tensor if get_origin(annotation) is tuple else annotation


def fields_of(options_type: type) -> Dict[str, Any]:
    return get_type_hints(options_type)


def defaults_of(options_type: type) -> Dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(options_type) if f.default is not dataclasses.MISSING}


def kwargs_of(annotation: str) -> Any:
    """The TypedDict of a ``**options: 'Unpack[Name]'`` annotation (a string: the modules use postponed annotations)."""
    match = re.fullmatch(r"Unpack\[(\w+)\]", annotation)
    assert match, f"**options is annotated {annotation!r}, not Unpack[<a TypedDict of stableloss._typing>]"
    return getattr(_typing, match.group(1))


def spec_of(function: Any) -> OptionSpec:
    module = sys.modules[function.__module__]
    [spec] = [v for v in vars(module).values() if isinstance(v, OptionSpec) and v.owner == f"{function.__name__}()"]
    return spec


def _evaluate(annotation: Any, module: Any) -> Any:
    return eval(annotation, {**vars(module), "Unpack": _Unpack}) if isinstance(annotation, str) else annotation


def static_keywords(function: Any) -> Dict[str, Any]:
    """The keyword-only parameters type checkers see: the explicit ones and the keys of ``**options: Unpack[...]``."""
    module = sys.modules[function.__module__]
    code = function.__code__
    explicit = code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]
    keywords = {name: _evaluate(function.__annotations__[name], module) for name in explicit}
    if code.co_flags & inspect.CO_VARKEYWORDS:
        kwargs = kwargs_of(function.__annotations__[code.co_varnames[code.co_argcount + code.co_kwonlyargcount]])
        assert kwargs.__required_keys__ == frozenset()
        keywords.update(get_type_hints(kwargs))
    return keywords


def static_init(cls: type) -> inspect.Signature:
    """The ``__init__`` a loss class declares under ``if TYPE_CHECKING:``, evaluated in its module."""
    module = sys.modules[cls.__module__]
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    inits = [node for branch in ast.walk(tree) if isinstance(branch, ast.If) and ast.unparse(branch.test) == "TYPE_CHECKING"
             for node in branch.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
    if len(inits) != 1:
        pytest.fail(f"{cls.__name__} must declare its __init__ for type checkers once, under `if TYPE_CHECKING:` "
                    "(its run-time __init__ takes *args, **options)")
    [init] = inits
    namespace = {**vars(module), "Unpack": _Unpack}
    exec(compile(ast.Module(body=[init], type_ignores=[]), str(module.__file__), "exec"), namespace)
    return inspect.signature(namespace["__init__"])


def static_attributes(cls: type) -> type:
    """The attribute class a loss inherits for type checkers only (imported under TYPE_CHECKING, ``object`` at run time)."""
    module = sys.modules[cls.__module__]
    tree = ast.parse(inspect.getsource(module))
    aliases = {alias.asname: alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module == "stableloss._typing" for alias in node.names if alias.asname}
    [classdef] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == cls.__name__]
    names = [aliases[base.id] for base in classdef.bases if isinstance(base, ast.Name) and base.id in aliases]
    if len(names) != 1:
        pytest.fail(f"{cls.__name__} must inherit one attribute class of stableloss._typing for type checkers "
                    "(imported under `if TYPE_CHECKING:`, object at run time)")
    [name] = names
    attributes = getattr(_typing, name)
    assert attributes not in cls.__mro__, "the attribute declarations must not reach the run-time class"
    return attributes


def declared_attributes(attributes: type) -> Dict[str, Tuple[Any, Optional[Any]]]:
    """``name -> (type read, type a set takes, or None when read-only)`` of an attribute class."""
    declared: Dict[str, Tuple[Any, Optional[Any]]] = {name: (hint, hint) for name, hint in get_type_hints(attributes).items()}
    for name in dir(attributes):
        member = inspect.getattr_static(attributes, name)
        if isinstance(member, property):
            assert name not in declared, f"{name} is declared twice"
            declared[name] = (get_type_hints(member.fget)["return"],
                              get_type_hints(member.fset)["value"] if member.fset is not None else None)
    return declared


def test_runtime_signatures_are_unchanged():
    for key, pinned in PINNED_SIGNATURES.items():
        name, _, attribute = key.partition(".")
        obj = getattr(sl, name)
        expected = pinned.replace(*ANNOTATION_UPGRADE) if name == "BoundaryAwareLoss" else pinned
        assert str(inspect.signature(getattr(obj, attribute) if attribute else obj)) == expected, key


@pytest.mark.parametrize("function", OPTION_FUNCTIONS, ids=lambda f: f.__name__)
def test_function_keywords_are_the_option_spec(function):
    spec = spec_of(function)
    fields, defaults = fields_of(spec.options_type), defaults_of(spec.options_type)
    keywords = static_keywords(function)
    assert set(spec.accepted) <= set(keywords), f"not visible to type checkers: {set(spec.accepted) - set(keywords)}"
    assert not (set(keywords) - set(spec.accepted)) & set(fields), "a fixed or excluded option is visible"
    for name in spec.accepted:
        assert keywords[name] == keyword_type(fields[name]), name
    runtime = {p.name: p for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert set(runtime) == set(keywords)
    for name in spec.accepted:
        assert runtime[name].default == defaults.get(name, inspect.Parameter.empty), name


@pytest.mark.parametrize("cls", LOSS_CLASSES, ids=lambda c: c.__name__)
def test_class_signature_for_type_checkers_is_the_option_spec(cls):
    spec = cls.spec
    fields, defaults = fields_of(spec.options_type), defaults_of(spec.options_type)
    *positional, options = list(static_init(cls).parameters.values())[1:]
    assert [p.name for p in positional] == list(cls.positional)
    for p in positional:
        assert p.kind is p.POSITIONAL_OR_KEYWORD, p.name
        assert p.default == defaults.get(p.name, p.empty), p.name  # mode has no default
        assert p.annotation == keyword_type(fields[p.name]), p.name
    assert options.kind is options.VAR_KEYWORD and options.annotation[0] == "Unpack"
    kwargs = options.annotation[1]
    assert kwargs.__required_keys__ == frozenset()
    assert set(kwargs.__optional_keys__) == set(spec.accepted) - set(cls.positional)
    hints = get_type_hints(kwargs)
    for name in kwargs.__optional_keys__:
        assert hints[name] == keyword_type(fields[name]), name
    runtime = list(inspect.signature(cls).parameters.values())
    assert [(p.name, p.kind, p.default) for p in runtime if p.kind is p.POSITIONAL_OR_KEYWORD] == [
        (p.name, p.kind, p.default) for p in positional]
    assert {p.name for p in runtime if p.kind is p.KEYWORD_ONLY} == set(kwargs.__optional_keys__)


@pytest.mark.parametrize("cls", LOSS_CLASSES, ids=lambda c: c.__name__)
def test_class_attributes_for_type_checkers_are_the_option_spec(cls):
    spec = cls.spec
    fields = fields_of(spec.options_type)
    declared = declared_attributes(static_attributes(cls))
    assert set(declared) == set(spec.accepted) | set(spec.fixed)
    for name, (read, write) in declared.items():
        assert read == attribute_type(name, fields[name]), name
        assert write == (None if name in spec.fixed else keyword_type(fields[name])), name
        assert isinstance(inspect.getattr_static(cls, name), property), name  # the run-time attribute it declares


def test_boundary_aware_options_are_its_terms_options():
    kwargs = kwargs_of(sl.BoundaryAwareLoss.__init__.__annotations__["options"])
    boundary_options = set().union(*(cls.spec.accepted for cls, _ in BOUNDARY_TERMS.values()))
    assert kwargs.__required_keys__ == frozenset()
    assert set(kwargs.__optional_keys__) == (set(SHARED_OPTIONS) | boundary_options) - {"mode"}
    hints = get_type_hints(kwargs)
    for name in kwargs.__optional_keys__:
        assert hints[name] == keyword_type(fields_of(BoundaryOptions)[name]), name
    declared = declared_attributes(static_attributes(sl.BoundaryAwareLoss))
    assert set(declared) == set(SHARED_OPTIONS)
    for name in SHARED_OPTIONS:  # one type fits every term that has the option
        for options_type in (RegionOptions, FocalOptions, BoundaryOptions):
            field = fields_of(options_type).get(name)
            if field is not None:
                assert hints[name] == keyword_type(field), (name, options_type)
                assert declared[name] == (attribute_type(name, field), keyword_type(field)), (name, options_type)
        assert isinstance(inspect.getattr_static(sl.BoundaryAwareLoss, name), property), name


# The type checkers, on user-side code.

MARK = re.compile(r"#\s*rejects:\s*(\w+)\s*$")
ATTRIBUTE_SET = re.compile(r"^\w+\(.*\)\.(\w+) = ")


def marked_lines() -> Dict[int, Tuple[str, str]]:
    """``line number -> (code, option)`` of the lines of the rejected snippet that end in ``# rejects: option``."""
    lines = REJECTED.read_text().splitlines()
    return {number: (line.split("#")[0].strip(), match.group(1))
            for number, line in enumerate(lines, start=1) if (match := MARK.search(line))}


def _find(*names: str) -> Optional[str]:
    for name in names:
        beside = Path(sys.executable).with_name(name)  # the venv's scripts, also when it is not on PATH
        found = str(beside) if beside.is_file() else shutil.which(name)
        if found:
            return found
    return None


def _copy_snippets(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for path in (ACCEPTED, REJECTED):
        shutil.copy(path, directory / path.name)


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory) -> Dict[str, Dict[int, List[str]]]:
    """``file name -> line -> messages`` of ``mypy --strict`` on the snippets, as a user's project would see the package."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install '.[test]')")
    work = tmp_path_factory.mktemp("mypy")
    _copy_snippets(work)
    (work / "mypy.ini").write_text("[mypy]\n")  # the user's settings, not this repository's
    command = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary", "--config-file",
               "mypy.ini", "--cache-dir", str(work / "cache"), ACCEPTED.name, REJECTED.name]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MYPYPATH": str(ROOT)})
    assert result.returncode in (0, 1), result.stdout + result.stderr
    errors: Dict[str, Dict[int, List[str]]] = {ACCEPTED.name: {}, REJECTED.name: {}}
    for line in result.stdout.splitlines():
        match = re.match(r"(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)$", line)
        if match:
            errors[match["file"]].setdefault(int(match["line"]), []).append(match["message"])
    return errors


@pytest.fixture(scope="module")
def pyright_errors(tmp_path_factory) -> Dict[str, Dict[int, List[str]]]:
    """The same for pyright in strict mode (basedpyright, whose wheel carries node, or pyright)."""
    executable = _find("basedpyright", "pyright")
    if executable is None:
        pytest.skip("neither basedpyright nor pyright is installed (pip install '.[test]')")
    work = tmp_path_factory.mktemp("pyright")
    _copy_snippets(work)
    config = {"include": [ACCEPTED.name, REJECTED.name], "extraPaths": [str(ROOT)], "typeCheckingMode": "strict"}
    (work / "pyrightconfig.json").write_text(json.dumps(config))
    result = subprocess.run([executable, "--outputjson", "--pythonpath", sys.executable], cwd=work, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    errors: Dict[str, Dict[int, List[str]]] = {ACCEPTED.name: {}, REJECTED.name: {}}
    for diagnostic in json.loads(result.stdout)["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            line = diagnostic["range"]["start"]["line"] + 1
            errors[Path(diagnostic["file"]).name].setdefault(line, []).append(diagnostic["message"])
    return errors


@pytest.mark.parametrize("checker", ["mypy_errors", "pyright_errors"])
def test_type_checkers_accept_the_documented_calls(checker, request):
    errors = request.getfixturevalue(checker)[ACCEPTED.name]
    assert errors == {}, "\n".join(f"accepted.py:{line}: {messages}" for line, messages in errors.items())


@pytest.mark.parametrize("checker", ["mypy_errors", "pyright_errors"])
def test_type_checkers_reject_each_wrong_option_by_name(checker, request):
    errors = request.getfixturevalue(checker)[REJECTED.name]
    marked = marked_lines()
    assert set(errors) - set(marked) == set(), "errors on lines that are not marked"
    for number, (code, option) in marked.items():
        messages = errors.get(number, [])
        assert messages, f"rejected.py:{number}: no error for {code}"
        # mypy names the types, not the attribute, for a set of the wrong type: the error is enough there
        named = any(f'"{option}"' in message for message in messages)
        assert named or (checker == "mypy_errors" and ATTRIBUTE_SET.match(code)), f"rejected.py:{number}: {messages}"


def _options_of(obj: Any) -> set:
    """The option names ``obj`` takes: its signature's parameters, and the keys of an ``Unpack[...]`` ``**options``."""
    names = set()
    for parameter in inspect.signature(obj).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            names |= set(kwargs_of(parameter.annotation).__optional_keys__)
        else:
            names.add(parameter.name)
    return names


def test_rejected_snippet_covers_every_public_loss() -> None:
    kinds: Dict[str, set] = {name: set() for name in PUBLIC_LOSSES}
    for code, option in marked_lines().values():
        callee = code.split("(", 1)[0]
        if ATTRIBUTE_SET.match(code):
            kinds[callee].add("attribute")
        else:
            kinds[callee].add("wrong type" if option in _options_of(getattr(sl, callee)) else "unknown")
    for name, found in kinds.items():
        expected = {"unknown", "wrong type"}
        if isinstance(getattr(sl, name), type) and name != "CombinedLoss":
            expected.add("attribute")
        assert expected <= found, f"{name}: the rejected snippet has no line of kind {sorted(expected - found)}"


def test_accepted_snippet_runs():
    runpy.run_path(str(ACCEPTED))  # every documented call in it is a real one


def test_each_rejected_line_fails_at_run_time_naming_the_option() -> None:
    lines = REJECTED.read_text().splitlines()
    marked = marked_lines()
    namespace: Dict[str, Any] = {}
    exec("\n".join(lines[:min(marked) - 1]), namespace)  # the imports and inputs above the first marked line
    for number, (code, option) in marked.items():
        with pytest.raises((TypeError, ValueError, AttributeError)) as raised:
            exec(code, namespace)
        assert option in str(raised.value), f"rejected.py:{number}: {raised.value}"
