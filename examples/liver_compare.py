"""Compare losses on the liver example: train every loss x seed, one run after another, and tabulate.

    python examples/liver_compare.py                                  # 8 losses x seeds 0 1 2, default settings
    python examples/liver_compare.py --losses dice boundary --seeds 0 -- --quick --threads 1

Everything after ``--`` goes to ``examples/train_liver.py`` unchanged (the runner sets ``--loss``,
``--seed`` and ``--out-dir`` itself). Each run has its folder ``OUT_DIR/runs/<loss>-seed<k>/`` (the
trainer's files and its output in ``train.log``); after every run the runner rewrites
``OUT_DIR/compare.md``, ``compare.csv`` and ``compare.json``: per loss, the mean and sample standard
deviation over the seeds of the final epoch's validation Dice, HD95 and ASSD (mm) and of the
training seconds per epoch, with the exact command and the machine.

Resumable: a run whose ``summary.json`` exists is not run again; a run that was interrupted
continues from its ``last.pt`` (``--resume``). A run folder made with other trainer options is
refused rather than mixed. The seed also draws the phantom and the folds, so every loss meets the
same data at a given seed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
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
from liver.losses import LOSSES, RECIPES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_LOSSES = ("dice", "seed", "boundary", "boundary-loss", "hausdorff", "boundary-dou", "nnunet", "monai-dicece")
METRICS = (("val_dice", "Dice"), ("val_hd95_mm", "HD95 (mm)"), ("val_assd_mm", "ASSD (mm)"),
           ("seconds_per_epoch", "s/epoch"))
RESERVED = ("--loss", "--seed", "--out-dir", "--resume")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The runner's options, and the trainer options after ``--``."""
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Trainer options go after --, e.g. -- --quick --threads 1.")
    p.add_argument("--losses", nargs="+", choices=LOSSES, default=list(DEFAULT_LOSSES), metavar="LOSS",
                   help=f"losses to compare (default: {' '.join(DEFAULT_LOSSES)}; choices: {', '.join(LOSSES)})")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/compare"), help="(default: %(default)s)")
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


def trainer_command(loss: str, seed: int, run_dir: Path, trainer: list[str]) -> list[str]:
    return [sys.executable, str(HERE / "train_liver.py"), "--loss", loss, "--seed", str(seed),
            "--out-dir", str(run_dir), *trainer]


def run_one(loss: str, seed: int, run_dir: Path, trainer: list[str]) -> tuple[str, dict[str, Any] | None]:
    """Run (or resume, or skip) one training run: ``(what happened, its summary or None)``."""
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


def run_row(loss: str, seed: int, summary: dict[str, Any]) -> dict[str, Any]:
    """One run's numbers: the final epoch's scores (and the best-Dice epoch's), seconds per epoch."""
    final, best = summary.get("final_epoch") or {}, summary.get("best_epoch") or {}
    row = {"loss": loss, "seed": seed, "status": summary["status"], "epochs": summary["epochs_run"],
           "seconds_per_epoch": summary.get("seconds_per_epoch"), "wall_seconds": summary["wall_seconds"]}
    row.update({k: final.get(k) for k, _ in METRICS[:3]})
    row.update({f"best_{k}": best.get(k) for k in ("epoch", *(k for k, _ in METRICS[:3]))})
    return row


def aggregate(rows: list[dict[str, Any]], losses: list[str]) -> list[dict[str, Any]]:
    """Per loss: runs counted, and mean and sample standard deviation of each metric over its runs."""
    table = []
    for loss in losses:
        mine = [r for r in rows if r["loss"] == loss]
        entry: dict[str, Any] = {"loss": loss, "runs": len(mine),
                                 "finished": sum(r["status"] == "finished" for r in mine)}
        for key, _ in METRICS:
            values = [float(r[key]) for r in mine if r.get(key) is not None and math.isfinite(float(r[key]))]
            entry[f"{key}_mean"] = statistics.fmean(values) if values else None
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        table.append(entry)
    return table


def _cell(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def write_tables(out: Path, rows: list[dict[str, Any]], args: argparse.Namespace, trainer: list[str], command: str,
                 info: dict[str, Any]) -> None:
    """compare.md, compare.csv and compare.json in ``out`` (rewritten atomically after every run)."""
    table = aggregate(rows, args.losses)
    example = shlex.join(["python", "examples/train_liver.py", "--loss", "LOSS", "--seed", "SEED", "--out-dir",
                          str(out / "runs" / "LOSS-seedSEED"), *trainer])
    lines = ["# Liver example: losses compared", "",
             f"Command: `{command}`", "",
             f"Each run: `{example}`", "",
             (f"Machine: {info['platform']}, {info['cpu_count']} CPUs ({info['processor']}), "
              f"CUDA device: {info['cuda_device'] or 'none'}; Python {info['python']}, torch {info['torch']}; "
              f"commit {info['git_commit']}; load average at the start {info['load_average']}, "
              f"at the end {info['load_average_end']}; {info['finished_at']}."), "",
             ("Final epoch's validation scores (3D, mean over the validation volumes; HD95 and ASSD in mm, a "
              "volume with an empty prediction or target scoring its extent diagonal), mean ± sample standard "
              "deviation over the seeds; s/epoch times the training pass (validation not included)."), "",
             "| loss | runs | " + " | ".join(title for _, title in METRICS) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " |"]
    digits = {"val_dice": 4, "val_hd95_mm": 2, "val_assd_mm": 2, "seconds_per_epoch": 1}
    for e in table:
        runs = f"{e['runs']}" + ("" if e["finished"] == e["runs"] else f" ({e['runs'] - e['finished']} stopped)")
        cells = [_cell(e[f"{k}_mean"], e[f"{k}_std"], digits[k]) for k, _ in METRICS]
        lines.append(f"| {e['loss']} | {runs} | " + " | ".join(cells) + " |")
    lines += ["", "Losses: " + "; ".join(f"`{name}`: {RECIPES[name].description}" for name in args.losses) + "."]
    atomic_write(out / "compare.md", "\n".join(lines) + "\n")
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    atomic_write(out / "compare.csv", text.getvalue())
    atomic_write(out / "compare.json", json.dumps({"command": command, "trainer_options": trainer,
                                                   "losses": args.losses, "seeds": args.seeds, "machine": info,
                                                   "table": table, "runs": rows}, indent=2))


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min" if hours else (f"{m} min {s} s" if m else f"{s} s")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the comparison ``argv`` asks for; returns the per-loss table."""
    argv = sys.argv[1:] if argv is None else argv
    args, trainer = parse_args(argv)
    command = shlex.join(["python", "examples/liver_compare.py", *argv])
    info = machine()
    plan = [(loss, seed) for seed in args.seeds for loss in args.losses]
    rows: list[dict[str, Any]] = []
    spent: list[float] = []
    failed = 0
    for k, (loss, seed) in enumerate(plan, 1):
        run_dir = args.out_dir / "runs" / f"{loss}-seed{seed}"
        t0 = time.time()
        what, summary = run_one(loss, seed, run_dir, trainer)
        line = f"[{k}/{len(plan)}] {loss}, seed {seed}: {what}"
        if summary is None:
            failed += 1
        else:
            row = run_row(loss, seed, summary)
            rows.append(row)
            if what != "done before, skipped":
                spent.append(time.time() - t0)
            line += (f" | Dice {_cell(row['val_dice'], None, 4)} | HD95 {_cell(row['val_hd95_mm'], None, 2)} mm | "
                     f"ASSD {_cell(row['val_assd_mm'], None, 2)} mm | {_cell(row['seconds_per_epoch'], None, 1)} s/epoch")
        if spent:
            line += f" | {_duration(time.time() - t0)}; about {_duration(statistics.fmean(spent) * (len(plan) - k))} left"
        print(line, flush=True)
        info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        info["finished_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if rows:
            write_tables(args.out_dir, rows, args, trainer, command, info)
    print(f"table: {args.out_dir / 'compare.md'} (and .csv, .json)" + (f"; {failed} run(s) failed" if failed else ""))
    if failed:
        sys.exit(1)
    return aggregate(rows, args.losses)


if __name__ == "__main__":
    main()
