"""Compare losses on the liver example: train every regime x loss x seed, one run after another, and tabulate.

    python examples/liver_compare.py                                  # 2 regimes x 8 losses x seeds 0 1 2
    python examples/liver_compare.py --losses dice boundary --seeds 0 --regimes default -- --quick --threads 1

A regime is a set of trainer options (:data:`REGIMES`): ``default`` (the default phantom, none),
``hard-low-data`` (``--preset hard-low-data``: the hard phantom, 2 training volumes) and ``hard``
(``--phantom hard``). Everything after ``--`` goes to ``examples/train_liver.py`` after the
regime's options, in every regime (the runner sets ``--loss``, ``--seed`` and ``--out-dir``
itself). Each run has its folder ``OUT_DIR/runs/<loss>-seed<k>/`` in the default regime and
``OUT_DIR/runs/<regime>/<loss>-seed<k>/`` in the others (the trainer's files and its output in
``train.log``); after every run the runner rewrites ``OUT_DIR/compare.md``, ``compare.csv``,
``compare.json`` and ``compare.png``: per regime and loss, the mean and sample standard deviation
over the seeds of the final epoch's validation Dice, HD95 and ASSD (mm), raw and after keeping the
largest connected component, and of the training seconds per epoch; per loss the mean paired
difference to ``dice`` (seeds as pairs) with its 95 % Student-t interval; HD95 against Dice per
run; and the outcome of the pre-declared rule that chooses ``BoundaryAwareLoss``'s default
(:mod:`liver.default_rule`), with the exact command and the machine.

``--report-only`` runs nothing and tabulates the runs of the plan already finished (a comparison
made by several commands). Resumable: a run whose ``summary.json`` exists is not run again; a run that was interrupted
continues from its ``last.pt`` (``--resume``). A run folder made with other trainer options is
refused rather than mixed. The seed also draws the phantom and the folds, so every loss meets the
same data at a given seed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from liver.atomic import atomic_write
from liver.compare_plot import plot_hd95_vs_dice
from liver.default_rule import apply_default_rule
from liver.losses import LOSSES, RECIPES
from liver.paired import LEVEL, finite, paired_difference

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_LOSSES = ("dice", "seed", "boundary", "boundary-loss", "hausdorff", "boundary-dou", "nnunet", "monai-dicece")
SCORES = (("val_dice", "Dice"), ("val_hd95_mm", "HD95 (mm)"), ("val_assd_mm", "ASSD (mm)"),
          ("val_dice_lcc", "Dice, LCC"), ("val_hd95_mm_lcc", "HD95, LCC (mm)"), ("val_assd_mm_lcc", "ASSD, LCC (mm)"))
"""The final epoch's validation scores, raw and after keeping the largest connected component (LCC)."""
METRICS = (*SCORES, ("seconds_per_epoch", "s/epoch"))
DIGITS = {"val_dice": 4, "val_hd95_mm": 2, "val_assd_mm": 2, "seconds_per_epoch": 1}
REFERENCE = "dice"
REGIMES = {"default": (), "hard-low-data": ("--preset", "hard-low-data"), "hard": ("--phantom", "hard")}
"""Each regime's trainer options, given before the user's."""
DEFAULT_REGIMES = ("default", "hard-low-data")
RESERVED = ("--loss", "--seed", "--out-dir", "--resume")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The runner's options, and the trainer options after ``--``."""
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Trainer options go after --, e.g. -- --quick --threads 1.")
    p.add_argument("--losses", nargs="+", choices=LOSSES, default=list(DEFAULT_LOSSES), metavar="LOSS",
                   help=f"losses to compare (default: {' '.join(DEFAULT_LOSSES)}; choices: {', '.join(LOSSES)})")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--regimes", nargs="+", choices=REGIMES, default=list(DEFAULT_REGIMES), metavar="REGIME",
                   help=f"regimes (default: {' '.join(DEFAULT_REGIMES)}; choices: "
                   + "; ".join(f"{k}: {shlex.join(v) or 'no extra options'}" for k, v in REGIMES.items()) + ")")
    p.add_argument("--out-dir", type=Path, default=Path("runs/compare"), help="(default: %(default)s)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: tabulate the runs of the plan already finished in OUT_DIR (e.g. a comparison "
                   "made by several commands, over regimes and losses that no one command ran together)")
    args = p.parse_args(argv[:split])
    trainer = argv[split + 1:]
    for option in trainer:
        if option.split("=")[0] in RESERVED:
            p.error(f"{option.split('=')[0]} is set by the runner for every run; remove it from the trainer options")
    return args, trainer


def machine() -> dict[str, Any]:
    """Where the runs ran: platform, CPU count, load average, Python, torch, CUDA device, git commit."""
    import torch

    def git(*cmd: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True, check=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "git_commit": None if commit is None else commit + (" (with uncommitted changes)" if dirty else "")}


def run_folder(out: Path, regime: str, loss: str, seed: int) -> Path:
    """``OUT/runs/<loss>-seed<k>`` in the default regime (as before regimes existed), else ``OUT/runs/<regime>/...``."""
    base = out / "runs" if regime == "default" else out / "runs" / regime
    return base / f"{loss}-seed{seed}"


def regime_options(regime: str, trainer: list[str]) -> list[str]:
    """The trainer options of one regime's runs: the regime's, then the user's."""
    return [*REGIMES[regime], *trainer]


def trainer_command(loss: str, seed: int, run_dir: Path, trainer: list[str]) -> list[str]:
    return [sys.executable, str(HERE / "train_liver.py"), "--loss", loss, "--seed", str(seed),
            "--out-dir", str(run_dir), *trainer]


def run_one(loss: str, seed: int, run_dir: Path, trainer: list[str], *,
            report_only: bool = False) -> tuple[str, dict[str, Any] | None]:
    """Run (or resume, or skip) one training run: ``(what happened, its summary or None)``.

    With ``report_only`` nothing runs: a finished run's summary, else ``("not run", None)``.
    """
    summary_file, record = run_dir / "summary.json", run_dir / "runner.json"
    wanted = {"loss": loss, "seed": seed, "trainer_options": trainer}
    if run_dir.is_dir() and any(run_dir.iterdir()):
        made = json.loads(record.read_text()) if record.is_file() else None
        if made != wanted:
            raise SystemExit(f"error: run folder {str(run_dir)!r} was not made by this comparison (its settings: "
                             f"{made}; this one's: {wanted}); use another --out-dir or remove the folder")
        if summary_file.is_file():
            summary = json.loads(summary_file.read_text())
            if not summary["status"].startswith("stopped after"):  # finished, or stopped by the guard: final
                return "done before, skipped", summary
    if report_only:
        return "not run (--report-only)", None
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(record, json.dumps(wanted, indent=2))
    command = trainer_command(loss, seed, run_dir, trainer)
    resumed = (run_dir / "last.pt").is_file()
    if resumed:
        command.append("--resume")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(run_dir / "train.log", "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if not summary_file.is_file():
        return f"failed (exit code {done.returncode}; see {run_dir / 'train.log'})", None
    return ("resumed" if resumed else "trained"), json.loads(summary_file.read_text())


def run_row(loss: str, seed: int, summary: dict[str, Any], regime: str = "default") -> dict[str, Any]:
    """One run's numbers: the final epoch's scores, raw and LCC (and the best-Dice epoch's raw ones), seconds per epoch."""
    final, best = summary.get("final_epoch") or {}, summary.get("best_epoch") or {}
    row = {"regime": regime, "loss": loss, "seed": seed, "status": summary["status"], "epochs": summary["epochs_run"],
           "seconds_per_epoch": summary.get("seconds_per_epoch"), "wall_seconds": summary["wall_seconds"]}
    row.update({k: final.get(k) for k, _ in SCORES})
    row.update({f"best_{k}": best.get(k) for k in ("epoch", *(k for k, _ in SCORES[:3]))})
    return row


def aggregate(rows: list[dict[str, Any]], losses: list[str], regime: str | None = None) -> list[dict[str, Any]]:
    """Per loss: runs counted, mean and sample standard deviation of each metric over its runs, and
    for each score the mean paired difference to ``dice`` over the seeds both have, with its 95 %
    Student-t interval (``<score>_diff``, ``_diff_low``, ``_diff_high``, ``_pairs``; None for
    ``dice`` itself, and no interval with fewer than 2 pairs).

    ``regime``: only that regime's rows (a row without ``regime`` is of the default one); None: all rows.
    """
    if regime is not None:
        rows = [r for r in rows if r.get("regime", "default") == regime]
    table = []
    for loss in losses:
        mine = [r for r in rows if r["loss"] == loss]
        entry: dict[str, Any] = {"loss": loss, "runs": len(mine),
                                 "finished": sum(r["status"] == "finished" for r in mine)}
        if regime is not None:
            entry = {"regime": regime, **entry}
        for key, _ in METRICS:
            values = [float(r[key]) for r in mine if finite(r.get(key))]
            entry[f"{key}_mean"] = statistics.fmean(values) if values else None
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        for key, _ in SCORES:
            entry.update(dict.fromkeys((f"{key}_diff", f"{key}_diff_low", f"{key}_diff_high", f"{key}_pairs")))
            if loss != REFERENCE:
                d = paired_difference({r["seed"]: r.get(key) for r in mine},
                                      {r["seed"]: r.get(key) for r in rows if r["loss"] == REFERENCE})
                entry.update({f"{key}_diff": d.mean, f"{key}_diff_low": d.low, f"{key}_diff_high": d.high,
                              f"{key}_pairs": d.n})
        table.append(entry)
    return table


def _cell(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _diff_cell(entry: dict[str, Any], key: str, digits: int) -> str:
    """``+0.0012 [-0.0010, +0.0034]``; one pair: ``+0.0012 (1 pair: no interval)``; the reference: an em dash."""
    if entry["loss"] == REFERENCE:
        return "—"
    mean, low, high = entry[f"{key}_diff"], entry[f"{key}_diff_low"], entry[f"{key}_diff_high"]
    if mean is None:
        return "-"
    if low is None:
        return f"{mean:+.{digits}f} (1 pair: no interval)"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _digits(key: str) -> int:
    return DIGITS[key.removesuffix("_lcc")]


def regime_lines(table: list[dict[str, Any]], regime: str, out: Path, trainer: list[str]) -> list[str]:
    """One regime's section of compare.md: its trainer command, the scores and the paired differences."""
    mine = [e for e in table if e["regime"] == regime]
    example = shlex.join(["python", "examples/train_liver.py", "--loss", "LOSS", "--seed", "SEED", "--out-dir",
                          str(run_folder(out, regime, "LOSS", "SEED")), *regime_options(regime, trainer)])  # type: ignore[arg-type]
    lines = [f"## Regime `{regime}`", "", f"Each run: `{example}`", "",
             "| loss | runs | " + " | ".join(title for _, title in METRICS) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " |"]
    for e in mine:
        runs = f"{e['runs']}" + ("" if e["finished"] == e["runs"] else f" ({e['runs'] - e['finished']} stopped)")
        cells = [_cell(e[f"{k}_mean"], e[f"{k}_std"], _digits(k)) for k, _ in METRICS]
        lines.append(f"| {e['loss']} | {runs} | " + " | ".join(cells) + " |")
    if any(e["loss"] == REFERENCE for e in mine):
        lines += ["", (f"Paired difference to `{REFERENCE}` (same seed: same phantom and folds), mean over the seeds "
                       f"and [{LEVEL:.0%} Student-t interval]; with one pair there is no interval:"), "",
                  "| loss | pairs | " + " | ".join(f"Δ {title}" for _, title in SCORES) + " |",
                  "| --- | ---: | " + " | ".join("---:" for _ in SCORES) + " |"]
        for e in mine:
            pairs = "—" if e["loss"] == REFERENCE else str(e["val_dice_pairs"])
            lines.append(f"| {e['loss']} | {pairs} | " + " | ".join(_diff_cell(e, k, _digits(k)) for k, _ in SCORES) + " |")
    else:
        lines += ["", f"No paired differences: `{REFERENCE}` is not among the losses."]
    return [*lines, ""]


def write_tables(out: Path, rows: list[dict[str, Any]], args: argparse.Namespace, trainer: list[str], command: str,
                 info: dict[str, Any]) -> None:
    """compare.md, compare.csv, compare.json and compare.png in ``out`` (rewritten atomically after every run)."""
    table = [e for regime in args.regimes for e in aggregate(rows, args.losses, regime)]
    rule = apply_default_rule(rows)
    lines = ["# Liver example: losses compared", "",
             f"Command: `{command}`", "",
             (f"Machine: {info['platform']}, {info['cpu_count']} CPUs ({info['processor']}), "
              f"CUDA device: {info['cuda_device'] or 'none'}; Python {info['python']}, torch {info['torch']}; "
              f"commit {info['git_commit']}; load average at the start {info['load_average']}, "
              f"at the end {info['load_average_end']}; {info['finished_at']}."), "",
             ("Final epoch's validation scores (3D, mean over the validation volumes; HD95 and ASSD in mm, a "
              "volume with an empty prediction or target scoring its extent diagonal), mean ± sample standard "
              "deviation over the seeds, raw and after keeping the largest 3-D connected component of each "
              "prediction (LCC, face connectivity); s/epoch times the training pass (validation not included)."), ""]
    for regime in args.regimes:
        lines += regime_lines(table, regime, out, trainer)
    lines += ["## The rule that chooses `BoundaryAwareLoss`'s default", "",
              "Applied as written in docs/liver-example.md (raw scores of the final epoch; LCC scores do not enter it):",
              "", f"**Outcome: {rule.status}.** {rule.message}", ""]
    if rule.candidates:
        lines += ["| recipe | mean raw HD95 (mm) | Δ Dice | Δ HD95 (mm), 95 % interval | eligible | why |",
                  "| --- | ---: | ---: | ---: | --- | --- |"]
        for c in rule.candidates:
            hd95 = "-" if c.hd95_mean is None else f"{c.hd95_mean:.2f}"
            dice = "-" if c.dice_diff.mean is None else f"{c.dice_diff.mean:+.4f}"
            interval = ("-" if c.hd95_diff.mean is None else f"{c.hd95_diff.mean:+.2f}" + (
                f" [{c.hd95_diff.low:+.2f}, {c.hd95_diff.high:+.2f}]" if c.hd95_diff.has_interval else ""))
            lines.append(f"| {c.recipe} | {hd95} | {dice} | {interval} | {'yes' if c.eligible else 'no'} | {c.reason} |")
        lines.append("")
    lines += ["![HD95 against Dice per run](compare.png)", "",
              "Losses: " + "; ".join(f"`{name}`: {RECIPES[name].description}" for name in args.losses) + "."]
    atomic_write(out / "compare.md", "\n".join(lines) + "\n")
    plot_hd95_vs_dice(out / "compare.png", rows, args.regimes, args.losses)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    atomic_write(out / "compare.csv", text.getvalue())
    outcome = {"status": rule.status, "choice": rule.choice, "best": rule.best, "message": rule.message, "gate": rule.gate}
    atomic_write(out / "compare.json", json.dumps({"command": command, "trainer_options": trainer, "regimes": args.regimes,
                                                   "losses": args.losses, "seeds": args.seeds, "machine": info,
                                                   "table": table, "rule": outcome, "runs": rows}, indent=2))


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min" if hours else (f"{m} min {s} s" if m else f"{s} s")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the comparison ``argv`` asks for; returns the per-regime, per-loss table."""
    argv = sys.argv[1:] if argv is None else argv
    args, trainer = parse_args(argv)
    command = shlex.join(["python", "examples/liver_compare.py", *argv])
    info = machine()
    plan = [(regime, loss, seed) for regime in args.regimes for seed in args.seeds for loss in args.losses]
    rows: list[dict[str, Any]] = []
    spent: list[float] = []
    failed = missing = 0
    for k, (regime, loss, seed) in enumerate(plan, 1):
        t0 = time.time()
        what, summary = run_one(loss, seed, run_folder(args.out_dir, regime, loss, seed), regime_options(regime, trainer),
                                report_only=args.report_only)
        line = f"[{k}/{len(plan)}] {regime}: {loss}, seed {seed}: {what}"
        if summary is None:
            missing += args.report_only
            failed += not args.report_only
        else:
            row = run_row(loss, seed, summary, regime)
            rows.append(row)
            if what != "done before, skipped":
                spent.append(time.time() - t0)
            line += (f" | Dice {_cell(row['val_dice'], None, 4)} | HD95 {_cell(row['val_hd95_mm'], None, 2)} mm | "
                     f"ASSD {_cell(row['val_assd_mm'], None, 2)} mm | LCC: Dice {_cell(row['val_dice_lcc'], None, 4)}, "
                     f"HD95 {_cell(row['val_hd95_mm_lcc'], None, 2)} mm | {_cell(row['seconds_per_epoch'], None, 1)} s/epoch")
        if spent:
            line += f" | {_duration(time.time() - t0)}; about {_duration(statistics.fmean(spent) * (len(plan) - k))} left"
        print(line, flush=True)
        info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        info["finished_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if rows:
            write_tables(args.out_dir, rows, args, trainer, command, info)
    print(f"table: {args.out_dir / 'compare.md'} (and .csv, .json, .png)" + (f"; {failed} run(s) failed" if failed else "")
          + (f"; {missing} run(s) of the plan not run yet" if missing else ""))
    if failed:
        sys.exit(1)
    return [e for regime in args.regimes for e in aggregate(rows, args.losses, regime)]


if __name__ == "__main__":
    main()
