"""The autoregressive baseline: a GPT-2-style causal Transformer trained by the same trainer on the same blocks.

``model.arch: ar`` with ``train.objective: ar`` builds a ``transformers.GPT2LMHeadModel`` with the width, depth,
heads, MLP ratio and context of the diffusion recipe (``model.config`` takes the same field names) and the same
tokenizer. Its vocabulary has the V real tokens plus one extra row, the id the diffusion model gives its mask,
which the baseline uses as a start token: the input is ``[start] + x[:-1]`` and the target is ``x``, so all L
tokens of a block are scored, as the diffusion NELBO scores all L (MDLM's AR baseline likewise starts every
sequence with BOS). Next-token log-probabilities are normalised over the V real tokens, as the diffusion head's.
Validation then reports the exact nats/token, bits/token and perplexity on the same held-out blocks.
"""

from __future__ import annotations

import inspect

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from dlm.errors import ConfigError, InputError
from dlm.tokenization import mask_token_id_for

BASELINE_FLAG = "dlm_baseline"
# DLMConfig field -> GPT2Config field
FIELD_MAP = {"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
             "max_seq_len": "n_positions", "layer_norm_eps": "layer_norm_epsilon"}
DIFFUSION_ONLY = ("cond_dim", "time_conditioning", "head", "scale_by_sigma", "process", "mask_id", "noise_schedule",
                  "schedule_kwargs", "rope_theta", "vocab_size")


def ar_config_for(tokenizer, fields: dict) -> GPT2Config:
    """GPT2Config of the baseline: the recipe's DLM-named fields mapped to GPT-2's (``mlp_ratio`` → ``n_inner``,
    ``dropout`` → all three dropouts), GPT-2-native fields passed through; vocabulary V + 1, start token V."""
    fields = dict(fields)
    bad = sorted(set(fields) & set(DIFFUSION_ONLY))
    if bad:
        raise ConfigError(f"model.config field(s) {', '.join(bad)} have no meaning for model.arch=ar",
                          hint="remove them: the AR baseline has no noise, head or process")
    num_real, _ = mask_token_id_for(tokenizer)
    kwargs = {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "tie_word_embeddings": False,
              "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    for key, value in fields.items():
        if key in FIELD_MAP:
            kwargs[FIELD_MAP[key]] = value
        elif key == "mlp_ratio":
            kwargs["n_inner"] = None  # filled below once n_embd is known
            kwargs["_mlp_ratio"] = value
        elif key == "dropout":
            kwargs.update(resid_pdrop=value, embd_pdrop=value, attn_pdrop=value)
        elif key in GPT2Config().to_dict():
            kwargs[key] = value
        else:
            raise ConfigError(f"unknown model.config field {key!r} for model.arch=ar",
                              hint=f"use {', '.join([*FIELD_MAP, 'mlp_ratio', 'dropout'])} or GPT2Config fields")
    ratio = kwargs.pop("_mlp_ratio", 4)
    kwargs["n_inner"] = kwargs.get("n_inner") or int(ratio * kwargs["n_embd"])
    if kwargs["n_embd"] % kwargs["n_head"]:
        raise ConfigError(f"hidden_size={kwargs['n_embd']} is not divisible by num_attention_heads={kwargs['n_head']}")
    eos = tokenizer.eos_token_id
    return GPT2Config(vocab_size=num_real + 1, bos_token_id=num_real, eos_token_id=eos if eos is not None else num_real,
                      **{BASELINE_FLAG: "ar"}, **kwargs)


def build_ar_model(tokenizer, fields: dict) -> GPT2LMHeadModel:
    """A freshly initialised baseline (see :func:`ar_config_for`)."""
    return GPT2LMHeadModel(ar_config_for(tokenizer, fields))


def is_ar_model(model) -> bool:
    """Whether ``model`` is an AR baseline built here (its config carries ``dlm_baseline: "ar"``)."""
    return getattr(getattr(model, "config", None), BASELINE_FLAG, None) == "ar"


def start_id(model) -> int:
    """The start token of a baseline, which is also V, the number of real tokens."""
    return int(model.config.bos_token_id)


def ar_log_probs(model, inputs: torch.LongTensor) -> torch.Tensor:
    """log p(x_{j+1} = v | inputs_{≤j}) over the V real tokens: [B, L, V] (float32)."""
    logits = model(input_ids=inputs, use_cache=False).logits
    return torch.log_softmax(logits[..., : start_id(model)].float(), dim=-1)


def ar_token_nll(model, x0: torch.LongTensor) -> torch.Tensor:
    """−log p(x0_j | start, x0_{<j}) of every token: [B, L], the AR training loss per token (nats)."""
    if x0.dim() != 2:
        raise InputError(f"x0 must have shape [B, L], got {tuple(x0.shape)}")
    if x0.shape[1] > model.config.n_positions:
        raise InputError(f"blocks of {x0.shape[1]} tokens exceed the baseline's context of {model.config.n_positions}")
    start = torch.full_like(x0[:, :1], start_id(model))
    log_probs = ar_log_probs(model, torch.cat([start, x0[:, :-1]], dim=1))
    return -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def ar_sample(model, num_samples: int, length: int, generator: torch.Generator | None = None,
              temperature: float = 1.0, prompt: torch.LongTensor | None = None) -> torch.LongTensor:
    """Ancestral samples [num_samples, length] (after an optional shared ``prompt`` [P]) from the start token,
    one network call per token with the KV cache; categorical draws in float64 (Gumbel-max)."""
    from dlm.samplers import apply_temperature, sample_categorical

    device = next(model.parameters()).device
    if length < 1 or num_samples < 1:
        raise InputError("num_samples and length must be positive")
    prefix = torch.full((num_samples, 1), start_id(model), dtype=torch.long, device=device)
    if prompt is not None:
        prefix = torch.cat([prefix, prompt.to(device).long().expand(num_samples, -1)], dim=1)
    if prefix.shape[1] - 1 + length > model.config.n_positions:
        raise InputError(f"prompt + length exceeds the baseline's context of {model.config.n_positions} tokens")
    model.eval()
    out = model(input_ids=prefix, use_cache=True)
    tokens, cache_name = [], cache_argument(model)
    for k in range(length):
        log_probs = apply_temperature(torch.log_softmax(out.logits[:, -1, : start_id(model)].double(), -1),
                                      temperature)
        tokens.append(sample_categorical(log_probs.exp(), generator))
        if k + 1 < length:  # the last token needs no forward pass (and has no position left at full context)
            out = model(input_ids=tokens[-1][:, None], use_cache=True, **{cache_name: kv_cache(out)})
    return torch.cat([prefix[:, 1:], torch.stack(tokens, dim=1)], dim=1)


def cache_argument(model) -> str:
    """The forward argument that takes the KV cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def kv_cache(out):
    """The KV cache of a causal-LM output, under either transformers naming."""
    return out["cache"] if "cache" in out else out["past_key_values"]
