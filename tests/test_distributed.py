"""global_batch=True: two gloo processes give the loss and gradients of one process on the whole batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import stableloss

WORLD = 2
CASES = {
    "dice-binary": (lambda: stableloss.DiceLoss("binary", global_batch=True), "binary", 1),
    "tversky-multiclass": (lambda: stableloss.TverskyLoss("multiclass", alpha=0.3, beta=0.7, gamma=0.75, global_batch=True),
                           "multiclass", 3),
    "logcosh-multilabel": (lambda: stableloss.LogCoshDiceLoss("multilabel", global_batch=True), "multilabel", 2),
    "jaccard-binary-log": (lambda: stableloss.JaccardLoss("binary", log_loss=True, global_batch=True), "binary", 1),
}


def _batch(mode: str, channels: int):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, channels, 6, 5, generator=gen) * 3
    if mode == "multiclass":
        target = torch.randint(0, channels, (4, 6, 5), generator=gen)
    else:
        target = (torch.rand(4, channels, 6, 5, generator=gen) > 0.6).float()
    return logits, target


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for name, (build, mode, channels) in CASES.items():
            logits, target = _batch(mode, channels)
            part = slice(rank * 2, rank * 2 + 2)
            local = logits[part].clone().requires_grad_(True)
            loss = build()(local, target[part])
            loss.backward()
            results[name] = (loss.detach(), local.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # neither rank tears the group down while the other still talks to it
    finally:
        dist.destroy_process_group()


def test_global_batch_matches_single_process_on_concatenated_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for name, (build, mode, channels) in CASES.items():
        logits, target = _batch(mode, channels)
        logits.requires_grad_(True)
        expected = build()(logits, target)  # no process group here: plain single-process loss
        expected.backward()
        for rank, results in enumerate(ranks):
            loss, grad = results[name]
            torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=1e-6, msg=f"{name} loss, rank {rank}")
            # Each rank's gradient is WORLD x its slice; DDP's averaging over ranks divides it back.
            torch.testing.assert_close(grad / WORLD, logits.grad[rank * 2: rank * 2 + 2], rtol=1e-5, atol=1e-7,
                                       msg=f"{name} gradient, rank {rank}")


def test_global_batch_without_process_group_is_the_plain_loss():
    logits, target = _batch("binary", 1)
    plain = stableloss.dice_loss(logits, target, mode="binary")
    synced = stableloss.dice_loss(logits, target, mode="binary", global_batch=True)
    assert torch.equal(plain, synced)


def test_global_batch_with_per_image_is_rejected():
    logits, target = _batch("binary", 1)
    with pytest.raises(ValueError, match="per_image and global_batch must not both be True"):
        stableloss.dice_loss(logits, target, mode="binary", per_image=True, global_batch=True)
