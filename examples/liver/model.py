"""The experiment's network: ``smp.Unet`` with an EfficientNet-B0 encoder and 3 input channels.

ImageNet weights come from the Hugging Face hub through segmentation-models-pytorch. Offline, a
download would retry for about 30 seconds and print a screenful; instead the weights are taken
from the local cache if they are there, the hub is tried only if it answers within a few
seconds, and otherwise one line says that training starts from random initialisation.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket

import segmentation_models_pytorch as smp
from torch import nn


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet():
    """Silence the hub's retry warnings and progress output."""
    level = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(level)


def _offline(flag: bool) -> None:
    try:
        import huggingface_hub.constants as hub

        hub.HF_HUB_OFFLINE = flag
    except ImportError:  # pragma: no cover - smp always depends on huggingface_hub
        pass


def build_model(encoder: str = "efficientnet-b0", weights: str = "imagenet", classes: int = 1, log=print) -> nn.Module:
    """``smp.Unet(encoder, in_channels=3, classes=classes)`` with ImageNet weights when available.

    Args:
        encoder: Any segmentation-models-pytorch encoder name.
        weights: ``"imagenet"`` or ``"none"``.
        classes: Output channels (1 for a binary target).
        log: Where the one-line fallback notice goes.
    """
    if weights not in ("imagenet", "none"):
        raise ValueError(f"encoder weights must be 'imagenet' or 'none'; received {weights!r}")
    if weights == "imagenet":
        import huggingface_hub.constants as hub

        was_offline = hub.HF_HUB_OFFLINE
        for offline in (True, False):  # local cache first, then the hub if it answers
            if not offline and (was_offline or not _hub_reachable()):  # HF_HUB_OFFLINE=1: never connect
                break
            _offline(offline or was_offline)
            try:
                with _quiet():
                    return smp.Unet(encoder, encoder_weights="imagenet", in_channels=3, classes=classes)
            except Exception:  # noqa: BLE001 - any failure means "no weights here"
                pass
            finally:
                _offline(was_offline)
        log(f"ImageNet weights for {encoder} are not available offline and the hub is unreachable; "
            "continuing from random initialisation")
    model = smp.Unet(encoder, encoder_weights=None, in_channels=3, classes=classes)
    # EfficientNet's BatchNorm momentum is 0.01 (TensorFlow's 0.99): right for fine-tuning ImageNet
    # statistics, but from random initialisation the running statistics would stay near their
    # initial values for hundreds of steps and evaluation-mode outputs would be meaningless.
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return model
