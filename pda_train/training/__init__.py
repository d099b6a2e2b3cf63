"""Training: the stage plan, one step per kind of update, the stage strategies and the loop around them,
plus checkpoints, runtime (device, DDP, AMP) and logging."""
