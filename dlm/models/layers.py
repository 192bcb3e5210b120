"""Building blocks of the DDiT denoiser (Peebles & Xie 2023 DiT, as adapted by SEDD and MDLM).

Parameter names mirror the upstream modules (``vocab_embed.embedding``, ``blocks.N.attn_qkv``,
``adaLN_modulation``, ...) so that upstream checkpoints load without renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FREQUENCY_EMBEDDING_SIZE = 256


def sinusoidal_embedding(s: torch.Tensor, dim: int = FREQUENCY_EMBEDDING_SIZE,
                         max_period: float = 10000.0) -> torch.Tensor:
    """[cos(s·ω_i), sin(s·ω_i)] with ω_i = max_period^(−i/(dim/2)), cosine half first (DiT/GLIDE): [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=s.device) / half)
    args = s.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rotary_inv_freq(head_dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """RoPE frequencies θ_j = θ^(−2j/D), j < D/2 (upstream's ``rotary_emb.inv_freq``)."""
    return 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)


def rotary_tables(seq_len: int, head_dim: int, theta: float, device: torch.device,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables (Su et al. 2021), GPT-NeoX layout: cos(p·θ_j) and [−sin, +sin](p·θ_j) over both halves, [L, D]."""
    inv_freq = rotary_inv_freq(head_dim, theta, device)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)
    signed_sin = torch.cat([-angles.sin(), angles.sin()], dim=-1)
    return cos.to(dtype), signed_sin.to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE: x·cos + swap_halves(x)·[−sin, sin], i.e. (x_j, x_{j+D/2}) turned by angle p·θ_j."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x·(1 + scale) + shift (DiT)."""
    return x * (1 + scale) + shift


class ZeroInitLinear(nn.Linear):
    """A Linear layer that starts at zero: adaLN-zero modulation and the output projection (DiT)."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class TokenEmbedding(nn.Module):
    """A bare [vocab, hidden] table E, looked up as E[x] (no scaling, no position table)."""

    def __init__(self, hidden_size: int, vocab_size: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, hidden_size))

    def forward(self, input_ids: torch.LongTensor) -> torch.Tensor:
        return self.embedding[input_ids]


class LayerNorm(nn.Module):
    """Bias-free LayerNorm computed in float32: w ⊙ (x − μ)/√(σ² + eps), returned in the input's dtype."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            out = F.layer_norm(x.float(), self.weight.shape, self.weight.float(), None, self.eps)
        return out.to(x.dtype)


class TimestepEmbedder(nn.Module):
    """σ̄ ↦ Linear(SiLU(Linear(sinusoidal(σ̄)))): the DiT timestep MLP, fed the total noise σ̄."""

    def __init__(self, cond_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_EMBEDDING_SIZE, cond_dim),
            nn.SiLU(),
            nn.Linear(cond_dim, cond_dim),
        )

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(s).to(self.mlp[0].weight.dtype))


class DDiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-zero: x += g₁·Attn(mod(LN(x))); x += g₂·MLP(mod(LN(x)))."""

    def __init__(self, hidden_size: int, num_heads: int, cond_dim: int, mlp_ratio: int, dropout: float, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = LayerNorm(hidden_size, eps)
        self.attn_qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.attn_out = nn.Linear(hidden_size, hidden_size, bias=False)
        self.norm2 = LayerNorm(hidden_size, eps)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, mlp_ratio * hidden_size),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * hidden_size, hidden_size),
        )
        self.adaLN_modulation = ZeroInitLinear(cond_dim, 6 * hidden_size)
        self.dropout = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        """Bidirectional multi-head attention softmax(q kᵀ/√d) v with RoPE on q and k; qkv split (three, heads, d)."""
        batch, seq_len, hidden = x.shape
        qkv = self.attn_qkv(x).view(batch, seq_len, 3, self.num_heads, hidden // self.num_heads)
        qk, v = qkv.permute(2, 0, 3, 1, 4).split([2, 1])  # [2 | 1, B, H, L, D]; split's backward is one cat
        q, k = apply_rotary(qk, cos, signed_sin).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v[0])
        return self.attn_out(out.transpose(1, 2).reshape(batch, seq_len, hidden))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c)[:, None].chunk(6, -1)
        h = self.attention(modulate(self.norm1(x), shift_msa, scale_msa), cos, signed_sin)
        x = x + gate_msa * self.dropout(h)
        h = self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x + gate_mlp * self.dropout(h)


class DDiTFinalLayer(nn.Module):
    """Output projection Linear(mod(LN(x))) with its own adaLN (shift, scale)."""

    def __init__(self, hidden_size: int, out_channels: int, cond_dim: int, eps: float):
        super().__init__()
        self.norm_final = LayerNorm(hidden_size, eps)
        self.linear = ZeroInitLinear(hidden_size, out_channels)
        self.adaLN_modulation = ZeroInitLinear(cond_dim, 2 * hidden_size)

    def features(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """mod(LN(x)), the input of the output projection."""
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, -1)
        return modulate(self.norm_final(x), shift, scale)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x, c))
