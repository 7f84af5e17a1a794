"""Write the intersphinx inventories the docs build reads offline: ``python docs/_inventories/make_inventories.py``.

CI and the development machines reach PyPI only, so the build cannot download the official
``objects.inv`` of Python, PyTorch and NumPy. Instead, this script lists every outside name the
documentation refers to (in docstrings, signatures and pages), each with its page on the official
site, and writes one small inventory per project in Sphinx's inventory format version 2, next to
this file. ``docs/conf.py`` points intersphinx at these files and at the official base URLs, so the
built pages link to docs.python.org/3, pytorch.org/docs/stable and numpy.org/doc/stable as a
downloaded inventory would. A name missing here fails the nitpicky build (``-n -W``), which is
the signal to add a line; the anchors below are those of the official inventories (``module.Name``
for an object documented under its module, ``$`` standing for the name, as Sphinx writes them).

The files are deterministic; ``tests/test_docs_examples.py`` checks that the committed ones are what
this script writes. When Sphinx is installed, each file is read back with Sphinx's own inventory
reader, so a format error fails here rather than in the build.
"""

from __future__ import annotations

import io
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# project -> (display name, base URL, [(name, "domain:role", page and anchor relative to the base)])
INVENTORIES: dict[str, tuple[str, str, list[tuple[str, str, str]]]] = {
    "python": ("Python", "https://docs.python.org/3", [
        ("bool", "py:class", "library/functions.html#$"),
        ("collections.abc.Callable", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Iterator", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Mapping", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Sequence", "py:class", "library/collections.abc.html#$"),
        ("dict", "py:class", "library/stdtypes.html#$"),
        ("float", "py:class", "library/functions.html#$"),
        ("int", "py:class", "library/functions.html#$"),
        ("list", "py:class", "library/stdtypes.html#$"),
        ("str", "py:class", "library/stdtypes.html#$"),
        ("tuple", "py:class", "library/stdtypes.html#$"),
        ("TypeError", "py:exception", "library/exceptions.html#$"),
        ("ValueError", "py:exception", "library/exceptions.html#$"),
        ("ImportError", "py:exception", "library/exceptions.html#$"),
        ("AssertionError", "py:exception", "library/exceptions.html#$"),
        ("typing.Any", "py:data", "library/typing.html#$"),
        ("typing.Literal", "py:data", "library/typing.html#$"),
        ("typing.Optional", "py:data", "library/typing.html#$"),
        ("typing.Union", "py:data", "library/typing.html#$"),
    ]),
    "torch": ("PyTorch", "https://pytorch.org/docs/stable", [
        ("torch.Tensor", "py:class", "tensors.html#$"),
        ("torch.autocast", "py:class", "amp.html#$"),
        ("torch.compile", "py:function", "generated/torch.compile.html#$"),
        ("torch.device", "py:class", "tensor_attributes.html#$"),
        ("torch.dtype", "py:class", "tensor_attributes.html#$"),
        ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html#$"),
        ("torch.nn.Module.load_state_dict", "py:method", "generated/torch.nn.Module.html#$"),
        ("torch.nn.Module.state_dict", "py:method", "generated/torch.nn.Module.html#$"),
    ]),
    "numpy": ("NumPy", "https://numpy.org/doc/stable", [
        ("numpy.dtype", "py:class", "reference/generated/numpy.dtype.html#$"),
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$"),
    ]),
}


def inventory_bytes(project: str, entries: list[tuple[str, str, str]]) -> bytes:
    """One inventory in Sphinx's format version 2: a plain header, then zlib-compressed lines."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: stable\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    # name domain:role priority uri display-name ("-": the name itself)
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in sorted(entries))
    return header.encode() + zlib.compress(body.encode(), 9)


def check_with_sphinx(data: bytes, base: str, entries: list[tuple[str, str, str]]) -> None:
    """Read a written inventory back with Sphinx's reader and check every name resolves to its URL."""
    try:
        from sphinx.util.inventory import InventoryFile
    except ImportError:  # the [docs] extra is not installed: the build reads the files anyway
        return
    inventory = InventoryFile.load(io.BytesIO(data), base, lambda a, b: f"{a}/{b}")
    for name, role, uri in entries:
        item = inventory[role][name]
        url = item.uri if hasattr(item, "uri") else item[2]
        assert url == f"{base}/{uri.replace('$', name)}", (name, url)


def main() -> int:
    for key, (project, base, entries) in INVENTORIES.items():
        data = inventory_bytes(project, entries)
        check_with_sphinx(data, base, entries)
        (HERE / f"{key}.inv").write_bytes(data)
        print(f"{key}.inv: {len(entries)} names -> {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
