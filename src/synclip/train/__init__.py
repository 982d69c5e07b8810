"""The training application: optimiser, schedule, checkpoints, logging and the loop."""
