"""The experiment's network: ``smp.Unet`` with an EfficientNet-B0 encoder and 3 input channels.

ImageNet weights come from the Hugging Face hub through segmentation-models-pytorch. Offline, a
download would retry for about 30 seconds and print a screenful; instead the weights are taken
from the local cache if they are there, the hub is tried only if it answers within a few
seconds, and otherwise one line says that training starts from random initialisation.

The network carries no parameter that its output does not use (:func:`drop_unused_parameters`):
smp keeps the classification head of an EfficientNet encoder (``_conv_head``, ``_bn1``) that a
U-Net never calls, and DistributedDataParallel stops at the second step on a parameter that got
no gradient. Removing them leaves the output, the training and the random initialisation of
everything else unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import socket
from collections.abc import Callable

import segmentation_models_pytorch as smp
import torch
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


def unused_parameters(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the trainable parameters that get no gradient from ``model(example)``.

    Found with a forward and backward pass in training mode on a copy of ``model``, with the
    random number generator restored afterwards, so neither ``model`` (its BatchNorm statistics)
    nor the run's random stream changes.
    """
    probe = copy.deepcopy(model).train()
    with torch.random.fork_rng(devices=[]):
        out = probe(example)
        sum(o.float().sum() for o in (out if isinstance(out, (tuple, list)) else [out])).backward()
    return [name for name, p in probe.named_parameters() if p.requires_grad and p.grad is None]


def drop_unused_parameters(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Take the parameters no output uses out of ``model``; returns what was taken out.

    A submodule none of whose parameters gets a gradient (see :func:`unused_parameters`) is
    removed if the evaluation-mode output on ``example`` stays bitwise the same without it
    (elements of ``nn.Sequential``/``nn.ModuleList``/``nn.ModuleDict`` are kept: removing one
    would renumber the others). An unused parameter that cannot be removed that way (it shares a
    submodule with used ones) is frozen (``requires_grad=False``), which DistributedDataParallel
    and the optimizer skip.

    Returns:
        The names of the removed submodules and of the frozen parameters.
    """
    unused = set(unused_parameters(model, example))
    if not unused:
        return []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        reference = model(example)
    removed: list[str] = []
    for name, module in list(model.named_modules()):
        params = {f"{name}.{p}" for p, _ in module.named_parameters()}
        if not name or not params or not params <= unused or any(name.startswith(r + ".") for r in removed):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if isinstance(parent, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        delattr(parent, child)
        try:
            with torch.no_grad():
                same = torch.equal(model(example), reference)
        except Exception:  # noqa: BLE001 - the forward needs it after all
            same = False
        if same:
            removed.append(name)
        else:
            setattr(parent, child, module)
    model.train(was_training)
    frozen = [name for name, p in model.named_parameters() if name in unused]
    for name in frozen:
        model.get_parameter(name).requires_grad_(False)
    return removed + frozen


def build_model(encoder: str = "efficientnet-b0", weights: str = "imagenet", classes: int = 1,
                log: Callable[[str], object] = print) -> nn.Module:
    """``smp.Unet(encoder, in_channels=3, classes=classes)`` with ImageNet weights when available,
    without the parameters no output uses (:func:`drop_unused_parameters`).

    Args:
        encoder: Any segmentation-models-pytorch encoder name.
        weights: ``"imagenet"`` or ``"none"``.
        classes: Output channels (1 for a binary target).
        log: Where the one-line fallback notice goes.
    """
    if weights not in ("imagenet", "none"):
        raise ValueError(f"encoder weights must be 'imagenet' or 'none'; received {weights!r}")
    model = _imagenet_unet(encoder, classes, log) if weights == "imagenet" else None
    if model is None:
        model = smp.Unet(encoder, encoder_weights=None, in_channels=3, classes=classes)
        # EfficientNet's BatchNorm momentum is 0.01 (TensorFlow's 0.99): right for fine-tuning
        # ImageNet statistics, but from random initialisation the running statistics would stay near
        # their initial values for hundreds of steps and evaluation-mode outputs would be meaningless.
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1
    drop_unused_parameters(model, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    return model


def _imagenet_unet(encoder: str, classes: int, log: Callable[[str], object]) -> nn.Module | None:
    """The U-Net with ImageNet weights from the local cache or a reachable hub; else None, said in one line."""
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
    return None
