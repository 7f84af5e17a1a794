"""Predict liver masks with one checkpoint or an ensemble, writing NIfTI with the input's affine.

Several ``--checkpoint`` files form an ensemble: their probabilities are averaged before the
threshold (the experiment's "final submission idea"). Each volume is preprocessed as in training
(from the checkpoint's config: HU window, image size), predicted slice by slice with 2.5D input,
the probabilities are resized back to the volume's in-plane size, thresholded (argmax for
multiclass), returned to the file's own orientation and saved with its affine. Where a label file
exists (``--input`` a LiTS/MSD folder, or ``--label``), Dice is reported. With
``--largest-component`` each mask keeps only its largest 3-D connected component (face
connectivity; :mod:`liver.postprocess`) before it is written, and Dice is reported both after and
before (``raw``).

Examples::

    python examples/predict_liver.py --checkpoint runs/liver/best.pt --input volume-3.nii.gz --output preds/
    python examples/predict_liver.py --checkpoint a/best.pt b/best.pt c/best.pt --input /data/lits --output preds/
    python examples/predict_liver.py --checkpoint runs/liver/best.pt --input /data/lits --output preds/ --largest-component
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from liver.atomic import atomic_write
from liver.checkpoint import read_checkpoint
from liver.config import cpu_threads
from liver.data import Case, find_cases, load_case, make_target, preprocess, to_original_orientation
from liver.infer import predict_volume, to_labels
from liver.metrics import DiceTracker
from liver.model import build_model
from liver.postprocess import keep_largest_component
from liver.precision import PRECISIONS, Precision


def load_models(paths, device):
    """Models and their shared preprocessing settings; checkpoints must agree on them."""
    models, settings = [], None
    for path in paths:
        ckpt = read_checkpoint(path)
        cfg = ckpt["config"]
        these = {"img_size": cfg["img_size"], "hu_window": list(cfg["hu_window"]), "target": cfg["target"],
                 "encoder": cfg["encoder"]}
        if settings is not None and these != settings:
            raise ValueError(f"checkpoint {str(path)!r} was trained with {these}, unlike the first checkpoint's {settings}")
        settings = these
        model = build_model(cfg["encoder"], "none", 3 if cfg["target"] == "multiclass" else 1)
        model.load_state_dict(ckpt["model"])
        models.append(model.to(device).eval())
    return models, settings


def cases_from(input_path: Path, label: Path | None):
    """A single NIfTI file (optionally with ``label``) or every case found in a folder."""
    if input_path.is_file():
        return [Case(input_path.name.split(".")[0], input_path, label)]
    if input_path.is_dir():
        return find_cases(input_path, require_labels=False)
    raise FileNotFoundError(f"input {str(input_path)!r} is neither a NIfTI file nor a folder")


def predict_case(case, models, settings, device, precision, batch_size, *, largest_component=False):
    """Hard mask in the file's voxel order, the original image, the canonical mask, the canonical label
    (or None), and the canonical mask before post-processing.

    With ``largest_component`` the mask keeps only its largest connected component
    (:func:`liver.postprocess.keep_largest_component`); otherwise the last item is the mask itself.
    """
    hu, labels, original = load_case(case)
    multiclass = settings["target"] == "multiclass"
    volume = preprocess(hu, settings["img_size"], settings["hu_window"])
    probs = predict_volume(models, volume, multiclass=multiclass, device=device, precision=precision, batch_size=batch_size)
    probs = F.interpolate(torch.from_numpy(probs), size=hu.shape[1:], mode="bilinear", align_corners=False).numpy()
    raw = to_labels(probs, multiclass)
    mask = keep_largest_component(raw) if largest_component else raw
    return to_original_orientation(mask, original), original, mask, labels, raw


def _nifti_writer(image):
    """A writer for :func:`liver.atomic.atomic_write` (nibabel picks the compression by the extension)."""
    return lambda path: nib.save(image, str(path))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="one or more best.pt/last.pt (ensemble)")
    p.add_argument("--input", type=Path, required=True, help="a NIfTI volume, or a LiTS/MSD folder")
    p.add_argument("--label", type=Path, help="segmentation for a single --input file, to report Dice")
    p.add_argument("--output", type=Path, required=True, help="folder for <case>_pred.nii.gz and dice.json")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, help="CPU threads (default: the idle cores, at least 1)")
    p.add_argument("--largest-component", action="store_true",
                   help="keep each mask's largest 3-D connected component (face connectivity) before writing it; "
                   "Dice is then reported after and before (raw)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(args.threads))
    precision = Precision.resolve(args.precision, device).name
    models, settings = load_models(args.checkpoint, device)
    args.output.mkdir(parents=True, exist_ok=True)
    classes = (1, 2) if settings["target"] == "multiclass" else (1,)
    tracker, raw_tracker = DiceTracker(classes), DiceTracker(classes)
    for case in cases_from(args.input, args.label):
        mask, original, canonical_mask, labels, raw = predict_case(case, models, settings, device, precision,
                                                                   args.batch_size, largest_component=args.largest_component)
        out = args.output / f"{case.case_id}_pred.nii.gz"
        atomic_write(out, _nifti_writer(nib.Nifti1Image(mask.astype(np.uint8), original.affine, original.header)))
        line = f"{case.image} -> {out}"
        if labels is not None:
            true = make_target(labels, settings["target"])
            line += f" | Dice {tracker.add(case.case_id, canonical_mask, true):.4f}"
            if args.largest_component:
                line += f" (raw {raw_tracker.add(case.case_id, raw, true):.4f})"
        print(line)
    result: dict[str, object] = {"checkpoints": [str(c) for c in args.checkpoint], "largest_component": args.largest_component,
                                 "per_volume": tracker.per_volume}
    if tracker.per_volume:
        result.update(tracker.summary())
        print(f"Dice over {len(tracker.per_volume)} volume(s): mean {result['dice_per_volume']:.4f}, global {result['dice_global']:.4f}")
    if args.largest_component and raw_tracker.per_volume:
        result.update({"per_volume_raw": raw_tracker.per_volume, **{f"{k}_raw": v for k, v in raw_tracker.summary().items()}})
        print(f"before keeping the largest component: mean {result['dice_per_volume_raw']:.4f}, "
              f"global {result['dice_global_raw']:.4f}")
    atomic_write(args.output / "dice.json", json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as err:  # bad input: one line naming the file, no traceback
        sys.exit(f"error: {err}")
