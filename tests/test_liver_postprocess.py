"""Liver example, issue 18: keeping the largest connected component, its effect on HD95, and where it is used."""

import json

import numpy as np
import pytest

pytest.importorskip("scipy")
nib = pytest.importorskip("nibabel")

from liver.metrics import surface_distances  # noqa: E402
from liver.postprocess import keep_largest_component, largest_component  # noqa: E402


def _liver_with_far_island():
    true = np.zeros((10, 40, 40), np.uint8)
    true[2:8, 5:20, 5:20] = 1
    pred = true.copy()
    pred[3:7, 30:36, 30:36] = 1  # a false positive island, far from the liver (over 5 % of the surface)
    return pred, true


def test_largest_component_removes_a_far_island_and_keeps_the_largest():
    pred, true = _liver_with_far_island()
    kept = keep_largest_component(pred)
    np.testing.assert_array_equal(kept, true)
    assert kept.dtype == pred.dtype


def test_largest_component_uses_face_connectivity():
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, 0] = mask[0, 1, 1] = mask[0, 2, 1] = True  # the corner voxel touches the others only at an edge
    kept = largest_component(mask)
    assert kept.sum() == 2 and not kept[0, 0, 0]


def test_largest_component_keeps_tumours_inside_the_kept_liver():
    labels = np.zeros((3, 12, 12), np.uint8)
    labels[:, 1:7, 1:7] = 1
    labels[1, 3:5, 3:5] = 2  # a tumour inside the liver: kept with its label
    labels[1, 10, 10] = 2  # a tumour voxel far away: removed
    kept = keep_largest_component(labels)
    assert (kept == 2).sum() == 4 and kept[1, 10, 10] == 0 and (kept == 1).sum() == (labels == 1).sum()


def test_largest_component_of_an_empty_mask_is_empty_and_bad_input_is_refused():
    assert not keep_largest_component(np.zeros((2, 3, 3), np.uint8)).any()
    with pytest.raises(TypeError, match="labels must be a numpy.ndarray of integers or booleans; received float32"):
        keep_largest_component(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="mask must be a numpy.ndarray; received list"):
        largest_component([[1, 0]])


def test_largest_component_brings_hd95_back_from_the_far_island():
    pred, true = _liver_with_far_island()
    spacing = (2.0, 1.0, 1.0)
    raw_hd95, raw_assd = surface_distances(pred, true, (1,), spacing)
    hd95, assd = surface_distances(keep_largest_component(pred), true, (1,), spacing)
    assert raw_hd95 > 10.0 and raw_assd > 0  # the island, 11 to 16 mm from the liver, dominates HD95
    assert (hd95, assd) == (0.0, 0.0)


def test_predict_writes_the_largest_component_and_reports_raw_dice(tmp_path, monkeypatch):
    pytest.importorskip("segmentation_models_pytorch")
    import predict_liver

    from liver.checkpoint import save_checkpoint
    from liver.data import Case, load_case
    from liver.model import build_model
    from liver.phantom import write_phantom
    from tests.liver_state import train_state

    data = write_phantom(tmp_path / "data", 1, size=32, slices=8, seed=0)
    stored = np.asarray(nib.load(str(data / "segmentation-0.nii.gz")).dataobj) > 0
    true = load_case(Case("volume-0", data / "volume-0.nii.gz", data / "segmentation-0.nii.gz"))[1] > 0  # (Z, H, W)
    island = np.zeros_like(true)
    island[0, 0:2, 0:2] = True  # a false positive far from the liver, in the image's corner
    monkeypatch.setattr(predict_liver, "predict_volume", lambda models, volume, **kw: (true | island)[None].astype(np.float32))
    monkeypatch.setattr(predict_liver, "preprocess", lambda hu, size, window: hu)
    config = {"img_size": 32, "hu_window": [-160.0, 240.0], "target": "liver", "encoder": "efficientnet-b0"}
    save_checkpoint(tmp_path / "m.pt", train_state(build_model("efficientnet-b0", "none", 1)), config)
    result = predict_liver.main(["--checkpoint", str(tmp_path / "m.pt"), "--input", str(data / "volume-0.nii.gz"),
                                 "--label", str(data / "segmentation-0.nii.gz"), "--output", str(tmp_path / "out"),
                                 "--device", "cpu", "--largest-component"])
    assert result["per_volume"] == {"volume-0": 1.0} and result["per_volume_raw"]["volume-0"] < 1.0
    written = np.asarray(nib.load(str(tmp_path / "out" / "volume-0_pred.nii.gz")).dataobj) > 0
    np.testing.assert_array_equal(written, stored)
    saved = json.loads((tmp_path / "out" / "dice.json").read_text())
    assert saved["largest_component"] is True and saved["dice_per_volume_raw"] == result["dice_per_volume_raw"]
