"""Liver example, the loss comparison runner: a tiny comparison end to end, resumable, and its table."""

import csv
import json
import statistics

import pytest

pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

import liver_compare  # noqa: E402

from tests.test_liver_train import TINY  # noqa: E402

TRAINER = [*TINY, "--epochs", "1", "--max-steps", "2", "--threads", "1"]


def _compare(tmp_path, *extra):
    return liver_compare.main(["--losses", "dice", "boundary-loss", "--seeds", "0", "--out-dir",
                               str(tmp_path / "cmp"), *extra, "--", *TRAINER, "--cache-dir", str(tmp_path / "cache")])


def test_tiny_comparison_writes_its_table_and_skips_finished_runs(tmp_path, capsys):
    table = _compare(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:2]] == ["[1/2] dice, seed 0", "[2/2] boundary-loss, seed 0"]
    assert all(": trained | Dice " in line and " s/epoch | " in line for line in out[:2])
    folder = tmp_path / "cmp"
    summaries = {loss: json.loads((folder / "runs" / f"{loss}-seed0" / "summary.json").read_text())
                 for loss in ("dice", "boundary-loss")}
    assert all(s["status"] == "finished" and s["train_steps"] == 2 for s in summaries.values())
    for entry in table:  # one seed: the final epoch's scores, no spread
        final = summaries[entry["loss"]]["final_epoch"]
        assert entry["runs"] == entry["finished"] == 1 and entry["val_dice_std"] is None
        assert (entry["val_dice_mean"], entry["val_hd95_mm_mean"], entry["val_assd_mm_mean"]) == (
            final["val_dice"], final["val_hd95_mm"], final["val_assd_mm"])
        assert entry["seconds_per_epoch_mean"] == summaries[entry["loss"]]["seconds_per_epoch"]
    saved = json.loads((folder / "compare.json").read_text())
    assert saved["table"] == table and len(saved["runs"]) == 2
    assert saved["command"].startswith("python examples/liver_compare.py --losses dice boundary-loss --seeds 0 ")
    assert {"platform", "cpu_count", "load_average", "torch", "git_commit"} <= set(saved["machine"])
    with open(folder / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["loss"] for r in rows] == ["dice", "boundary-loss"]
    assert float(rows[1]["val_assd_mm_mean"]) == pytest.approx(table[1]["val_assd_mm_mean"])
    markdown = (folder / "compare.md").read_text()
    assert "| loss | runs | Dice | HD95 (mm) | ASSD (mm) | s/epoch |" in markdown
    assert f"| dice | 1 | {table[0]['val_dice_mean']:.4f} | {table[0]['val_hd95_mm_mean']:.2f} |" in markdown
    assert saved["command"] in markdown

    written = {p: p.stat().st_mtime_ns for p in folder.glob("runs/*/summary.json")}
    assert _compare(tmp_path) == table  # a second call trains nothing
    assert all("done before, skipped |" in line for line in capsys.readouterr().out.splitlines()[:2])
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_table_mean_and_sample_standard_deviation_over_seeds():
    rows = [{"loss": "dice", "status": "finished", "val_dice": 0.9, "val_hd95_mm": 4.0, "val_assd_mm": 1.0,
             "seconds_per_epoch": 10.0},
            {"loss": "dice", "status": "finished", "val_dice": 0.8, "val_hd95_mm": 8.0, "val_assd_mm": 3.0,
             "seconds_per_epoch": 12.0},
            {"loss": "hausdorff", "status": "stopped: 20 consecutive non-finite steps", "val_dice": None,
             "val_hd95_mm": None, "val_assd_mm": None, "seconds_per_epoch": None}]
    dice, hausdorff = liver_compare.aggregate(rows, ["dice", "hausdorff"])
    assert (dice["runs"], dice["finished"], hausdorff["runs"], hausdorff["finished"]) == (2, 2, 1, 0)
    assert dice["val_dice_mean"] == pytest.approx(0.85) and dice["val_dice_std"] == pytest.approx(0.1 / 2**0.5)
    assert dice["val_hd95_mm_std"] == pytest.approx(statistics.stdev([4.0, 8.0]))
    assert hausdorff["val_dice_mean"] is None and hausdorff["val_dice_std"] is None


def test_an_interrupted_run_is_resumed(tmp_path, capsys):
    import train_liver

    run = tmp_path / "cmp" / "runs" / "dice-seed0"
    trainer = [*TRAINER, "--cache-dir", str(tmp_path / "cache")]
    train_liver.main(["--loss", "dice", "--seed", "0", "--out-dir", str(run), *trainer, "--epochs", "2"], stop_after=1)
    (run / "runner.json").write_text(json.dumps({"loss": "dice", "seed": 0, "trainer_options": [*trainer, "--epochs", "2"]}))
    capsys.readouterr()
    table = liver_compare.main(["--losses", "dice", "--seeds", "0", "--out-dir", str(tmp_path / "cmp"), "--", *trainer,
                                "--epochs", "2"])
    assert capsys.readouterr().out.startswith("[1/1] dice, seed 0: resumed | ")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == 2 and table[0]["runs"] == 1
    assert "--resume" in (run / "train.log").read_text().splitlines()[0]


def test_a_folder_made_with_other_settings_is_refused(tmp_path):
    run = tmp_path / "cmp" / "runs" / "dice-seed0"
    run.mkdir(parents=True)
    (run / "runner.json").write_text(json.dumps({"loss": "dice", "seed": 0, "trainer_options": ["--quick"]}))
    with pytest.raises(SystemExit, match=r"run folder '.*dice-seed0' was not made by this comparison \(its settings: "
                                         r"\{'loss': 'dice', 'seed': 0, 'trainer_options': \['--quick'\]\}"):
        liver_compare.main(["--losses", "dice", "--seeds", "0", "--out-dir", str(tmp_path / "cmp"), "--", "--epochs", "1"])


@pytest.mark.parametrize("option", ["--loss", "--seed=3", "--out-dir", "--resume"])
def test_options_the_runner_sets_are_refused(option, capsys):
    with pytest.raises(SystemExit):
        liver_compare.main(["--", "--quick", option])
    assert f"{option.split('=')[0]} is set by the runner for every run" in capsys.readouterr().err
