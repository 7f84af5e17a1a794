"""Liver example: the one atomic-write helper (files, callbacks, folders, leftovers of dead writers)."""

import pytest

from liver.atomic import atomic_write, temporary_path


def test_text_and_bytes_are_written_as_given(tmp_path):
    atomic_write(tmp_path / "a.csv", "x,y\r\n1,2\r\n")
    atomic_write(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.csv").read_bytes() == b"x,y\r\n1,2\r\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing_else(tmp_path):
    atomic_write(tmp_path / "m.pt", b"old")

    def crash(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "m.pt", crash)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"] and (tmp_path / "m.pt").read_bytes() == b"old"


def test_the_temporary_keeps_the_extensions_for_writers_that_go_by_them(tmp_path):
    seen = []
    atomic_write(tmp_path / "lits-3_pred.nii.gz", lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"")))
    assert seen[0].startswith(".lits-3_pred.tmp-") and seen[0].endswith(".nii.gz")


def test_a_folder_replaces_the_previous_folder_whole(tmp_path):
    def folder(files):
        def write(tmp):
            tmp.mkdir()
            for name in files:
                (tmp / name).write_text(name)
        return write

    atomic_write(tmp_path / "cache", folder(["a", "b"]))
    atomic_write(tmp_path / "cache", folder(["c"]))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_leftovers_of_dead_writers_are_removed_and_others_kept(tmp_path):
    dead = temporary_path(tmp_path / "best.pt", pid=999999999)
    dead.write_bytes(b"half")
    other = temporary_path(tmp_path / "best.x.pt", pid=999999999)  # another file's temporary
    other.write_bytes(b"half")
    atomic_write(tmp_path / "best.pt", b"new")
    assert not dead.exists() and other.exists() and (tmp_path / "best.pt").read_bytes() == b"new"
