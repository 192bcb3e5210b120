"""A small text-conditional U-Net as a `transformers` model (Ho et al., NeurIPS'20; Rombach et al., CVPR'22).

Residual blocks with GroupNorm and a FiLM-style shift by the conditioning embedding, a sinusoidal embedding of
1000·t plus a projection of the prompt's pooled embedding, self-attention at the lowest resolution and
cross-attention from image positions to the prompt's tokens. A learned *null condition* (one token and one pooled
vector) stands in for the prompt where ``drop`` is set or no prompt is given: condition dropout in training, the
unconditional branch of classifier-free guidance at sampling. The output is ε̂(x_t, t) (or the score) for the
config's SDE; :func:`dlm.images.guidance.conditional_score` turns it into ∇log p_t.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel

from dlm.errors import InputError
from dlm.images.conditioning import TextCondition
from dlm.images.configuration_unet import UNetConfig


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """[cos(t·ω_k), sin(t·ω_k)], ω_k = max_period^(−k/(dim/2)) (Vaswani et al., 2017; DDPM's time embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def silu(x: Tensor) -> Tensor:
    """x·σ(x), written out: `F.silu` has no forward-over-forward derivative, and the WKB path estimator
    (:mod:`dlm.continuous.wkb_paths`) differentiates the score three times by nested forward-mode AD."""
    return x * torch.sigmoid(x)


def zero_module(module: nn.Module) -> nn.Module:
    """Mark ``module`` to be initialised to zero (so its residual branch starts as the identity)."""
    module.zero_init = True
    return module


class ResBlock(nn.Module):
    """h + conv(SiLU(GN(conv(SiLU(GN(h))) + W·emb))) with a 1×1 skip when the width changes."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        out = self.conv1(silu(self.norm1(h)))
        out = out + self.emb(F.silu(emb))[:, :, None, None]
        out = self.conv2(self.dropout(silu(self.norm2(out))))
        return self.skip(h) + out


class AttentionBlock(nn.Module):
    """Self-attention over image positions, then cross-attention to the prompt tokens (masked), both residual."""

    def __init__(self, channels: int, cond_dim: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.self_out = zero_module(nn.Linear(channels, channels))
        self.cross_norm = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(cond_dim, 2 * channels)
        self.cross_out = zero_module(nn.Linear(channels, channels))

    def split_heads(self, x: Tensor) -> Tensor:
        """[B, N, C] → [B, heads, N, C/heads]."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """softmax(qkᵀ/√d, masked keys excluded)·v per head, merged back to [B, N, C].

        Written out rather than fused, so that it has derivatives of every order (the WKB correction of the
        likelihood differentiates the network three times)."""
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
        return (logits.softmax(-1) @ v).transpose(1, 2).flatten(2)

    def forward(self, h: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        batch, channels, height, width = h.shape
        x = self.norm(h).flatten(2).transpose(1, 2)  # [B, HW, C]
        x = h.flatten(2).transpose(1, 2) + self.self_out(self.attend(*self.qkv(x).chunk(3, dim=-1)))
        k, v = self.kv(context).chunk(2, dim=-1)
        x = x + self.cross_out(self.attend(self.q(self.cross_norm(x)), k, v, context_mask))
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class Downsample(nn.Module):
    """Stride-2 3×3 convolution (halves H and W, rounding up)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        return self.conv(h)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to the skip connection's size, then a 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: Tensor, size: torch.Size) -> Tensor:
        return self.conv(F.interpolate(h, size=size, mode="nearest"))


class NullCondition(nn.Module):
    """The learned null prompt: one token and one pooled vector of width D."""

    def __init__(self, dim: int):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(dim))
        self.pooled = nn.Parameter(torch.zeros(dim))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.token, std=self.token.numel() ** -0.5)
        nn.init.normal_(self.pooled, std=self.pooled.numel() ** -0.5)

    def batch(self, batch: int) -> TextCondition:
        """The null condition for ``batch`` rows."""
        return TextCondition(self.token.expand(batch, 1, -1), self.token.new_ones(batch, 1, dtype=torch.bool),
                             self.pooled.expand(batch, -1))

    def apply(self, condition: TextCondition | None, drop: Tensor | None, batch: int) -> TextCondition:
        """``condition`` with the rows where ``drop`` is true replaced by the null prompt (all rows if None)."""
        if condition is None:
            return self.batch(batch)
        if drop is None:
            return condition
        length = condition.tokens.shape[1]
        null_tokens = F.pad(self.token.to(condition.tokens.dtype)[None, None], (0, 0, 0, length - 1))
        null_mask = torch.arange(length, device=condition.mask.device) == 0
        return TextCondition(
            torch.where(drop[:, None, None], null_tokens, condition.tokens),
            torch.where(drop[:, None], null_mask[None], condition.mask),
            torch.where(drop[:, None], self.pooled.to(condition.pooled.dtype)[None], condition.pooled),
        )


class UNetForDiffusion(PreTrainedModel):
    """ε̂(x_t, t, prompt) for images [B, C, H, W]; call as ``model(x, t, condition, drop=None)`` → [B, C, H, W]."""

    config_class = UNetConfig
    base_model_prefix = "unet"
    main_input_name = "sample"

    def __init__(self, config: UNetConfig):
        super().__init__(config)
        ch = config.base_channels
        emb_dim = 4 * ch
        widths = [ch * m for m in config.channel_mult]
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.pooled_proj = nn.Linear(config.cond_dim, emb_dim)
        self.null = NullCondition(config.cond_dim)
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)

        def res(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, emb_dim, config.groups, config.dropout)

        def attn(c: int) -> AttentionBlock:
            return AttentionBlock(c, config.cond_dim, config.num_heads, config.groups)

        def level_blocks(level: int, in_ch: int, out_ch: int) -> nn.ModuleList:
            return nn.ModuleList([res(in_ch, out_ch)] + ([attn(out_ch)] if level in config.attention_levels else []))

        self.down, skip_widths, width = nn.ModuleList(), [ch], ch
        for level, out in enumerate(widths):
            for _ in range(config.num_res_blocks):
                self.down.append(level_blocks(level, width, out))
                width = out
                skip_widths.append(width)
            if level < len(widths) - 1:
                self.down.append(nn.ModuleList([Downsample(width)]))
                skip_widths.append(width)
        self.mid = nn.ModuleList([res(width, width), attn(width), res(width, width)])
        self.up = nn.ModuleList()
        for level, out in reversed(list(enumerate(widths))):
            for _ in range(config.num_res_blocks + 1):
                self.up.append(level_blocks(level, width + skip_widths.pop(), out))
                width = out
            if level > 0:
                self.up.append(nn.ModuleList([Upsample(width)]))
        self.norm_out = nn.GroupNorm(config.groups, width)
        self.conv_out = zero_module(nn.Conv2d(width, config.in_channels, 3, padding=1))
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation, zeros for the modules marked by :func:`zero_module`, N(0, 1/D) null prompt."""
        if getattr(module, "zero_init", False):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Conv2d, nn.GroupNorm, nn.LayerNorm, NullCondition)):
            module.reset_parameters()

    def check_sample(self, sample: Tensor) -> None:
        """InputError unless ``sample`` is [B, in_channels, image_size, image_size]."""
        c, s = self.config.in_channels, self.config.image_size
        if sample.dim() != 4 or tuple(sample.shape[1:]) != (c, s, s):
            raise InputError(f"images of shape {tuple(sample.shape[1:])} do not fit this model, which takes {(c, s, s)}",
                             hint=f"use --size {s} (the model's image_size)")

    def embedding(self, t: Tensor, pooled: Tensor) -> Tensor:
        """MLP(sinusoid(1000·t)) + W·pooled: the vector every residual block is conditioned on."""
        angles = sinusoidal_embedding(1000.0 * t, self.config.base_channels).to(pooled.dtype)
        return self.time_mlp(angles) + self.pooled_proj(pooled)

    def forward(self, sample: Tensor, t: Tensor | float, condition: TextCondition | None = None,
                drop: Tensor | None = None) -> Tensor:
        """ε̂ (or the score, per ``config.prediction``) at x_t = ``sample`` [B, C, H, W] and time ``t`` (scalar or [B]).

        ``condition`` is the encoded prompt (None: the null prompt for every row); rows where ``drop`` [B] is true
        use the null prompt instead of theirs.
        """
        self.check_sample(sample)
        batch = sample.shape[0]
        t = torch.as_tensor(t, dtype=sample.dtype, device=sample.device).expand(batch)
        dtype = self.conv_in.weight.dtype
        cond = self.null.apply(None if condition is None else condition.to(sample.device, dtype), drop, batch)
        emb = self.embedding(t, cond.pooled)
        h = self.conv_in(sample.to(dtype))
        skips = [h]
        for blocks in self.down:
            h = self.run(blocks, h, emb, cond)
            skips.append(h)
        h = self.run(self.mid, h, emb, cond)
        for blocks in self.up:
            if isinstance(blocks[0], Upsample):
                h = blocks[0](h, skips[-1].shape[-2:])
            else:
                h = self.run(blocks, torch.cat([h, skips.pop()], dim=1), emb, cond)
        return self.conv_out(silu(self.norm_out(h))).to(sample.dtype)

    @staticmethod
    def run(blocks: nn.ModuleList, h: Tensor, emb: Tensor, cond: TextCondition) -> Tensor:
        """Apply a level's blocks in order: residual blocks take the embedding, attention the prompt."""
        for block in blocks:
            if isinstance(block, ResBlock):
                h = block(h, emb)
            elif isinstance(block, AttentionBlock):
                h = block(h, cond.tokens, cond.mask)
            else:
                h = block(h)
        return h
