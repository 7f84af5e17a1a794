"""Liver example, the loss comparison runner: a tiny comparison end to end, resumable, its table, the paired
intervals and the pre-declared rule that chooses ``BoundaryAwareLoss``'s default."""

import csv
import json
import statistics

import pytest

pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

import liver_compare  # noqa: E402

from liver.default_rule import RECIPES, apply_default_rule  # noqa: E402
from liver.paired import paired_difference  # noqa: E402
from tests.test_liver_train import TINY  # noqa: E402

TRAINER = [*TINY, "--epochs", "1", "--max-steps", "2", "--threads", "1"]


def _compare(tmp_path, *extra):
    return liver_compare.main(["--losses", "dice", "boundary-loss", "--seeds", "0", "--regimes", "default", "--out-dir",
                               str(tmp_path / "cmp"), *extra, "--", *TRAINER, "--cache-dir", str(tmp_path / "cache")])


def test_tiny_comparison_writes_its_table_and_skips_finished_runs(tmp_path, capsys):
    table = _compare(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": trained")[0] for line in out[:2]] == ["[1/2] default: dice, seed 0",
                                                                "[2/2] default: boundary-loss, seed 0"]
    assert all(": trained | Dice " in line and " s/epoch | " in line for line in out[:2])
    folder = tmp_path / "cmp"
    summaries = {loss: json.loads((folder / "runs" / f"{loss}-seed0" / "summary.json").read_text())
                 for loss in ("dice", "boundary-loss")}
    assert all(s["status"] == "finished" and s["train_steps"] == 2 for s in summaries.values())
    for entry in table:  # one seed: the final epoch's scores, no spread
        final = summaries[entry["loss"]]["final_epoch"]
        assert entry["runs"] == entry["finished"] == 1 and entry["val_dice_std"] is None
        assert entry["regime"] == "default"
        for key in ("val_dice", "val_hd95_mm", "val_assd_mm", "val_dice_lcc", "val_hd95_mm_lcc", "val_assd_mm_lcc"):
            assert entry[f"{key}_mean"] == final[key]
        assert entry["seconds_per_epoch_mean"] == summaries[entry["loss"]]["seconds_per_epoch"]
    boundary = table[1]  # one seed: a paired difference, no interval
    assert boundary["val_hd95_mm_pairs"] == 1 and boundary["val_hd95_mm_diff_low"] is None
    assert boundary["val_hd95_mm_diff"] == pytest.approx(table[1]["val_hd95_mm_mean"] - table[0]["val_hd95_mm_mean"])
    saved = json.loads((folder / "compare.json").read_text())
    assert saved["table"] == table and len(saved["runs"]) == 2 and saved["rule"]["status"] == "insufficient-data"
    assert saved["command"].startswith("python examples/liver_compare.py --losses dice boundary-loss --seeds 0 ")
    assert {"platform", "cpu_count", "load_average", "torch", "git_commit"} <= set(saved["machine"])
    with open(folder / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["loss"] for r in rows] == ["dice", "boundary-loss"]
    assert float(rows[1]["val_assd_mm_mean"]) == pytest.approx(table[1]["val_assd_mm_mean"])
    markdown = (folder / "compare.md").read_text()
    assert ("| loss | runs | Dice | HD95 (mm) | ASSD (mm) | Dice, LCC | HD95, LCC (mm) | ASSD, LCC (mm) | s/epoch |"
            in markdown)
    assert f"| dice | 1 | {table[0]['val_dice_mean']:.4f} | {table[0]['val_hd95_mm_mean']:.2f} |" in markdown
    assert f"| boundary-loss | 1 | {boundary['val_dice_diff']:+.4f} (1 pair: no interval) |" in markdown
    assert "**Outcome: insufficient-data.** The rule is not applied: `dice` has 0 seed(s) in hard-low-data" in markdown
    assert saved["command"] in markdown and (folder / "compare.png").stat().st_size > 1000

    written = {p: p.stat().st_mtime_ns for p in folder.glob("runs/*/summary.json")}
    assert _compare(tmp_path) == table  # a second call trains nothing
    assert all("done before, skipped |" in line for line in capsys.readouterr().out.splitlines()[:2])
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_table_mean_and_sample_standard_deviation_over_seeds():
    rows = [{"loss": "dice", "seed": 0, "status": "finished", "val_dice": 0.9, "val_hd95_mm": 4.0, "val_assd_mm": 1.0,
             "seconds_per_epoch": 10.0},
            {"loss": "dice", "seed": 1, "status": "finished", "val_dice": 0.8, "val_hd95_mm": 8.0, "val_assd_mm": 3.0,
             "seconds_per_epoch": 12.0},
            {"loss": "hausdorff", "seed": 0, "status": "stopped: 20 consecutive non-finite steps", "val_dice": None,
             "val_hd95_mm": None, "val_assd_mm": None, "seconds_per_epoch": None}]
    dice, hausdorff = liver_compare.aggregate(rows, ["dice", "hausdorff"])
    assert (dice["runs"], dice["finished"], hausdorff["runs"], hausdorff["finished"]) == (2, 2, 1, 0)
    assert dice["val_dice_mean"] == pytest.approx(0.85) and dice["val_dice_std"] == pytest.approx(0.1 / 2**0.5)
    assert dice["val_hd95_mm_std"] == pytest.approx(statistics.stdev([4.0, 8.0]))
    assert hausdorff["val_dice_mean"] is None and hausdorff["val_dice_std"] is None
    assert (hausdorff["val_dice_pairs"], hausdorff["val_dice_diff"]) == (0, None)  # a stopped run pairs with nothing
    assert dice["val_dice_diff"] is None  # the reference has no difference to itself


def test_an_interrupted_run_is_resumed(tmp_path, capsys):
    import train_liver

    run = tmp_path / "cmp" / "runs" / "dice-seed0"
    trainer = [*TRAINER, "--cache-dir", str(tmp_path / "cache")]
    train_liver.main(["--loss", "dice", "--seed", "0", "--out-dir", str(run), *trainer, "--epochs", "2"], stop_after=1)
    (run / "runner.json").write_text(json.dumps({"loss": "dice", "seed": 0, "trainer_options": [*trainer, "--epochs", "2"]}))
    capsys.readouterr()
    table = liver_compare.main(["--losses", "dice", "--seeds", "0", "--regimes", "default", "--out-dir",
                                str(tmp_path / "cmp"), "--", *trainer, "--epochs", "2"])
    assert capsys.readouterr().out.startswith("[1/1] default: dice, seed 0: resumed | ")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == 2 and table[0]["runs"] == 1
    assert "--resume" in (run / "train.log").read_text().splitlines()[0]


def test_a_folder_made_with_other_settings_is_refused(tmp_path):
    run = tmp_path / "cmp" / "runs" / "dice-seed0"
    run.mkdir(parents=True)
    (run / "runner.json").write_text(json.dumps({"loss": "dice", "seed": 0, "trainer_options": ["--quick"]}))
    with pytest.raises(SystemExit, match=r"run folder '.*dice-seed0' was not made by this comparison \(its settings: "
                                         r"\{'loss': 'dice', 'seed': 0, 'trainer_options': \['--quick'\]\}"):
        liver_compare.main(["--losses", "dice", "--seeds", "0", "--regimes", "default", "--out-dir", str(tmp_path / "cmp"),
                            "--", "--epochs", "1"])


@pytest.mark.parametrize("option", ["--loss", "--seed=3", "--out-dir", "--resume"])
def test_options_the_runner_sets_are_refused(option, capsys):
    with pytest.raises(SystemExit):
        liver_compare.main(["--", "--quick", option])
    assert f"{option.split('=')[0]} is set by the runner for every run" in capsys.readouterr().err


def test_a_table_partly_done_resumes_across_regimes(tmp_path, capsys):
    """Regime by regime: the runs done before are skipped, the others run; the hard regime has its own folders."""
    cmp = ["--losses", "dice", "--seeds", "0", "--out-dir", str(tmp_path / "cmp")]
    trainer = ["--", *TRAINER, "--cache-dir", str(tmp_path / "cache")]
    liver_compare.main([*cmp, "--regimes", "default", *trainer])
    capsys.readouterr()
    table = liver_compare.main([*cmp, "--regimes", "default", "hard-low-data", *trainer])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[1/2] default: dice, seed 0: done before, skipped | ")
    assert out[1].startswith("[2/2] hard-low-data: dice, seed 0: trained | ")
    hard = tmp_path / "cmp" / "runs" / "hard-low-data" / "dice-seed0"
    assert json.loads((hard / "runner.json").read_text())["trainer_options"][:2] == ["--preset", "hard-low-data"]
    config = json.loads((hard / "config.json").read_text())
    assert (config["phantom"], config["train_volumes"]) == ("hard", 2)
    assert [(e["regime"], e["loss"], e["runs"]) for e in table] == [("default", "dice", 1), ("hard-low-data", "dice", 1)]
    markdown = (tmp_path / "cmp" / "compare.md").read_text()
    assert "## Regime `default`" in markdown and "## Regime `hard-low-data`" in markdown


def test_report_only_tabulates_runs_made_by_separate_commands_and_runs_nothing(tmp_path, capsys):
    """Two commands ran different regimes and losses; --report-only puts them in one table, trains nothing,
    and counts the plan's runs that are missing."""
    trainer = ["--", *TRAINER, "--cache-dir", str(tmp_path / "cache")]
    out_dir = ["--out-dir", str(tmp_path / "cmp")]
    liver_compare.main(["--losses", "dice", "--seeds", "0", "--regimes", "default", *out_dir, *trainer])
    liver_compare.main(["--losses", "boundary-loss", "--seeds", "0", "--regimes", "hard-low-data", *out_dir, *trainer])
    capsys.readouterr()
    table = liver_compare.main(["--losses", "dice", "boundary-loss", "--seeds", "0", "--regimes", "default",
                                "hard-low-data", "--report-only", *out_dir, *trainer])
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in out[:4]] == [
        "[1/4] default: dice, seed 0: done before, skipped",
        "[2/4] default: boundary-loss, seed 0: not run (--report-only)",
        "[3/4] hard-low-data: dice, seed 0: not run (--report-only)",
        "[4/4] hard-low-data: boundary-loss, seed 0: done before, skipped"]
    assert out[-1].endswith("; 2 run(s) of the plan not run yet")
    assert not (tmp_path / "cmp" / "runs" / "boundary-loss-seed0").exists()
    assert [(e["regime"], e["loss"], e["runs"]) for e in table] == [
        ("default", "dice", 1), ("default", "boundary-loss", 0), ("hard-low-data", "dice", 0),
        ("hard-low-data", "boundary-loss", 1)]


def test_paired_interval_by_hand_and_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    recipe = {0: 5.0, 1: 7.0, 2: 6.0, 3: 4.0, 9: 1.0}  # seed 9 has no reference: left out
    reference = {0: 6.0, 1: 9.0, 2: 6.0, 3: 8.0, 4: 3.0}
    d = paired_difference(recipe, reference)
    # differences -1, -2, 0, -4: mean -1.75, sample sd sqrt(8.75 / 3), t(0.975, 3) = 3.182446
    half = 3.182446305284263 * (8.75 / 3) ** 0.5 / 2
    assert (d.n, d.seeds, d.mean) == (4, (0, 1, 2, 3), -1.75)
    assert (d.low, d.high) == (pytest.approx(-1.75 - half), pytest.approx(-1.75 + half))
    seeds = list(d.seeds)
    ci = stats.ttest_rel([recipe[s] for s in seeds], [reference[s] for s in seeds]).confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_paired_interval_needs_two_pairs():
    one = paired_difference({0: 2.0, 1: None}, {0: 1.5, 1: 3.0})  # a stopped run (None) is no pair
    assert (one.n, one.mean, one.low, one.high, one.has_interval) == (1, 0.5, None, None, False)
    assert paired_difference({0: 1.0}, {1: 1.0}).mean is None
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\); received 95"):
        paired_difference({0: 1.0}, {0: 1.0}, level=95)


SEEDS = range(5)
DICE_HD95 = [30.0, 40.0, 50.0, 35.0, 45.0]  # Dice alone in the hard regime: mean 40 mm


def _rows(hard=None, default_hd95=10.0):
    """Run rows: Dice alone at DICE_HD95 (Dice 0.90) in the hard regime and at ``default_hd95`` on the default
    phantom; each other recipe as ``hard[recipe] = (dice offset, [HD95 offset per seed])``, else equal to Dice alone."""
    hard = hard or {}
    rows = [{"regime": "default", "loss": "dice", "seed": s, "val_dice": 0.96, "val_hd95_mm": default_hd95} for s in SEEDS]
    for recipe in RECIPES:
        dice_offset, hd95_offsets = hard.get(recipe, (0.0, [0.0] * 5))
        rows += [{"regime": "hard-low-data", "loss": recipe, "seed": s, "val_dice": 0.90 + dice_offset,
                  "val_hd95_mm": DICE_HD95[s] + hd95_offsets[s]} for s in SEEDS]
    return rows


def test_rule_needs_its_data():
    rows = [r for r in _rows() if not (r["loss"] == "hausdorff" and r["seed"] == 4)]
    outcome = apply_default_rule(rows)
    assert outcome.status == "insufficient-data" and outcome.choice is None
    assert "`hausdorff` has 4 seed(s) paired with `dice` in hard-low-data (at least 5 needed)" in outcome.message


def test_rule_gate_fails_when_dice_alone_is_not_twice_as_far_off():
    outcome = apply_default_rule(_rows({"boundary-dou": (0.0, [-9.0, -8.0, -10.0, -9.0, -9.5])}, default_hd95=20.5))
    assert outcome.status == "gate-failed" and outcome.choice is None and not outcome.candidates
    assert outcome.gate["ratio"] == pytest.approx(40.0 / 20.5) and not outcome.gate["passed"]
    assert "1.95 x" in outcome.message and "no default is chosen from it" in outcome.message


def test_rule_chooses_the_eligible_recipe_with_the_lowest_hd95():
    outcome = apply_default_rule(_rows({
        "boundary-dou": (0.0, [-9.0, -8.0, -10.0, -9.0, -9.5]),  # eligible: HD95 lower on every seed
        "hausdorff": (-0.004, [-3.0, -4.0, -2.0, -3.5, -3.0]),  # eligible: Dice within 0.005
        "boundary-loss": (-0.006, [-20.0, -20.0, -20.0, -20.0, -20.0]),  # lowest HD95 but Dice 0.006 lower: not eligible
        "seed": (0.0, [-30.0, 10.0, -30.0, 10.0, -30.0]),  # lower HD95 on average, interval crosses 0: not eligible
    }, default_hd95=20.0))
    assert outcome.gate["passed"] and outcome.gate["ratio"] == 2.0  # exactly twice passes ("at least twice")
    assert (outcome.status, outcome.choice) == ("chosen", "boundary-dou")
    eligible = {c.recipe: c.eligible for c in outcome.candidates}
    assert eligible == {"seed": False, "boundary": False, "boundary-loss": False, "hausdorff": True, "boundary-dou": True,
                        "nnunet": False}
    assert "(also eligible: `hausdorff`)" in outcome.message and "today's default already" in outcome.message


def test_rule_keeps_the_default_when_nnunet_is_best():
    outcome = apply_default_rule(_rows({"nnunet": (0.002, [-12.0, -11.0, -12.5, -11.0, -12.0]),
                                        "hausdorff": (0.0, [-3.0, -4.0, -2.0, -3.5, -3.0])}))
    assert (outcome.status, outcome.choice, outcome.best) == ("nnunet-best", None, "nnunet")
    assert "no boundary term earns the name, the default stays as it is" in outcome.message


def test_rule_without_an_eligible_recipe_keeps_the_default():
    outcome = apply_default_rule(_rows({"hausdorff": (-0.01, [-5.0] * 5), "boundary": (0.0, [1.0, -1.0, 0.5, -0.5, 0.0])}))
    assert (outcome.status, outcome.choice) == ("none-eligible", None)
    assert not any(c.eligible for c in outcome.candidates)
    assert "the README says that the data cannot decide" in outcome.message
