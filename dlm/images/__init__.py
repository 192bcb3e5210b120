"""Images and text-to-image on the continuous-SDE side: data sets, captions, prompt encoders, a U-Net, guidance.

Importing this registers ``UNetConfig``/``UNetForDiffusion`` (``model_type="dlm_unet"``) with transformers'
``AutoConfig``/``AutoModel``. See docs/images.md.
"""

from transformers import AutoConfig, AutoModel

from dlm.images.captions import CaptionSet, caption_set, class_of_prompt
from dlm.images.conditioning import CaptionBank, TextCondition
from dlm.images.configuration_unet import UNetConfig
from dlm.images.data import class_names, image_dataset, image_tensor
from dlm.images.modeling_unet import UNetForDiffusion
from dlm.images.text_encoders import ClassEncoder, MiniLMEncoder, load_text_encoder

AutoConfig.register("dlm_unet", UNetConfig, exist_ok=True)
AutoModel.register(UNetConfig, UNetForDiffusion, exist_ok=True)

__all__ = [
    "CaptionSet",
    "CaptionBank",
    "ClassEncoder",
    "MiniLMEncoder",
    "TextCondition",
    "UNetConfig",
    "UNetForDiffusion",
    "caption_set",
    "class_names",
    "class_of_prompt",
    "image_dataset",
    "image_tensor",
    "load_text_encoder",
]
