"""Training: the loop, optimizers, learning-rate schedules, step arithmetic, checkpoints."""
