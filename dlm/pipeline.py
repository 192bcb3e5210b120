"""Text in, text out: a tokenizer, a dlm model and a sampler behind one call.

    pipe = DiffusionLMPipeline.from_pretrained("path/or/hub-id")
    out = pipe(["It is a truth"], length=128, steps=128, sampler="ancestral", seed=0)
    print(out.texts[0])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from transformers import AutoModel

import dlm.models  # noqa: F401  (registers the "dlm" model type)
from dlm.errors import CheckpointError, InputError
from dlm.hf_utils import no_progress_bars
from dlm.hub import push_to_hub, resolve_model_dir
from dlm.processes import DiscreteProcess, process_from_config
from dlm.samplers import sample_with_info
from dlm.tokenization import load_tokenizer, mask_token_id_for
from dlm.training.checkpoint import save_model_dir

SHIPPED_MODEL = "austen-mdlm"
MASK_GLYPH = "_"


def shipped_model_dir() -> Path:
    """The small masked diffusion LM shipped inside the package (``dlm/assets/austen-mdlm``)."""
    return Path(str(resources.files("dlm") / "assets" / SHIPPED_MODEL))


@dataclass
class GenerationOutput:
    """Full texts (prompt + continuation), continuations alone, token ids [B, L], and network calls."""

    texts: list[str]
    completions: list[str]
    tokens: torch.LongTensor
    nfe: int
    prompt_lengths: list[int] = field(default_factory=list)


def _check_model_dir(path: Path) -> None:
    """A clear error unless ``path`` is a local directory holding a dlm config."""
    config = path / "config.json"
    if not path.is_dir():
        raise CheckpointError(f"model directory {path} not found",
                              hint="give a directory written by save_pretrained, dlm train or dlm convert")
    if not config.is_file():
        raise CheckpointError(f"{path} has no config.json, so it is not a saved model",
                              hint="give a directory written by save_pretrained, dlm train or dlm convert")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except json.JSONDecodeError:
        raise CheckpointError(f"{config} is not valid JSON") from None
    if model_type != "dlm":
        raise CheckpointError(f"{path} holds a {model_type!r} model, not a dlm checkpoint",
                              hint="convert SEDD/MDLM checkpoints first with 'dlm convert'")


class DiffusionLMPipeline:
    """Generate text with a diffusion LM: prompts are fixed prefixes, the rest is sampled from all-mask."""

    def __init__(self, model, tokenizer, process: DiscreteProcess | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.process = process or process_from_config(model.config)
        num_real, mask_id = mask_token_id_for(tokenizer)
        if num_real != self.process.vocab_size:
            raise CheckpointError(f"the tokenizer has {num_real} real tokens but the model {self.process.vocab_size}",
                                  hint="save the model with its own tokenizer")
        self.mask_id = mask_id

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, device: str | None = None,
                        dtype: torch.dtype = torch.float32) -> DiffusionLMPipeline:
        """Load model and tokenizer from a local directory (or a hub id, through the hub cache); None: the shipped model."""
        path = resolve_model_dir(name_or_path) if name_or_path is not None else shipped_model_dir()
        _check_model_dir(path)
        try:
            with no_progress_bars():
                model = AutoModel.from_pretrained(str(path), dtype=dtype)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot load model {path}: {' '.join(str(err).split())[:300]}") from None
        return cls(model.to(device or "cpu"), load_tokenizer(path))

    def save_pretrained(self, path: str | Path) -> None:
        """Model (safetensors) and tokenizer into ``path``."""
        save_model_dir(Path(path), self.model, self.tokenizer)

    def push_to_hub(self, repo_id: str, **kwargs):
        """Upload model, tokenizer and a dlm model card (see :func:`dlm.hub.push_to_hub`)."""
        return push_to_hub(self.model, repo_id, tokenizer=self.tokenizer, **kwargs)

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of each prompt (no special tokens: training blocks start mid-document)."""
        return [self.tokenizer(p, add_special_tokens=False)["input_ids"] if p else [] for p in prompts]

    def decode(self, ids, show_masks: bool = False) -> str:
        """Text of token ids; with ``show_masks`` every mask is drawn as ``_`` (for --show-steps)."""
        ids = [int(i) for i in ids]
        if not show_masks:
            return self.tokenizer.decode([i for i in ids if i != self.mask_id], skip_special_tokens=True)
        pieces, run = [], []
        for i in ids + [self.mask_id]:
            if i == self.mask_id:
                if run:
                    pieces.append(self.tokenizer.decode(run, skip_special_tokens=True))
                    run = []
                pieces.append(MASK_GLYPH)
            else:
                run.append(i)
        return "".join(pieces[:-1])

    @torch.no_grad()
    def __call__(self, prompts: str | list[str] | None = None, length: int = 128, steps: int = 128,
                 sampler: str = "ancestral", num_samples: int = 1, seed: int | None = None,
                 callback=None, progress: bool = False, **options) -> GenerationOutput:
        """``num_samples`` continuations of ``length`` tokens for each prompt ("" or None: unconditional)."""
        prompts = [prompts] if isinstance(prompts, str) or prompts is None else list(prompts)
        prompts = [p or "" for p in prompts]
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise InputError(f"length must be a positive integer, got {length!r}")
        encoded = [ids for ids in self.encode_prompts(prompts) for _ in range(num_samples)]
        longest = max(map(len, encoded))
        seq_len = longest + length
        context = self.model.config.max_seq_len
        if seq_len > context:
            raise InputError(f"prompt ({longest} tokens) + length ({length}) = {seq_len} exceeds the model's context of {context} tokens",
                             hint="shorten the prompt or lower --length")
        fixed_mask = torch.zeros(len(encoded), seq_len, dtype=torch.bool)
        fixed_tokens = torch.zeros(len(encoded), seq_len, dtype=torch.long)
        for row, ids in enumerate(encoded):
            fixed_mask[row, : len(ids)] = True
            fixed_tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        device = next(self.model.parameters()).device
        generator = torch.Generator(device).manual_seed(seed) if seed is not None else None
        out = sample_with_info(self.model, self.process, len(encoded), seq_len, steps, sampler, generator,
                               fixed_mask=fixed_mask if fixed_mask.any() else None,
                               fixed_tokens=fixed_tokens if fixed_mask.any() else None,
                               callback=callback, progress=progress, **options)
        tokens = out.tokens.cpu()
        completions = [self.decode(tokens[row, len(ids): len(ids) + length]) for row, ids in enumerate(encoded)]
        texts = [self.decode(tokens[row, : len(ids) + length]) for row, ids in enumerate(encoded)]
        return GenerationOutput(texts, completions, tokens, out.nfe, [len(ids) for ids in encoded])
