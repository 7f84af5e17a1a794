"""A loader's distance map is checked against the loss's own map settings (issue 14, item 4).

A map from the data loader replaces the one the loss would compute: made with another ``spacing``,
``inside_shift`` or ``no_surface`` it silently gave another loss. Now the loss checks the pairing
exactly (``validate_args``) and ``loss.distance_transform()`` makes matching maps.
"""

import numpy as np
import pytest
import torch

import stableloss

MISMATCH = r"distance_map does not match this loss's map settings"


def _binary_batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 16, 16)
    target = torch.zeros(2, 1, 16, 16)
    target[0, 0, 4:9, 5:12] = 1
    target[1, 0, 2:14, 3:6] = 1
    return logits, target


@pytest.mark.parametrize("settings,detail", [
    ({"inside_shift": 1.0}, r"its largest inside value is -1 where spacing=\(1.0, 1.0\), inside_shift=1.0"),
    ({"spacing": (0.5, 0.5)}, r"its smallest outside distance is 1 where spacing=\(0.5, 0.5\).* gives 0.5"),
])
def test_boundary_loss_refuses_a_loader_map_made_with_other_settings(settings, detail):
    logits, target = _binary_batch()
    criterion = stableloss.BoundaryLoss("binary", **settings)
    with pytest.raises(ValueError, match=MISMATCH + r" \(image 0, channel 0\): " + detail):
        criterion(logits, target, distance_map=stableloss.signed_distance_map(target))


def test_boundary_loss_refuses_a_loader_map_with_another_no_surface_policy():
    logits, target = _binary_batch()
    target[1] = 0  # no surface: the policy decides the map
    criterion = stableloss.BoundaryLoss("binary", no_surface="zero")
    with pytest.raises(ValueError, match=MISMATCH + r" \(image 1, channel 0\): the empty target's map holds values "
                                                   r"up to 22.6274 away from 0"):
        criterion(logits, target, distance_map=stableloss.signed_distance_map(target))


def test_hausdorff_loss_refuses_a_pixel_unit_map_with_a_millimetre_spacing():
    logits, target = _binary_batch()
    criterion = stableloss.HausdorffDTLoss("binary", spacing=(0.5, 0.5))
    with pytest.raises(ValueError, match=MISMATCH):
        criterion(logits, target, distance_map=stableloss.signed_distance_map(target))


def test_a_map_made_with_the_axes_swapped_is_refused():
    logits, target = _binary_batch()
    criterion = stableloss.BoundaryLoss("binary", spacing=(0.5, 2.0))
    with pytest.raises(ValueError, match=MISMATCH + r".*farther from it than the spacing along that axis allows"):
        criterion(logits, target, distance_map=stableloss.signed_distance_map(target, spacing=(2.0, 0.5)))


def test_a_normalised_map_is_refused():
    logits, target = _binary_batch()
    criterion = stableloss.BoundaryLoss("binary", normalize=True)
    phi = stableloss.signed_distance_map(target)
    with pytest.raises(ValueError, match=MISMATCH):
        criterion(logits, target, distance_map=phi / (16 * 2 ** 0.5))


@pytest.mark.parametrize("loss", ["boundary", "hausdorff"])
@pytest.mark.parametrize("settings", [{}, {"inside_shift": 1.0, "spacing": (0.5, 2.0)}, {"no_surface": "zero", "spacing": 0.7},
                                      {"normalize": True, "spacing": (1.5, 0.5)}])
def test_a_map_made_with_the_loss_settings_gives_the_loss_own_value(loss, settings):
    logits, target = _binary_batch()
    target[1] = 0
    if loss == "hausdorff":
        settings = {k: v for k, v in settings.items() if k != "inside_shift"}
        criterion = stableloss.HausdorffDTLoss("binary", **settings)
    else:
        criterion = stableloss.BoundaryLoss("binary", **settings)
    to_map = criterion.distance_transform(spatial_dims=2)
    maps = torch.stack([torch.as_tensor(to_map(t.numpy())) for t in target])
    torch.testing.assert_close(criterion(logits, target, distance_map=maps), criterion(logits, target))
    stored = maps.half()  # a float16 cache rounds the maps to 2^-11: the check still accepts them
    torch.testing.assert_close(criterion(logits, target, distance_map=stored), criterion(logits, target), rtol=2e-3, atol=1e-3)


def test_multiclass_maps_with_ignore_index_and_3d_anisotropic_spacing_pass_the_check():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6, 9, 10)
    target = torch.randint(0, 3, (2, 6, 9, 10))
    target[:, :2] = 255
    criterion = stableloss.BoundaryLoss("multiclass", ignore_index=255, spacing=(2.5, 0.8, 0.7), inside_shift=1.0)
    to_map = criterion.distance_transform(num_classes=3)
    maps = torch.stack([torch.as_tensor(to_map(t.numpy())) for t in target])
    torch.testing.assert_close(criterion(logits, target, distance_map=maps), criterion(logits, target))
    with pytest.raises(ValueError, match=MISMATCH):
        criterion(logits, target, distance_map=stableloss.signed_distance_map(target, num_classes=3, ignore_index=255,
                                                                              spacing=(2.5, 0.8, 0.7)))


def test_the_hybrid_checks_the_map_it_passes_to_its_boundary_term():
    logits, target = _binary_batch()
    hybrid = stableloss.BoundaryAwareLoss("binary", boundary="boundary", spacing=(0.5, 0.5))
    with pytest.raises(ValueError, match=MISMATCH):
        hybrid(logits, target, distance_map=stableloss.signed_distance_map(target))
    maps = torch.as_tensor(np.stack([hybrid.distance_transform()(t.numpy()) for t in target]))
    torch.testing.assert_close(hybrid(logits, target, distance_map=maps), hybrid(logits, target))


def test_validate_args_false_skips_the_map_check():
    logits, target = _binary_batch()
    criterion = stableloss.BoundaryLoss("binary", spacing=(0.5, 0.5), validate_args=False)
    phi = stableloss.signed_distance_map(target)
    expected = (torch.sigmoid(logits) * phi).mean()
    torch.testing.assert_close(criterion(logits, target, distance_map=phi), expected)


def test_distance_transform_needs_the_class_count_for_a_multiclass_loss():
    with pytest.raises(ValueError, match=r"num_classes must be given for a multiclass loss"):
        stableloss.BoundaryLoss("multiclass").distance_transform(spatial_dims=2)
    with pytest.raises(ValueError, match=r"num_classes must be None for a binary loss"):
        stableloss.BoundaryLoss("binary").distance_transform(spatial_dims=2, num_classes=2)
    with pytest.raises(TypeError, match=r"has no boundary term that takes distance maps"):
        stableloss.BoundaryAwareLoss("binary").distance_transform(spatial_dims=2)
