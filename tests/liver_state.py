"""A small but complete TrainState of the liver example, for checkpoint tests."""

import torch

from liver.checkpoint import TrainState
from liver.guard import NonFiniteGuard
from stableloss import CombinedLoss, DiceLoss


def train_state(model: torch.nn.Module) -> TrainState:
    """``model`` with AdamW, a constant schedule, a disabled GradScaler, a Dice loss and a guard."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return TrainState(model=model, optimizer=optimizer,
                      scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
                      scaler=torch.amp.GradScaler("cpu", enabled=False),
                      criterion=CombinedLoss({"dice": DiceLoss("binary")}), guard=NonFiniteGuard(log=lambda m: None))
