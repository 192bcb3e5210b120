"""The DDiT denoiser as a `transformers` model; importing this registers ``model_type="dlm"`` with the Auto classes."""

from transformers import AutoConfig, AutoModel

from dlm.models.configuration_dlm import DLMConfig
from dlm.models.modeling_dlm import DLMForDiffusion, DLMOutput

AutoConfig.register("dlm", DLMConfig, exist_ok=True)
AutoModel.register(DLMConfig, DLMForDiffusion, exist_ok=True)

__all__ = ["DLMConfig", "DLMForDiffusion", "DLMOutput"]
