"""examples/liver_validation_timing.py: both routes score the same volumes alike, and the script says so."""

import liver_validation_timing as timing  # examples/ is on the test path (pyproject.toml)
import pytest


def test_both_routes_time_the_same_scores_and_print_their_ratio(capsys):
    pytest.importorskip("scipy.spatial")
    assert timing.main(["--volumes", "2", "--size", "40", "--slices", "10", "--img-size", "32", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if "s per epoch" in line}
    assert set(lines) == {"batched", "cropped"}
    hd95 = {route: float(line.split("mean HD95")[1].split()[0]) for route, line in lines.items()}
    assert hd95["batched"] == pytest.approx(hd95["cropped"], abs=1e-3) and hd95["cropped"] > 0
    assert "cropped / batched:" in out


def test_bad_counts_are_refused_by_name():
    with pytest.raises(SystemExit):
        timing.parse_args(["--volumes", "0"])
