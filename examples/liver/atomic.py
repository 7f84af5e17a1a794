"""Atomic writes: everything the example writes appears complete or not at all.

:func:`atomic_write` writes a file or a folder under a temporary sibling name
(``.<stem>.tmp-<pid>.<extensions>``: the extensions stay, for writers that choose the format by
them, such as nibabel) and renames it onto the final name with ``os.replace``, which is atomic
within one file system. A crash or an exception leaves the previous version (or nothing), never a
half-written one; the temporary is removed on error, and temporaries left by processes that died
(killed, power loss) are removed the next time the same path is written.

Checkpoints, CSV and JSON files, the validation PNG, the phantom folder and the slice cache all go
through it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

Content = str | bytes | Callable[[Path], object]


def temporary_path(path: Path, pid: int | None = None) -> Path:
    """The temporary sibling that :func:`atomic_write` fills for ``path`` in process ``pid``
    (default: this one): ``best.pt`` -> ``.best.tmp-<pid>.pt``."""
    head, tail = _around_pid(Path(path))
    return Path(path).with_name(f"{head}{os.getpid() if pid is None else pid}{tail}")


def _around_pid(path: Path) -> tuple[str, str]:
    stem, dot, extensions = path.name.partition(".")
    return f".{stem}.tmp-", dot + extensions


def atomic_write(path: Path, content: Content) -> Path:
    """Write ``content`` to ``path`` atomically and return ``path``.

    Args:
        path: The file or folder to create or replace.
        content: ``str`` (written as UTF-8, line endings as given), ``bytes``, or a callable that creates the file or
            folder at the path it is given, e.g. ``lambda tmp: torch.save(obj, tmp)``,
            ``lambda tmp: fig.savefig(tmp, format="png")`` or a function that makes a folder there
            and fills it.

    Note:
        A folder replaces an existing folder of the same name by removing it first; the two steps
        are not one atomic operation, but no reader ever sees a partly written folder under the
        final name.
    """
    path = Path(path)
    _remove_dead_temporaries(path)
    tmp = temporary_path(path)
    _remove(tmp)
    try:
        if isinstance(content, str):
            tmp.write_text(content, encoding="utf-8", newline="")
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            content(tmp)
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _remove_dead_temporaries(path: Path) -> None:
    """Remove temporaries of ``path`` whose writing process no longer exists (POSIX only: on
    Windows ``os.kill(pid, 0)`` would signal the process instead of probing it)."""
    if os.name != "posix" or not path.parent.is_dir():
        return
    head, tail = _around_pid(path)
    for tmp in path.parent.glob(f"{head}*{tail}"):
        pid = tmp.name[len(head):len(tmp.name) - len(tail)]
        if not pid.isdigit():
            continue  # another path's temporary
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _remove(tmp)
        except PermissionError:
            pass  # alive, owned by another user
