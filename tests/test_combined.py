"""CombinedLoss with any term, and losses on meta tensors (shape inference, no data)."""

import pytest
import torch

import stableloss


def test_a_term_returning_a_python_float_is_accepted():
    logits, target = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    combined = stableloss.CombinedLoss({"dice": stableloss.DiceLoss("binary"), "const": lambda x, t: 0.25},
                                       weights={"dice": 1.0, "const": 2.0})
    parts = combined.components(logits, target)
    assert parts["const"].dtype == torch.float32 and parts["const"].item() == 0.25
    torch.testing.assert_close(combined(logits, target), parts["dice"] + 0.5)


@pytest.mark.parametrize("cls", [stableloss.DiceLoss, stableloss.TverskyLoss, stableloss.JaccardLoss,
                                 stableloss.FocalLoss, stableloss.LogCoshDiceLoss, stableloss.BoundaryAwareLoss])
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_meta_tensors_with_default_validation(cls, mode):
    channels = 1 if mode == "binary" else 3
    logits = torch.empty(2, channels, 8, 8, device="meta")
    target = torch.empty(2, 8, 8, device="meta", dtype=torch.long) if mode == "multiclass" else torch.empty(2, 1, 8, 8, device="meta")
    loss = cls(mode).to("meta")(logits, target)
    assert loss.device.type == "meta" and loss.shape == ()
