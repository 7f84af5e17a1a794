"""Liver example, network: no parameter that the output does not use (DDP needs a gradient for each)."""

import pytest
import torch
from torch import nn

pytest.importorskip("segmentation_models_pytorch")

from liver.model import build_model, drop_unused_parameters, unused_parameters  # noqa: E402


def _grads_after_step(model, x):
    model.train()
    model(x).float().sum().backward()
    return {name: p.grad for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("encoder", ["efficientnet-b0", "resnet18"])
def test_every_parameter_of_the_unet_gets_a_gradient(encoder):
    torch.manual_seed(0)
    model = build_model(encoder, "none", 1)
    grads = _grads_after_step(model, torch.randn(2, 3, 32, 32))
    assert [name for name, g in grads.items() if g is None] == []
    assert all(p.requires_grad for p in model.parameters())  # nothing was merely frozen


def test_efficientnet_classification_head_is_removed_without_changing_the_network():
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    full = smp.Unet("efficientnet-b0", encoder_weights=None, in_channels=3, classes=1)
    torch.manual_seed(0)
    model = smp.Unet("efficientnet-b0", encoder_weights=None, in_channels=3, classes=1)
    x = torch.randn(2, 3, 64, 64)
    after_init = torch.get_rng_state()
    assert drop_unused_parameters(model, x) == ["encoder._conv_head", "encoder._bn1"]
    assert torch.equal(torch.get_rng_state(), after_init)  # the probe leaves the random stream alone
    kept = model.state_dict()
    assert set(full.state_dict()) - set(kept) == {"encoder._conv_head.weight", "encoder._bn1.weight", "encoder._bn1.bias",
                                                  "encoder._bn1.running_mean", "encoder._bn1.running_var",
                                                  "encoder._bn1.num_batches_tracked"}
    assert all(torch.equal(v, full.state_dict()[k]) for k, v in kept.items())  # BatchNorm statistics untouched
    full.eval(), model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), full(x))


class Partly(nn.Module):
    """Uses ``used`` and ``part.weight``; ``head`` (a whole submodule) and ``part.extra`` never."""

    def __init__(self):
        super().__init__()
        self.used = nn.Linear(4, 4)
        self.head = nn.Sequential(nn.Linear(4, 2), nn.ReLU())
        self.part = nn.Module()
        self.part.weight = nn.Parameter(torch.ones(4))
        self.part.extra = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return self.used(x) * self.part.weight


def test_unused_submodules_are_removed_and_unremovable_parameters_frozen():
    model = Partly()
    x = torch.randn(3, 4)
    expected = model(x)
    assert sorted(unused_parameters(model, x)) == ["head.0.bias", "head.0.weight", "part.extra"]
    assert drop_unused_parameters(model, x) == ["head", "part.extra"]
    assert not hasattr(model, "head") and not model.part.extra.requires_grad
    assert torch.equal(model(x), expected)
    assert unused_parameters(model, x) == [] and drop_unused_parameters(model, x) == []


class NeedsHeadInEval(nn.Module):
    """``head`` gets no gradient in training mode but the evaluation-mode output uses it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 4)

    def forward(self, x):
        y = self.body(x)
        return y if self.training else y + self.head(x).detach()


def test_a_submodule_the_output_needs_is_kept_and_frozen():
    model = NeedsHeadInEval()
    x = torch.randn(3, 4)
    assert drop_unused_parameters(model, x) == ["head.weight", "head.bias"]
    assert isinstance(model.head, nn.Linear) and not model.head.weight.requires_grad
