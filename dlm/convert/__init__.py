"""Checkpoint converters from upstream SEDD and MDLM to :class:`dlm.models.DLMForDiffusion`."""

from dlm.convert.mdlm import from_mdlm
from dlm.convert.sedd import from_sedd

__all__ = ["from_mdlm", "from_sedd"]
