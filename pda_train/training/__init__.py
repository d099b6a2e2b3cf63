"""Training: the loop over stages, checkpoints, runtime (device, DDP, AMP) and logging."""
