"""dlm: diffusion language models (masked and uniform CTMC processes, SEDD/MDLM losses, reverse-rate samplers,
a transformers DDiT denoiser) and continuous score-based diffusion with the 𝔥-interpolated sampler.

Importing ``dlm`` registers ``DLMConfig``/``DLMForDiffusion`` with transformers' ``AutoConfig``/``AutoModel``.
"""

from dlm import models  # noqa: F401  (registers the "dlm" model type with transformers' Auto classes)
from dlm.models import DLMConfig, DLMForDiffusion

__version__ = "0.1.0"
__all__ = ["DLMConfig", "DLMForDiffusion", "__version__"]
