"""Liver example, prediction: ensemble averaging and NIfTI output in the input's space."""

import json

import numpy as np
import pytest
import torch

nib = pytest.importorskip("nibabel")
pytest.importorskip("segmentation_models_pytorch")

import predict_liver  # noqa: E402

from liver.checkpoint import save_checkpoint  # noqa: E402
from liver.infer import predict_volume  # noqa: E402
from liver.model import build_model  # noqa: E402
from liver.phantom import write_phantom  # noqa: E402
from tests.liver_state import train_state  # noqa: E402

CONFIG = {"img_size": 32, "hu_window": [-160.0, 240.0], "target": "liver", "encoder": "efficientnet-b0"}


def _models(n):
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(build_model("efficientnet-b0", "none", 1).eval())
    return out


def test_ensemble_averages_probabilities():
    a, b = _models(2)
    volume = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    both = predict_volume([a, b], volume, multiclass=False, device=torch.device("cpu"))
    one = [predict_volume([m], volume, multiclass=False, device=torch.device("cpu")) for m in (a, b)]
    assert both.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(both, (one[0] + one[1]) / 2, rtol=1e-5, atol=1e-6)


def test_predict_writes_masks_with_input_affine_and_reports_dice(tmp_path):
    data = write_phantom(tmp_path / "data", 2, size=32, slices=8, seed=0)
    paths = []
    for i, model in enumerate(_models(2)):
        paths.append(tmp_path / f"m{i}.pt")
        save_checkpoint(paths[-1], train_state(model), CONFIG)
    result = predict_liver.main(["--checkpoint", *map(str, paths), "--input", str(data), "--output", str(tmp_path / "out"),
                                 "--device", "cpu"])
    assert sorted(result["per_volume"]) == ["lits-0", "lits-1"]
    for i in range(2):
        src = nib.load(str(data / f"volume-{i}.nii.gz"))
        pred = nib.load(str(tmp_path / "out" / f"lits-{i}_pred.nii.gz"))
        np.testing.assert_array_equal(pred.affine, src.affine)
        assert pred.shape == src.shape
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1}
    saved = json.loads((tmp_path / "out" / "dice.json").read_text())
    assert 0.0 <= saved["dice_per_volume"] <= 1.0 and saved["per_volume"] == result["per_volume"]


def test_mask_goes_back_to_the_file_orientation(tmp_path, monkeypatch):
    """A model that predicts the true labels exactly must give back the stored segmentation."""
    data = write_phantom(tmp_path / "data", 2, size=32, slices=8, seed=0)  # volume 1 is stored flipped
    labels = {}

    def oracle(models, volume, **kw):
        return labels["current"][None].astype(np.float32)

    real_load = predict_liver.load_case

    def load_and_remember(case):
        hu, lab, img = real_load(case)
        labels["current"] = (lab > 0)
        return hu, lab, img

    monkeypatch.setattr(predict_liver, "predict_volume", oracle)
    monkeypatch.setattr(predict_liver, "load_case", load_and_remember)
    monkeypatch.setattr(predict_liver, "preprocess", lambda hu, size, window: hu)
    save_checkpoint(tmp_path / "m.pt", train_state(_models(1)[0]), CONFIG)
    result = predict_liver.main(["--checkpoint", str(tmp_path / "m.pt"), "--input", str(data / "volume-1.nii.gz"),
                                 "--label", str(data / "segmentation-1.nii.gz"), "--output", str(tmp_path / "out"),
                                 "--device", "cpu"])
    assert result["per_volume"] == {"volume-1": 1.0}
    stored = np.asarray(nib.load(str(data / "segmentation-1.nii.gz")).dataobj) > 0
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "out" / "volume-1_pred.nii.gz")).dataobj) > 0, stored)


def test_mismatched_checkpoints_are_refused(tmp_path):
    m = _models(1)[0]
    save_checkpoint(tmp_path / "a.pt", train_state(m), CONFIG)
    save_checkpoint(tmp_path / "b.pt", train_state(m), {**CONFIG, "img_size": 64})
    with pytest.raises(ValueError, match="b.pt' was trained with .*'img_size': 64"):
        predict_liver.load_models([tmp_path / "a.pt", tmp_path / "b.pt"], torch.device("cpu"))
