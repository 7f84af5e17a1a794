"""Every Python example of the documentation runs: the README and each page of docs/.

Each page's ```` ```python ```` blocks run in order in one namespace (a later block may use what an
earlier one defined), so a page cannot go stale without a failing test. A block that must not run
carries an HTML comment ``<!-- not-run: reason -->`` on the line above it; the list stays short and
every entry names its reason. Shell commands and transcripts are fenced as ``bash`` / ``text`` (or
without a language) and are not run; a block fenced that way that reads as Python fails the test.
Also here: the API reference lists every public name, and the committed intersphinx inventories are
what their script writes.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

import stableloss
import stableloss.testing

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(
    path for path in DOCS.glob("*.md") if path.name != "gpu-evidence.md"  # a measurement report, not a page
)
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
MAX_NOT_RUN = 2  # blocks excluded on purpose, over all pages


def _blocks(page: Path) -> list[tuple[int, str, str, str | None]]:
    """``(line, language, code, not-run reason or None)`` for each fenced block of ``page``."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        blocks.append((line, match.group(1).strip(), match.group(2), marker.group("reason") if marker else None))
    return blocks


def _python_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    return [(line, code, reason) for line, language, code, reason in _blocks(page) if language == "python"]


def test_the_pages_have_python_examples():
    pages = {page.name: len(_python_blocks(page)) for page in PAGES}
    assert pages["README.md"] >= 1
    for name in ("getting-started.md", "choosing-a-loss.md", "mixed-precision.md", "boundary-aware.md",
                 "distance.md", "stability-checker.md", "distributed.md", "migration.md"):
        assert pages.get(name, 0) >= 1, f"{name} has no Python example ({pages})"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem.replace('-', '_')}"}
    ran = 0
    for line, code, reason in _python_blocks(page):
        if reason is not None:
            continue
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
        except Exception as error:  # name the block, keep the traceback
            raise AssertionError(f"the example at {page.relative_to(ROOT)} line {line} failed: {error!r}") from error
        ran += 1
    assert ran or not _python_blocks(page)


def test_not_run_blocks_are_few_and_give_a_reason():
    excluded = [(page.name, line, reason) for page in PAGES for line, code, reason in _python_blocks(page) if reason]
    assert len(excluded) <= MAX_NOT_RUN, f"too many examples excluded from the run: {excluded}"
    for name, line, reason in excluded:
        assert len(reason) >= 10, f"{name} line {line}: the not-run marker must say why ({reason!r})"


def test_no_python_hides_in_a_block_that_is_not_run():
    """A block fenced as text or bash that starts like Python would never run: fence it as python."""
    starts_like_python = re.compile(r"^\s*(import \w|from [\w.]+ import |def \w+\(|class \w+[(:])")
    for page in PAGES:
        for line, language, code, _ in _blocks(page):
            if language != "python":
                first = next((row for row in code.splitlines() if row.strip()), "")
                assert not starts_like_python.match(first), f"{page.name} line {line}: Python fenced as {language!r}"


def _api_names() -> set[str]:
    """Names the API reference documents: autosummary entries and auto* directives, as written."""
    text = (DOCS / "api.md").read_text()
    names: set[str] = set()
    module = "stableloss"
    for row in text.splitlines():
        current = re.match(r"\.\. currentmodule:: ([\w.]+)", row.strip())
        if current:
            module = current.group(1)
        entry = re.match(r"^   ([A-Za-z_][\w.]*)$", row)  # an autosummary entry (3-space indent, one name)
        if entry:
            names.add(f"{module}.{entry.group(1)}")
        directive = re.match(r"\.\. auto(?:data|function|class|module):: ([\w.]+)", row.strip())
        if directive:
            name = directive.group(1)
            names.add(name if name.startswith("stableloss") else f"{module}.{name}")
        members = re.match(r"\s*:members: (.+)", row)
        if members and names:
            owner = sorted(n for n in names if n.endswith(".strategies"))
            for member in members.group(1).split(","):
                names.add(f"{owner[-1] if owner else module}.{member.strip()}")
    return names


def test_api_reference_lists_every_public_name():
    documented = _api_names()
    expected = {f"stableloss.{name}" for name in stableloss.__all__}
    expected |= {f"stableloss.testing.{name}" for name in stableloss.testing.__all__}
    if importlib.util.find_spec("hypothesis") is not None:
        from stableloss.testing import strategies

        expected |= {f"stableloss.testing.strategies.{name}" for name, value in vars(strategies).items()
                     if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == strategies.__name__}
    missing = sorted(expected - documented)
    assert not missing, f"public names missing from docs/api.md: {missing}"


def test_committed_inventories_are_what_their_script_writes():
    spec = importlib.util.spec_from_file_location("make_inventories", DOCS / "_inventories" / "make_inventories.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, (project, _base, entries) in module.INVENTORIES.items():
        committed = (DOCS / "_inventories" / f"{key}.inv").read_bytes()
        assert committed == module.inventory_bytes(project, entries), (
            f"docs/_inventories/{key}.inv is stale: run python docs/_inventories/make_inventories.py")


def test_readme_links_point_at_files_that_exist():
    """The README is not part of the Sphinx build (which checks the pages' links): check its own."""
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
