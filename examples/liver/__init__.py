"""The liver CT example: phantom, data pipeline, model, losses, guard, checkpoints, DDP helpers."""
