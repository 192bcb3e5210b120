"""The DDiT denoiser of SEDD (Lou et al. 2024) and MDLM (Sahoo et al. 2024) as a `transformers` model.

Token embedding → N blocks (adaLN-zero, bias-free float32 LayerNorm, fused qkv, rotate-half RoPE,
bidirectional SDPA, GELU-tanh MLP) → adaLN output layer, all conditioned on c = SiLU(MLP(sinusoidal(σ̄))).
The model is a denoiser in the DESIGN contract: ``model(x_t, t).x0_logits`` is log p(x0 | x_t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from dlm.errors import InputError
from dlm.models.configuration_dlm import DLMConfig
from dlm.models.heads import clean_token_log_probs, sedd_log_score
from dlm.models.layers import (DDiTBlock, DDiTFinalLayer, LayerNorm, TimestepEmbedder, TokenEmbedding, ZeroInitLinear,
                               rotary_tables)
from dlm.schedules import get_schedule


@dataclass
class DLMOutput(ModelOutput):
    """Output of :class:`DLMForDiffusion`.

    Attributes:
        logits: [B, L, vocab_size], the raw head exactly as upstream: SEDD's log concrete score (after
            scale_by_sigma and zeroing each position's own token) for ``head="score"``, the backbone logits
            (MDLM ``DIT`` output, before SUBS) for ``head="x0"``.
        x0_logits: [B, L, V] normalised clean-token log-probabilities log p(x0_i | x_t) over the V real
            tokens (−inf for impossible tokens, e.g. everything but x_t^i at an unmasked position).
        sigma: [B] the total noise σ̄ the model was evaluated at (σ̄(t) when called with ``t``).
        hidden_states: the embedding output and the residual stream after every block, when asked for.
    """

    logits: torch.FloatTensor | None = None
    x0_logits: torch.FloatTensor | None = None
    sigma: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class DLMForDiffusion(PreTrainedModel):
    """Diffusion Transformer denoiser; call as ``model(x_t, t=t)`` or ``model(x_t, sigma=sigma_bar)``."""

    config_class = DLMConfig
    base_model_prefix = "dlm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DDiTBlock"]

    def __init__(self, config: DLMConfig):
        super().__init__(config)
        self.vocab_embed = TokenEmbedding(config.hidden_size, config.vocab_size)
        self.sigma_map = TimestepEmbedder(config.cond_dim)
        self.blocks = nn.ModuleList(
            DDiTBlock(config.hidden_size, config.num_attention_heads, config.cond_dim, config.mlp_ratio,
                      config.dropout, config.layer_norm_eps)
            for _ in range(config.num_hidden_layers)
        )
        self.output_layer = DDiTFinalLayer(config.hidden_size, config.vocab_size, config.cond_dim,
                                           config.layer_norm_eps)
        self.schedule = get_schedule(config.noise_schedule, **config.schedule_kwargs)
        self.gradient_checkpointing = False
        self._rotary_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Upstream init: PyTorch defaults (kaiming-uniform, a=√5) for the embedding and Linears, LayerNorm
        weights 1, and zeros for every adaLN and the output projection (adaLN-zero, DiT)."""
        if isinstance(module, TokenEmbedding):
            nn.init.kaiming_uniform_(module.embedding, a=math.sqrt(5))
        elif isinstance(module, ZeroInitLinear):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, LayerNorm):
            nn.init.ones_(module.weight)

    def get_input_embeddings(self) -> TokenEmbedding:
        return self.vocab_embed

    def set_input_embeddings(self, value: TokenEmbedding) -> None:
        self.vocab_embed = value

    def conditioning(self, sigma: torch.Tensor) -> torch.Tensor:
        """c = SiLU(sigma_map(σ̄)) [B, cond_dim]; σ̄ is replaced by 0 without time conditioning (MDLM)."""
        s = sigma if self.config.time_conditioning else torch.zeros_like(sigma)
        return F.silu(self.sigma_map(s))

    def rotary(self, seq_len: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables for positions 0..L−1, cached per (L, device, dtype)."""
        key = (seq_len, device, dtype)
        if key not in self._rotary_cache:
            self._rotary_cache[key] = rotary_tables(seq_len, self.config.head_dim, self.config.rope_theta,
                                                    device, dtype)
        return self._rotary_cache[key]

    def output_logits(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, L, vocab_size], those of the V real tokens) in float32. The real-token block is its own
        contiguous matmul output, so the x0 head's log-softmax and its backward never copy a vocabulary slice."""
        features = self.output_layer.features(x, c)
        weight, bias = self.output_layer.linear.weight, self.output_layer.linear.bias
        num_real = self.config.num_real_tokens
        real = F.linear(features, weight[:num_real], bias[:num_real]).float()
        if num_real == self.config.vocab_size:
            return real, real
        return torch.cat([real, F.linear(features, weight[num_real:], bias[num_real:]).float()], dim=-1), real

    def forward(
        self,
        input_ids: torch.LongTensor,
        t: torch.Tensor | float | None = None,
        sigma: torch.Tensor | float | None = None,
        return_dict: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> DLMOutput | tuple:
        """Denoise x_t = ``input_ids`` [B, L] at diffusion time ``t`` ∈ [0, 1] (σ̄ = σ̄(t) from the config's
        schedule) or directly at total noise ``sigma`` = σ̄ ≥ 0; exactly one of them, a scalar or shape [B]."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        input_ids = self._checked_input_ids(input_ids)
        sigma = self._sigma_bar(input_ids, t, sigma)
        c = self.conditioning(sigma)

        x = self.vocab_embed(input_ids)
        compute_dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        cos, signed_sin = self.rotary(input_ids.shape[1], x.device, compute_dtype)
        hidden_states = (x,) if output_hidden_states else None
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                x = self._gradient_checkpointing_func(block.__call__, x, cos, signed_sin, c)
            else:
                x = block(x, cos, signed_sin, c)
            if output_hidden_states:
                hidden_states += (x,)
        logits, real_logits = self.output_logits(x, c)

        if self.config.head == "score":
            logits = real_logits = sedd_log_score(logits, input_ids, sigma, self.config.scale_by_sigma)
        x0_logits = clean_token_log_probs(self.config, real_logits, input_ids, sigma)
        out = DLMOutput(logits=logits, x0_logits=x0_logits, sigma=sigma, hidden_states=hidden_states)
        return out if return_dict else out.to_tuple()

    def push_to_hub(self, repo_id: str, *, tokenizer=None, **kwargs):
        """Upload the model (with ``tokenizer`` if given) and a dlm model card; see :func:`dlm.hub.push_to_hub`."""
        from dlm.hub import push_to_hub

        return push_to_hub(self, repo_id, tokenizer=tokenizer, **kwargs)

    def _checked_input_ids(self, input_ids: torch.Tensor) -> torch.LongTensor:
        """x_t as int64 [B, L] with every id in [0, vocab_size), else an InputError."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or input_ids.is_complex() \
                or input_ids.dtype == torch.bool:
            raise InputError("input_ids must be an integer tensor of token ids",
                             hint="pass a torch.LongTensor of shape [batch, length]")
        if input_ids.dim() != 2 or input_ids.numel() == 0:
            raise InputError(f"input_ids must have shape [batch, length] with both > 0, got {tuple(input_ids.shape)}",
                             hint="add a batch dimension with input_ids[None]")
        low, high = torch.aminmax(input_ids)
        if low < 0 or high >= self.config.vocab_size:
            raise InputError(
                f"token ids must lie in [0, {self.config.vocab_size - 1}], got ids in [{int(low)}, {int(high)}]",
                hint="the tokenizer does not match this model's vocab_size",
            )
        return input_ids.long()

    def _sigma_bar(self, input_ids: torch.LongTensor, t, sigma) -> torch.Tensor:
        """σ̄ per sequence [B] (float32) from exactly one of t ∈ [0, 1] or σ̄ ≥ 0."""
        if (t is None) == (sigma is None):
            raise InputError("pass exactly one of t (diffusion time in [0, 1]) or sigma (total noise σ̄)",
                             hint="model(x_t, t=t) for a denoiser, model(x_t, sigma=sigma) as upstream SEDD/MDLM")
        name, value = ("t", t) if sigma is None else ("sigma", sigma)
        if not isinstance(value, torch.Tensor):  # Python numbers: σ̄(t) in float64 before rounding to float32
            try:
                value = torch.tensor(value, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError):
                raise InputError(f"{name} must be a number or a tensor, got {type(value).__name__}") from None
        value = value.to(input_ids.device)
        value = value if value.is_floating_point() else value.float()
        batch = input_ids.shape[0]
        if value.dim() == 0:
            value = value.expand(batch)
        elif value.numel() == batch and value.dim() <= 2 and value.shape[0] == batch:
            value = value.reshape(batch)
        else:
            raise InputError(f"{name} must be a scalar or of shape [{batch}], got {tuple(value.shape)}")
        if not torch.isfinite(value).all():
            raise InputError(f"{name} must be finite")
        if name == "t":
            if ((value < 0) | (value > 1)).any():
                raise InputError(f"t must lie in [0, 1], got values in [{float(value.min())}, {float(value.max())}]",
                                 hint="pass the total noise with sigma= instead of t=")
            value = self.schedule.total(value)
        elif (value < 0).any():
            raise InputError(f"sigma (total noise σ̄) must be >= 0, got {float(value.min())}")
        return value.float()
