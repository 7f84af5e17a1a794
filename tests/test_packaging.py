"""What `pip install stableloss` promises: the public names, typing marker, no heavy imports."""

import subprocess
import sys
from pathlib import Path

import stableloss


def test_all_is_sorted_and_importable():
    assert stableloss.__all__ == sorted(stableloss.__all__)
    for name in stableloss.__all__:
        assert hasattr(stableloss, name), name


def test_every_class_has_a_functional_twin():
    pairs = {"DiceLoss": "dice_loss", "TverskyLoss": "tversky_loss", "JaccardLoss": "jaccard_loss",
             "FocalLoss": "focal_loss", "LogCoshDiceLoss": "log_cosh_dice_loss", "BoundaryAwareLoss": "boundary_aware_loss"}
    for cls, fn in pairs.items():
        assert callable(getattr(stableloss, cls)) and callable(getattr(stableloss, fn))


def test_ships_py_typed():
    assert (Path(stableloss.__file__).parent / "py.typed").is_file()


def test_core_import_pulls_no_optional_dependency():
    # (tqdm is left out: torch itself imports it when installed.)
    code = ("import sys, stableloss; heavy = [m for m in ('segmentation_models_pytorch', 'monai', 'hypothesis', "
            "'nibabel', 'matplotlib') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_class_builds_from_its_mode_alone():
    for name in ("DiceLoss", "TverskyLoss", "JaccardLoss", "FocalLoss", "LogCoshDiceLoss", "BoundaryAwareLoss"):
        cls = getattr(stableloss, name)
        for mode in ("binary", "multiclass", "multilabel"):
            assert cls(mode).mode == mode
            assert cls(mode=mode).mode == mode


def test_module_files_stay_small():
    for path in Path(stableloss.__file__).parent.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, f"{path} has grown past one sitting"


def test_torch_is_the_only_required_dependency_besides_numpy():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert sorted(dep.split(">")[0].strip(' "') for dep in block.split(",") if dep.strip()) == ["numpy", "torch"]
