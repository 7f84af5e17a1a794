"""examples/phantom_picture.py: one picture of both phantoms, and a clear error without a liver."""

import numpy as np
import phantom_picture  # examples/ is on the test path (pyproject.toml)
import pytest


def test_writes_a_png_of_both_phantoms(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "phantoms.png"
    assert phantom_picture.main(["--size", "32", "--slices", "8", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_slices_go_through_the_liver_and_an_empty_volume_is_refused():
    labels = np.zeros((4, 4, 20), np.uint8)
    labels[1:3, 1:3, 5:17] = 1
    chosen = phantom_picture.liver_slices(labels)
    assert chosen == sorted(chosen) and all(5 <= z <= 16 for z in chosen) and len(set(chosen)) == 3
    with pytest.raises(ValueError, match="no liver"):
        phantom_picture.liver_slices(np.zeros((4, 4, 5), np.uint8))
