"""Sphinx configuration of the stableloss documentation site.

Build it (from the repository root, after ``pip install ".[docs]"``)::

    sphinx-build -W --keep-going -n -b html docs docs/_build/html

``-W`` turns every warning into an error and ``-n`` (nitpicky) makes every cross-reference that
does not resolve a warning, so the build fails on a broken reference; ``.ci/run`` runs this command.

Offline by design: CI and the development machines reach PyPI only, so nothing may be downloaded
while the site is built.

- Cross-references to Python, PyTorch and NumPy (intersphinx) resolve against the small inventory
  files committed in ``docs/_inventories/`` (``python.inv``, ``torch.inv``, ``numpy.inv``), never
  against the projects' ``objects.inv`` on the web. ``docs/_inventories/make_inventories.py`` writes
  them from a reviewed list of the names our docstrings and signatures use, each with its page on the
  official site (docs.python.org/3, pytorch.org/docs/stable, numpy.org/doc/stable), in Sphinx's
  inventory format version 2, and reads each file back with Sphinx's own inventory reader. A name
  missing from them shows up as a nitpicky warning, so the build says when the list needs a line.
  The links in the built pages point at the official sites, as with downloaded inventories.
- Formulas (the docstrings' ``.. math::``) are rendered by MathJax in the reader's browser: the
  build writes a ``<script>`` tag that loads MathJax from its CDN when a page is viewed, and
  downloads nothing itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # document the checkout being built, not another installed copy

import stableloss  # noqa: E402

project = "stableloss"
author = "the stableloss authors"
copyright = "the stableloss authors, MIT licence"
release = stableloss.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_inventories",
    "_templates",
    # Written by `python bench/gpu_evidence.py --out docs/gpu-evidence.json` on a GPU machine: a
    # measurement report, linked from the benchmarks page as a file rather than built as a page.
    "gpu-evidence.md",
]

# Markdown pages (MyST): `$...$` stays literal text (the pages use it in shell transcripts), heading
# anchors for in-page links like [x](#comparing-losses), and ```{eval-rst} for autosummary tables.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 4

# API reference: autosummary writes one page per public name (docs/api/ is generated, not committed).
autosummary_generate = True
autosummary_imported_members = True
templates_path = ["_templates"]  # autosummary: one page per name, its own members only (not nn.Module's)
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = False  # torch.nn.Module's own docstrings (forward, ...) are not ours to render
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(HERE / "_inventories" / "python.inv")),
    "torch": ("https://pytorch.org/docs/stable", str(HERE / "_inventories" / "torch.inv")),
    "numpy": ("https://numpy.org/doc/stable", str(HERE / "_inventories" / "numpy.inv")),
}
intersphinx_timeout = 1

nitpicky = True
nitpick_ignore = [
    # The strategies' return type. Hypothesis is not one of the three projects we link to, and its
    # reference pages were reorganised in 2025: no anchor we could commit with confidence.
    ("py:class", "hypothesis.strategies.SearchStrategy"),
]

# Names autodoc writes by their defining module (or, for an annotation it could not evaluate, as
# written in the source), resolved as the public name they are documented under.
PUBLIC_ALIASES = {"torch.nn.modules.module.Module": "torch.nn.Module", "nn.Module": "torch.nn.Module"}

html_theme = "furo"
html_title = f"stableloss {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# MathJax: Sphinx's default `mathjax_path` (MathJax from its CDN, loaded by the browser at view time);
# the build itself downloads nothing. Set it to a local copy to read the site offline.

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _public_bases(app, name, obj, options, bases: list) -> None:
    """Show a class's nearest public bases: ``torch.nn.Module`` for our private module mix-ins.

    autodoc writes a base as its defining module, so ``DiceLoss`` would read "Bases:
    stableloss._region.RegionLossModule" (a private class, not in the reference) and torch's module
    as ``torch.nn.modules.module.Module`` (documented as ``torch.nn.Module``).
    """
    import torch

    def public(cls: type) -> type:
        for candidate in cls.__mro__:
            if not any(part.startswith("_") for part in candidate.__module__.split(".")):
                return candidate
        return object

    resolved = []
    for base in bases:
        base = public(base)
        if base not in resolved:
            resolved.append(base)
    bases[:] = ["torch.nn.Module" if base is torch.nn.Module else base for base in resolved]


def _public_alias(app, env, node, contnode):
    """Resolve a private spelling of an outside name (``PUBLIC_ALIASES``) through intersphinx."""
    target = node.get("reftarget")
    if target in _private_typing_names():
        # ``**options: Unpack[DiceKwargs]``: the TypedDicts of the private module stableloss._typing
        # exist for type checkers; each loss's Args list the same options, so the name stays unlinked.
        return contnode
    if target not in PUBLIC_ALIASES:
        return None
    from sphinx.ext.intersphinx import missing_reference

    node["reftarget"] = PUBLIC_ALIASES[target]
    return missing_reference(app, env, node, contnode)


def _private_typing_names() -> set[str]:
    try:
        import stableloss._typing as typing_module
    except ImportError:
        return set()
    return {name for name in vars(typing_module) if name.endswith("Kwargs")} | {
        f"stableloss._typing.{name}" for name in vars(typing_module) if name.endswith("Kwargs")}


def _constant_docstring(app, what, name, obj, options, lines: list) -> None:
    """Give a re-exported constant the docstring written under it where it is defined.

    ``stableloss.testing.CONTEXTS`` is defined in a private module; documented under its public
    name, autodoc finds no comment there and would show the docstring of ``dict`` instead.
    """
    if what not in ("data", "attribute") or not name.startswith("stableloss."):
        return
    from sphinx.pycode import ModuleAnalyzer

    attr = name.rsplit(".", 1)[1]
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith("stableloss.") or getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a module without source (compiled, or built at run time)
            continue
        if ("", attr) in docs:
            lines[:] = list(docs[("", attr)])
            return


def _napoleon_without_inline_types(app, what, name, obj, options, lines: list) -> None:
    """Napoleon, except that a constant's or property's first line is never read as ``type: text``.

    For attributes, napoleon takes ``"Default sizes: the quick ones ..."`` as the type "Default
    sizes" (a cross-reference that cannot resolve). Our types come from annotations, never from the
    docstring, and "Label: explanation" is how this project writes a constant's docstring, so those
    docstrings are parsed as plain Google-style text (sections like ``Args:`` still work).
    """
    from sphinx.ext.napoleon import _process_docstring

    _process_docstring(app, "function" if what in ("data", "attribute", "property") else what, name, obj, options, lines)


def setup(app) -> None:
    from sphinx.ext.napoleon import _process_docstring

    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is _process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_without_inline_types)  # napoleon's own priority (500)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("missing-reference", _public_alias)
    app.connect("autodoc-process-docstring", _constant_docstring, priority=400)  # before napoleon (500)
