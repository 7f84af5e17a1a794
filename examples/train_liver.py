"""Train the liver CT U-Net of the experiment (EfficientNet-B0, 2.5D input) with stableloss.

Quick start (synthetic phantom, CPU, no download)::

    python examples/train_liver.py            # default run
    python examples/train_liver.py --quick    # smoke test, about a minute
    python examples/train_liver.py --preset hard-low-data   # hard phantom, 2 training volumes (issue 18)

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
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from liver import distributed as ddp
from liver.atomic import atomic_write
from liver.cache import SliceCache, SliceDataset, build_cache, epoch_slices
from liver.checkpoint import TrainState, load_checkpoint, save_checkpoint
from liver.config import choose_folds, cpu_threads, parse_args
from liver.data import find_cases, make_target
from liver.folds import patient_folds
from liver.guard import NonFiniteError, NonFiniteGuard, nonfinite_parameters
from liver.hard_phantom import write_hard_phantom
from liver.infer import predict_volume, to_labels
from liver.losses import build_loss, has_schedule, uses_distance_maps
from liver.metrics import ValidationTracker
from liver.model import build_model
from liver.phantom import write_phantom
from liver.postprocess import keep_largest_component
from liver.precision import Precision
from liver.report import save_contours, write_csv


def train_step(state: TrainState, x: torch.Tensor, y: torch.Tensor, maps: torch.Tensor | None, *,
               precision: Precision, clip: float, where: str) -> float | None:
    """One optimizer step on the batch ``(x, y)`` (and the target's distance maps, for the losses
    that use them): the loss, or None if the guard skipped the step.

    ``where`` ("epoch 1, batch 7") is how the guard names the step in its messages.
    """
    extra = {} if maps is None else {"distance_map": maps}
    state.optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        terms = state.criterion.components(state.model(x), y, **extra)
    if not state.guard.check_loss(terms, where):
        return None
    loss = state.criterion.combine(terms)
    state.scaler.scale(loss).backward()
    state.scaler.unscale_(state.optimizer)
    norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), clip)
    if state.guard.check_grad(norm, where):
        state.scaler.step(state.optimizer)
    state.scaler.update()
    return float(loss.detach())


def train_epoch(state: TrainState, loader: DataLoader, *, epoch: int, precision: Precision, clip: float,
                max_steps: int | None = None, progress: bool = True) -> float:
    """One pass over ``loader``: the mean loss of the steps taken (NaN if one was NaN, which only
    ``--no-guard`` lets through, or if none was taken)."""
    state.model.train()
    losses: list[float] = []
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=None if progress else True)
    for batch, (x, y, *maps) in enumerate(bar):  # maps: the targets' distance maps, when the loss uses them
        if max_steps is not None and batch >= max_steps:
            break
        phi = maps[0].to(precision.device) if maps else None
        loss = train_step(state, x.to(precision.device), y.to(precision.device), phi, precision=precision,
                          clip=clip, where=f"epoch {epoch}, batch {batch}")
        state.scheduler.step()  # a skipped step advances the schedule too
        state.step += 1
        if loss is not None:
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.4f}")
    return float(np.mean(losses)) if losses else float("nan")


def validate(model, cache: SliceCache, val_ids: list[str], *, target: str, precision: Precision, batch_size: int,
             lcc: bool = True):
    """Per validation volume in 3D (slices reassembled): Dice, HD95 and ASSD (mm, with the volume's
    voxel size at the cached resolution); their means, global Dice, and the (raw) masks.

    With ``lcc`` the same scores after keeping the prediction's largest connected component
    (:func:`liver.postprocess.keep_largest_component`) are added under the same keys with ``_lcc``
    appended (``dice_per_volume_lcc``, ``hd95_mm_lcc``, ...).
    """
    multiclass = target == "multiclass"
    classes = (1, 2) if multiclass else (1,)
    tracker, post = ValidationTracker(classes), ValidationTracker(classes)
    preds, trues = {}, {}
    for cid in tqdm(val_ids, desc="validate", leave=False, disable=None):
        volume = np.asarray(cache.volume(cid), np.float32)
        probs = predict_volume([model], volume, multiclass=multiclass, device=precision.device,
                               precision=precision.name, batch_size=batch_size)
        preds[cid] = to_labels(probs, multiclass)
        trues[cid] = make_target(np.asarray(cache.labels(cid)), target)
        tracker.add(cid, preds[cid], trues[cid], spacing=cache.voxel_mm(cid))
        if lcc:
            post.add(cid, keep_largest_component(preds[cid]), trues[cid], spacing=cache.voxel_mm(cid))
    scores = tracker.summary()
    if lcc:
        scores.update({f"{k}_lcc": v for k, v in post.summary().items()})
    return scores, preds, trues


def end_of_epoch(state: TrainState, loss: float, seconds: float, *, cache: SliceCache, val_ids: list[str], args,
                 precision: Precision, config: dict[str, Any], log) -> None:
    """Rank 0: validate, extend the history, write best.pt (and validation.png) when validation Dice
    is the best so far (HD95 and ASSD are reported, not used to choose), last.pt and history.csv
    every epoch, and print the epoch's line."""
    scores, preds, trues = validate(state.network, cache, val_ids, target=args.target, precision=precision,
                                    batch_size=args.batch_size)
    guard, out = state.guard, args.out_dir
    best = scores["dice_per_volume"] > state.best
    row = {"epoch": state.epoch, "train_loss": round(loss, 5), "val_dice": round(scores["dice_per_volume"], 5),
           "val_dice_global": round(scores["dice_global"], 5), "val_hd95_mm": round(scores["hd95_mm"], 3),
           "val_assd_mm": round(scores["assd_mm"], 3), "val_dice_lcc": round(scores["dice_per_volume_lcc"], 5),
           "val_hd95_mm_lcc": round(scores["hd95_mm_lcc"], 3), "val_assd_mm_lcc": round(scores["assd_mm_lcc"], 3),
           "best": int(best),
           "lr": f"{state.scheduler.get_last_lr()[0]:.3g}", "skipped": guard.skipped,
           "scaler_skipped": guard.scaler_skipped, "seconds": round(seconds, 1)}
    state.history.append(row)
    if best:
        state.best = scores["dice_per_volume"]
        save_checkpoint(out / "best.pt", state, config)
        save_contours(out / "validation.png", {c: cache.volume(c) for c in val_ids}, preds, trues)
    save_checkpoint(out / "last.pt", state, config)
    write_csv(out / "history.csv", state.history)
    log(f"epoch {state.epoch}/{args.epochs} | train loss {loss:.4f} | val Dice {scores['dice_per_volume']:.4f} "
        f"(global {scores['dice_global']:.4f}) | HD95 {scores['hd95_mm']:.1f} mm | ASSD {scores['assd_mm']:.2f} mm | "
        f"largest component: Dice {scores['dice_per_volume_lcc']:.4f}, HD95 {scores['hd95_mm_lcc']:.1f} mm | "
        f"lr {row['lr']} | skipped {guard.skipped} | {row['seconds']} s")


def epoch_scores(row: dict[str, Any]) -> dict[str, Any]:
    """An epoch's validation scores from its history row (for summary.json): raw, and after keeping the
    largest connected component (``_lcc``)."""
    keys = ("epoch", "val_dice", "val_hd95_mm", "val_assd_mm", "val_dice_lcc", "val_hd95_mm_lcc", "val_assd_mm_lcc")
    return {k: row[k] for k in keys if k in row}


def prepare_data(args, info: ddp.DistInfo, *, maps: bool):
    """Find (or generate) the cases and build the slice cache, with the targets' distance maps if
    ``maps``; rank 0 writes, the others wait."""
    data_dir = args.data_dir
    if data_dir is None:
        kind = "" if args.phantom == "default" else f"-{args.phantom}"
        data_dir = args.cache_dir / (f"phantom{kind}-v1-n{args.phantom_volumes}-s{args.phantom_size}"
                                     f"-z{args.phantom_slices}-seed{args.seed}")
        writer = write_hard_phantom if args.phantom == "hard" else write_phantom
        if info.main:
            writer(data_dir, args.phantom_volumes, size=args.phantom_size, slices=args.phantom_slices, seed=args.seed)
        ddp.barrier(info)
    cases = find_cases(data_dir)
    maps_for = args.target if maps else None
    if info.main:
        build_cache(cases, args.cache_dir, args.img_size, args.hu_window, maps_for=maps_for)
    ddp.barrier(info)
    return cases, build_cache(cases, args.cache_dir, args.img_size, args.hu_window, maps_for=maps_for, progress=False)


def pixel_spacing(cache: SliceCache, case_ids: list[str], log) -> tuple[float, float]:
    """The in-plane pixel size (mm) for the loss: the median over ``case_ids`` of the cached slices'.

    The target maps come from the cache with each volume's own pixel size; a loss's own distance
    computations (the prediction's map in the Hausdorff-DT loss, the normalisation by the slice's
    extent) take one spacing per batch, so volumes whose pixel sizes differ get the median (one line
    says so).
    """
    sizes = np.array([cache.voxel_mm(c)[1:] for c in case_ids])
    median = (float(np.median(sizes[:, 0])), float(np.median(sizes[:, 1])))
    if np.ptp(sizes, axis=0).max() > 0.01 * max(median):
        log(f"in-plane pixel sizes differ between training volumes ({sizes.min():.3g}-{sizes.max():.3g} mm after "
            f"resizing): the loss's own distance computations use the median, {median[0]:.3g} x {median[1]:.3g} mm, "
            "and the distance terms do not check the cached maps (each made with its volume's own spacing) against it")
    return median


def uniform_spacing(cache: SliceCache, case_ids: list[str]) -> bool:
    """Whether the training volumes share one in-plane pixel size (within 1%): the loss can then check the maps."""
    sizes = np.array([cache.voxel_mm(c)[1:] for c in case_ids])
    return bool(np.ptp(sizes, axis=0).max() <= 0.01 * np.median(sizes, axis=0).max())


def epoch_loader(cache: SliceCache, train_ids: list[str], args, info: ddp.DistInfo, epoch: int) -> DataLoader:
    """This rank's batches of one epoch's slices (see :func:`liver.cache.epoch_slices`)."""
    items = epoch_slices(cache, train_ids, neg_ratio=args.neg_ratio, seed=args.seed, epoch=epoch)
    return DataLoader(SliceDataset(cache, ddp.shard(items, info, args.batch_size), args.target),
                      batch_size=args.batch_size, num_workers=args.workers)


def lr_lambda(warmup: int, total: int):
    """Linear warm-up over ``warmup`` steps, then cosine decay to 1% of the peak."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
    return f


def build_state(args, info: ddp.DistInfo, precision: Precision, steps_per_epoch: int, spacing: tuple[float, float],
                log, check_maps: bool = True) -> TrainState:
    """Network (DDP-wrapped under torchrun), loss, AdamW, warm-up + cosine schedule, scaler, guard."""
    multiclass = args.target == "multiclass"
    net = build_model(args.encoder, args.encoder_weights, 3 if multiclass else 1, log=log).to(info.device)
    model = DistributedDataParallel(net) if info.enabled else net
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warmup = max(1, int(args.warmup_epochs * steps_per_epoch))
    scaler = precision.grad_scaler()
    return TrainState(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, args.epochs * steps_per_epoch)),
        scaler=scaler,
        criterion=build_loss(args.loss, "multiclass" if multiclass else "binary", global_batch=info.enabled,
                             spacing=spacing, check_maps=check_maps),
        guard=NonFiniteGuard(args.patience, enabled=not args.no_guard, scaler_active=scaler.is_enabled(),
                             all_ranks=lambda flag: ddp.all_true(flag, info), log=log),
    )


def main(argv: list[str] | None = None, *, stop_after: int | None = None) -> dict[str, Any]:
    """Train as the command line ``argv`` says; returns the summary (also written to summary.json).

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).
        stop_after: End the run after this epoch, as an interruption would (to test ``--resume``).
    """
    args = parse_args(argv)
    # Skipped steps (ours or the GradScaler's) still advance the schedule, which PyTorch warns about.
    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
    info = ddp.setup(args.device)
    if info.device.type == "cpu":
        torch.set_num_threads(max(1, cpu_threads(args.threads) // info.world))
    log = print if info.main else (lambda *a, **k: None)
    start_time = time.time()
    torch.manual_seed(args.seed)
    precision = Precision.resolve(args.precision, info.device)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    mode = "multiclass" if args.target == "multiclass" else "binary"
    cases, cache = prepare_data(args, info, maps=uses_distance_maps(build_loss(args.loss, mode)))
    args.folds, note = choose_folds(args, len(cases))
    if note:
        log(note)
    train_ids, val_ids = patient_folds([c.case_id for c in cases], args.folds, seed=args.seed)[args.fold]
    if args.train_volumes is not None:
        if args.train_volumes > len(train_ids):
            raise ValueError(f"--train-volumes must be at most the fold's {len(train_ids)} training volumes; "
                             f"received {args.train_volumes}")
        train_ids = train_ids[:args.train_volumes]
    log(f"{len(cases)} volumes: {len(train_ids)} train, {len(val_ids)} validation (fold {args.fold} of {args.folds}); "
        f"loss {args.loss}, precision {precision}, device {info.device}, {info.world} process(es), "
        f"{torch.get_num_threads()} thread(s)")
    steps_per_epoch = len(epoch_loader(cache, train_ids, args, info, epoch=1))
    if args.max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    state = build_state(args, info, precision, steps_per_epoch, pixel_spacing(cache, train_ids, log), log,
                        check_maps=uniform_spacing(cache, train_ids))
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    if args.resume:
        load_checkpoint(out / "last.pt", state)
        log(f"resumed from {out / 'last.pt'} after epoch {state.epoch}")
    if info.main:
        atomic_write(out / "config.json", json.dumps({**config, "precision_resolved": precision.name}, indent=2))

    status, digests = "finished", []
    try:
        while state.epoch < args.epochs:
            t0, epoch = time.time(), state.epoch + 1
            loss = train_epoch(state, epoch_loader(cache, train_ids, args, info, epoch), epoch=epoch,
                               precision=precision, clip=args.clip, max_steps=args.max_steps, progress=info.main)
            state.epoch = epoch
            if has_schedule(state.criterion):  # loss-weight schedules move once per epoch; checkpoints keep them
                state.criterion.step()  # type: ignore[operator]
            bad = nonfinite_parameters(state.network)
            if bad is not None:  # only possible with --no-guard: stop without saving these weights
                raise NonFiniteError(f"parameter {bad!r} is not finite after epoch {state.epoch}; no checkpoint written")
            digests = ddp.check_same_weights(state.network, info, when=f"after epoch {state.epoch}")
            if info.main:
                end_of_epoch(state, loss, time.time() - t0, cache=cache, val_ids=val_ids, args=args,
                             precision=precision, config=config, log=log)
            ddp.barrier(info)
            if stop_after is not None and state.epoch >= stop_after:
                status = f"stopped after epoch {state.epoch}"
                break
    except NonFiniteError as err:
        status = f"stopped: {err}"
        log(f"training stopped by the non-finite guard: {err}")

    guard, history = state.guard, state.history
    best_rows = [r for r in history if r.get("best")]
    summary = {"status": status, "best_val_dice": state.best,
               "best_epoch": epoch_scores(best_rows[-1]) if best_rows else None,
               "final_epoch": epoch_scores(history[-1]) if history else None, "epochs_run": len(history),
               "seconds_per_epoch": round(float(np.mean([r["seconds"] for r in history])), 2) if history else None,
               "loss_weights": state.criterion.weights,
               "wall_seconds": round(time.time() - start_time, 1), "train_steps": state.step,
               "skipped_steps": guard.skipped, "scaler_skipped_steps": guard.scaler_skipped,
               "nonfinite_events": guard.events[:20], "loss": args.loss, "precision": precision.name,
               "processes": info.world, "weights_sha1_per_rank": digests, "run_dir": str(out)}
    if info.main:
        atomic_write(out / "summary.json", json.dumps(summary, indent=2))
        best_epoch = summary["best_epoch"]
        shown = "none (no epoch finished)"
        if best_epoch:
            shown = (f"{state.best:.4f} (epoch {best_epoch['epoch']}: HD95 {best_epoch['val_hd95_mm']:.1f} mm, "
                     f"ASSD {best_epoch['val_assd_mm']:.2f} mm)")
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
