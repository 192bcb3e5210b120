"""dlm: diffusion language models."""
