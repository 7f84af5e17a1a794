"""Train the liver CT U-Net of the experiment (EfficientNet-B0, 2.5D input) with stableloss.

Quick start (synthetic phantom, CPU, no download)::

    python examples/train_liver.py            # default run
    python examples/train_liver.py --quick    # smoke test, about a minute

Real data on a GPU (LiTS or MSD Task03_Liver)::

    python examples/train_liver.py --data-dir /data/lits --img-size 256 --epochs 30 --batch-size 32

Distributed: ``torchrun --nproc_per_node=2 examples/train_liver.py ...``. See docs/liver-example.md.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from liver import distributed as ddp  # noqa: E402
from liver.cache import SliceDataset, build_cache, epoch_slices  # noqa: E402
from liver.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from liver.config import cpu_threads, parse_args  # noqa: E402
from liver.data import find_cases, make_target  # noqa: E402
from liver.folds import patient_folds  # noqa: E402
from liver.guard import NonFiniteError, NonFiniteGuard, nonfinite_parameters  # noqa: E402
from liver.infer import autocast, make_scaler, predict_volume, resolve_precision, to_labels  # noqa: E402
from liver.losses import build_loss  # noqa: E402
from liver.metrics import DiceTracker  # noqa: E402
from liver.model import build_model  # noqa: E402
from liver.phantom import write_phantom  # noqa: E402
from liver.report import save_contours, write_csv  # noqa: E402


def prepare_data(args, info):
    """Find (or generate) the cases and build the slice cache; rank 0 writes, the others wait."""
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = args.cache_dir / (f"phantom-v1-n{args.phantom_volumes}-s{args.phantom_size}"
                                     f"-z{args.phantom_slices}-seed{args.seed}")
        if info.main:
            write_phantom(data_dir, args.phantom_volumes, size=args.phantom_size, slices=args.phantom_slices, seed=args.seed)
        ddp.barrier(info)
    cases = find_cases(data_dir)
    if info.main:
        build_cache(cases, args.cache_dir, args.img_size, args.hu_window)
    ddp.barrier(info)
    return cases, build_cache(cases, args.cache_dir, args.img_size, args.hu_window, progress=False)


def lr_lambda(warmup: int, total: int):
    """Linear warm-up over ``warmup`` steps, then cosine decay to 1% of the peak."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
    return f


def train_epoch(model, loader, criterion, opt, sched, scaler, guard, args, info, precision, epoch):
    """One epoch; returns the mean loss of the steps taken (NaN if one was NaN, with --no-guard)."""
    model.train()
    losses = []
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=None if info.main else True)
    for batch, (x, y) in enumerate(bar):
        if args.max_steps is not None and batch >= args.max_steps:
            break
        x, y = x.to(info.device), y.to(info.device)
        opt.zero_grad(set_to_none=True)
        with autocast(precision, info.device):
            components = criterion.components(model(x), y)
        finite = all(bool(torch.isfinite(v)) for v in components.values())
        if not ddp.all_true(finite, info) and not args.no_guard:
            if not finite:
                guard.check_loss(components, epoch=epoch, batch=batch)
            else:
                guard.skip(f"loss non-finite on another rank at epoch {epoch}, batch {batch}")
            sched.step()
            continue
        if not finite:  # only with --no-guard: carry on as the experiment's loop did
            guard.events.append(f"unguarded: non-finite loss at epoch {epoch}, batch {batch}: "
                                + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in components.items()))
        loss = criterion.combine(components)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        if args.no_guard:
            guard.scaler_skipped += int(scaler.is_enabled() and not bool(torch.isfinite(norm)))
            scaler.step(opt)
        elif guard.check_grad(norm, epoch=epoch, batch=batch, scaler_active=scaler.is_enabled()) or scaler.is_enabled():
            scaler.step(opt)  # with fp16 the scaler itself skips a step whose gradients overflowed
        scaler.update()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return float(np.mean(losses)) if losses else float("nan")


def validate(model, cache, val_ids, args, info, precision):
    """3D Dice per validation volume (slices reassembled) and global Dice; also the masks."""
    multiclass = args.target == "multiclass"
    tracker = DiceTracker((1, 2) if multiclass else (1,))
    preds, trues = {}, {}
    for cid in tqdm(val_ids, desc="validate", leave=False, disable=None):
        volume = np.asarray(cache.volume(cid), np.float32)
        probs = predict_volume([model], volume, multiclass=multiclass, device=info.device, precision=precision,
                               batch_size=args.batch_size)
        preds[cid] = to_labels(probs, multiclass)
        trues[cid] = make_target(np.asarray(cache.labels(cid)), args.target)
        tracker.add(cid, preds[cid], trues[cid])
    return tracker.summary(), preds, trues


def main(argv=None) -> dict:
    args = parse_args(argv)
    # Skipped steps (ours or the GradScaler's) still advance the schedule, which PyTorch warns about.
    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
    info = ddp.setup(args.device)
    if info.device.type == "cpu":
        torch.set_num_threads(cpu_threads(args.threads) if not info.enabled else max(1, cpu_threads(args.threads) // info.world))
    log = print if info.main else (lambda *a, **k: None)
    start_time = time.time()
    torch.manual_seed(args.seed)
    precision = resolve_precision(args.precision, info.device)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    cases, cache = prepare_data(args, info)
    train_ids, val_ids = patient_folds([c.case_id for c in cases], args.folds, seed=args.seed)[args.fold]
    log(f"{len(cases)} volumes: {len(train_ids)} train, {len(val_ids)} validation (fold {args.fold} of {args.folds}); "
        f"loss {args.loss}, precision {precision}, device {info.device}, {info.world} process(es), "
        f"{torch.get_num_threads()} thread(s)")
    multiclass = args.target == "multiclass"
    net = build_model(args.encoder, args.encoder_weights, 3 if multiclass else 1, log=log).to(info.device)
    model = DistributedDataParallel(net) if info.enabled else net
    criterion = build_loss(args.loss, "multiclass" if multiclass else "binary", global_batch=info.enabled)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = len(ddp.shard(epoch_slices(cache, train_ids, neg_ratio=args.neg_ratio, seed=args.seed, epoch=1), info, args.batch_size))
    steps = math.ceil(steps / args.batch_size)
    if args.max_steps is not None:
        steps = min(steps, args.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(max(1, int(args.warmup_epochs * steps)), args.epochs * steps))
    scaler = make_scaler(precision, info.device)
    guard = NonFiniteGuard(args.patience, log=log)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    history, best, first_epoch = [], -1.0, 1
    if args.resume:
        ckpt = load_checkpoint(out / "last.pt")
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"])
        history, best, first_epoch = ckpt["history"], ckpt["best"], ckpt["epoch"] + 1
        guard.skipped, guard.scaler_skipped = ckpt["guard"]["skipped"], ckpt["guard"]["scaler_skipped"]
        log(f"resumed from {out / 'last.pt'} after epoch {ckpt['epoch']}")
    if info.main:
        (out / "config.json").write_text(json.dumps({**config, "precision_resolved": precision}, indent=2))
    status = "finished"
    try:
        for epoch in range(first_epoch, args.epochs + 1):
            t0 = time.time()
            items = ddp.shard(epoch_slices(cache, train_ids, neg_ratio=args.neg_ratio, seed=args.seed, epoch=epoch), info, args.batch_size)
            loader = DataLoader(SliceDataset(cache, items, args.target), batch_size=args.batch_size,
                                num_workers=args.workers, persistent_workers=False)
            loss = train_epoch(model, loader, criterion, opt, sched, scaler, guard, args, info, precision, epoch)
            bad = nonfinite_parameters(net)
            if bad is not None:  # only possible with --no-guard: stop without saving these weights
                raise NonFiniteError(f"parameter {bad!r} is not finite after epoch {epoch}; no checkpoint written")
            if info.main:
                scores, preds, trues = validate(net, cache, val_ids, args, info, precision)
                row = {"epoch": epoch, "train_loss": round(loss, 5), "val_dice": round(scores["dice_per_volume"], 5),
                       "val_dice_global": round(scores["dice_global"], 5), "lr": f"{sched.get_last_lr()[0]:.3g}",
                       "skipped": guard.skipped, "scaler_skipped": guard.scaler_skipped, "seconds": round(time.time() - t0, 1)}
                history.append(row)
                state = dict(optimizer=opt.state_dict(), scheduler=sched.state_dict(), scaler=scaler.state_dict(),
                             rng=torch.get_rng_state(), epoch=epoch, history=history, guard=guard.state(), config=config)
                if scores["dice_per_volume"] > best:
                    best = scores["dice_per_volume"]
                    save_checkpoint(out / "best.pt", net, **{**state, "best": best})
                    save_contours(out / "validation.png", {c: cache.volume(c) for c in val_ids}, preds, trues)
                save_checkpoint(out / "last.pt", net, **{**state, "best": best})
                write_csv(out / "history.csv", history)
                log(f"epoch {epoch}/{args.epochs} | train loss {loss:.4f} | val Dice {row['val_dice']:.4f} "
                    f"(global {row['val_dice_global']:.4f}) | lr {row['lr']} | skipped {guard.skipped} | {row['seconds']} s")
            ddp.barrier(info)
            if args.stop_after is not None and epoch >= args.stop_after:
                status = f"stopped after epoch {epoch} (--stop-after)"
                break
    except NonFiniteError as err:
        status = f"stopped: {err}"
        log(f"training stopped by the non-finite guard: {err}")
    summary = {"status": status, "best_val_dice": best, "epochs_run": len(history), "wall_seconds": round(time.time() - start_time, 1),
               "skipped_steps": guard.skipped, "scaler_skipped_steps": guard.scaler_skipped, "nonfinite_events": guard.events[:20],
               "loss": args.loss, "precision": precision, "run_dir": str(out)}
    if info.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        shown = f"{best:.4f}" if history else "none (no epoch finished)"
        log(f"best validation Dice (3D, mean over {len(val_ids)} volumes): {shown} | {status} | "
            f"{summary['wall_seconds']} s | run folder {out}")
    ddp.cleanup(info)
    return summary


if __name__ == "__main__":
    try:
        result = main()
    except (FileNotFoundError, ValueError) as err:  # bad data: one line naming the file, no traceback
        sys.exit(f"error: {err}")
    sys.exit(0 if result["status"].startswith(("finished", "stopped after")) else 1)
