"""The models: the improved UNet and a plain UNet, their shared layers, the registry that builds them by name,
and their weights files (safetensors with everything needed to rebuild the model)."""
