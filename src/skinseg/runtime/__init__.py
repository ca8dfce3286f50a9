"""Where the work runs: the device (CUDA, MPS, CPU), the numeric precision and memory format, and torchrun's ranks."""
