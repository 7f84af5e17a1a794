"""Liver example under torchrun: two gloo processes on the CPU train several steps in lockstep."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from liver import distributed as ddp

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_train_several_steps_with_identical_weights(tmp_path):
    pytest.importorskip("nibabel")
    pytest.importorskip("segmentation_models_pytorch")
    # 3 volumes of 32x32x16 (2 train), batch 2 per process: at least 3 steps per process and epoch, 2 epochs.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(ROOT / "examples" / "train_liver.py"), "--phantom-volumes", "3", "--phantom-size", "32",
           "--phantom-slices", "16", "--img-size", "32", "--epochs", "2", "--batch-size", "2", "--folds", "3",
           "--encoder-weights", "none", "--device", "cpu", "--threads", "1",
           "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stdout and "epoch 2/2 |" in done.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == 2 and summary["processes"] == 2
    assert summary["train_steps"] >= 6 and summary["skipped_steps"] == 0
    digests = summary["weights_sha1_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]


def _check_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        info = ddp.DistInfo(rank, WORLD)
        torch.manual_seed(0)
        head = torch.nn.Linear(4, 1)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), head)
        results: list[list[str] | str] = [ddp.check_same_weights(model, info, when="after epoch 2")]
        if rank == 1:
            with torch.no_grad():
                head.bias.add_(1e-7)
        try:
            results.append(ddp.check_same_weights(model, info, when="after epoch 3"))
        except RuntimeError as err:
            results.append(str(err))
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_weight_check_names_the_parameter_that_differs_between_ranks(tmp_path):
    mp.spawn(_check_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    same, diverged = zip(*(torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)), strict=False)
    assert same[0] == same[1] and len(same[0]) == WORLD and same[0][0] == same[0][1]
    message = "parameter '1.bias' differs between rank 0 and rank 1 after epoch 3: the ranks no longer train the same model"
    assert diverged == (message,) * WORLD
