"""Training: the config, the engine and its step, the batches, validation, the run folder and the loop."""
