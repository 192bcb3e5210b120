"""Supervised fine-tuning data for diffusion LMs (LLaDA, Nie et al. 2025): prompt kept clean, loss on the response.

Records (``data.format: sft``) come from a ``.jsonl``/``.json`` file, a ``save_to_disk`` directory or
``hub:NAME``, each either

- ``{prompt_field: str, response_field: str}`` (default ``prompt``/``response``), or
- ``{messages_field: [{"role", "content"}, ...]}`` (default ``messages``) whose last message is the
  assistant's answer; the others are the prompt.

Rendering: with a chat template (the tokenizer's own under ``chat_template: auto``, or a Jinja template
given as ``data.chat_template``, which is then set on the tokenizer and saved with the model), the prompt
is ``apply_chat_template(prompt_messages, add_generation_prompt=True)`` and the response is the rest of
the rendered conversation; without one, prompt and response texts are used as they are (messages then
need a template). Both are tokenised without special tokens, exactly as
:class:`~dlm.pipeline.DiffusionLMPipeline` tokenises a prompt, so ``dlm generate --model DIR PROMPT``
(prompt fixed, response sampled) is the matching conditional sampler; :func:`chat_prompt` renders a
prompt for a chat-trained model.

Rows (one example each, ``block_size`` tokens): ``prompt_ids + response_ids + [eos]`` then padding.

- ``prompt_mask``: 1 on the prompt tokens; the trainer never corrupts them (x_t keeps them).
- ``loss_mask``: 1 on the response tokens including its EOS, 0 on the prompt. With
  ``sft_eos_padding: true`` (LLaDA, the default) the padding is more EOS tokens that count as response
  (so the model learns where an answer ends and fills the rest of a generous ``--length`` with EOS,
  which decoding drops); with ``false`` the padding is the pad token and 0 in ``loss_mask``.

The trainer weighs each row's per-token losses by ``loss_mask / loss_mask.sum()`` and averages over rows:
the NELBO restricted to the response, normalised by the response length (LLaDA's SFT loss). A response
that does not fit is truncated (and then has no EOS); an example whose prompt leaves no room for a
response token is dropped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from dlm.errors import ConfigError, DataError

SFT_COLUMNS = ("input_ids", "prompt_mask", "loss_mask")
SFT_SOURCE_HINT = "give a .jsonl/.json file, a save_to_disk directory or hub:NAME with prompt/response or messages fields"


def uses_template(tokenizer: PreTrainedTokenizerBase, setting: str = "auto") -> bool:
    """Whether SFT rendering applies a chat template under ``data.chat_template = setting``."""
    if setting == "none":
        return False
    return bool(getattr(tokenizer, "chat_template", None))


def set_chat_template(tokenizer: PreTrainedTokenizerBase, setting: str) -> None:
    """Install a Jinja ``data.chat_template`` on the tokenizer (``auto``/``none`` leave it unchanged)."""
    if setting not in ("auto", "none"):
        tokenizer.chat_template = setting


def _as_messages(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
        return [{"role": m["role"], "content": m["content"]} for m in prompt]
    raise DataError("a chat prompt must be a string or a list of {role, content} messages")


def chat_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | list[dict]) -> str:
    """The prompt text a chat-trained model expects: the template with the generation prompt appended."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the tokenizer has no chat template", hint="the model was not trained with one; give the plain prompt")
    return tokenizer.apply_chat_template(_as_messages(prompt), tokenize=False, add_generation_prompt=True)


def render_example(record: dict, tokenizer: PreTrainedTokenizerBase, config) -> tuple[str, str]:
    """(prompt text, response text) of one record under ``config`` (see the module docstring)."""
    template = uses_template(tokenizer, config.chat_template)
    messages = record.get(config.messages_field)
    if messages is not None:
        if not template:
            raise ConfigError("SFT records with messages need a chat template, and the tokenizer has none",
                              hint="set data.chat_template to a Jinja template, or give prompt/response fields")
        messages = _as_messages(messages)
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise DataError("each SFT conversation must end with an assistant message after at least one other",
                            hint=f"check the '{config.messages_field}' field")
        prompt_messages, answer = messages[:-1], messages[-1]
    else:
        prompt, response = record.get(config.prompt_field), record.get(config.response_field)
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise DataError(f"an SFT record lacks string fields '{config.prompt_field}' and '{config.response_field}'",
                            hint="set data.prompt_field / data.response_field, or give messages")
        if not template:
            return prompt, response
        prompt_messages, answer = _as_messages(prompt), {"role": "assistant", "content": response}
    prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(prompt_messages + [answer], tokenize=False)
    if not full.startswith(prompt_text):
        raise ConfigError("the chat template does not render the prompt as a prefix of the conversation",
                          hint="use a template whose generation prompt starts the assistant turn")
    return prompt_text, full[len(prompt_text):]


def sft_row(prompt_ids: list[int], response_ids: list[int], block_size: int, eos: int, pad: int,
            eos_padding: bool = True) -> dict | None:
    """One packed row (``input_ids``, ``prompt_mask``, ``loss_mask``), or None if no response token fits."""
    if len(prompt_ids) >= block_size or not response_ids:
        return None
    response = (response_ids + [eos])[: block_size - len(prompt_ids)]
    used = len(prompt_ids) + len(response)
    fill = block_size - used
    return {
        "input_ids": prompt_ids + response + [eos if eos_padding else pad] * fill,
        "prompt_mask": [1] * len(prompt_ids) + [0] * (block_size - len(prompt_ids)),
        "loss_mask": [0] * len(prompt_ids) + [1] * len(response) + [1 if eos_padding else 0] * fill,
    }


def _pack_sft_batch(batch: dict, tokenizer: PreTrainedTokenizerBase, config) -> dict:
    """Render, tokenise and pack a batch of records (``Dataset.map(batched=True)``)."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    keys = list(batch)
    records = [dict(zip(keys, values)) for values in zip(*batch.values())]
    pairs = [render_example(r, tokenizer, config) for r in records]
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False, verbose=False)["input_ids"] if pairs else []
    answers = tokenizer([r for _, r in pairs], add_special_tokens=False, verbose=False)["input_ids"] if pairs else []
    out = {name: [] for name in SFT_COLUMNS}
    for p, r in zip(prompts, answers):
        row = sft_row(p, r, config.block_size, eos, pad, config.sft_eos_padding)
        if row is not None:
            for name in SFT_COLUMNS:
                out[name].append(row[name])
    return out


def load_sft_records(source: str, config, split: str | None = None) -> datasets.Dataset:
    """The records of an SFT source (jsonl/json file, save_to_disk directory, hub:NAME)."""
    from dlm.training.data import _from_disk, _from_hub, _is_saved_dataset

    split = split or config.split
    if not source.strip():
        raise DataError("no data source given", hint=SFT_SOURCE_HINT)
    if source.startswith("hub:"):
        ds = _from_hub(source[len("hub:"):], config, split)
    else:
        path = Path(source).expanduser()
        if path.is_dir() and _is_saved_dataset(path):
            ds = _from_disk(path, split)
        elif path.suffix in (".jsonl", ".json") and path.is_file():
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=config.cache_dir)
        elif path.exists():
            raise DataError(f"unsupported SFT data {path}", hint=SFT_SOURCE_HINT)
        else:
            raise DataError(f"SFT data source '{source}' not found", hint=SFT_SOURCE_HINT)
    fields = set(ds.column_names)
    if config.messages_field not in fields and not {config.prompt_field, config.response_field} <= fields:
        raise DataError(f"{source} has neither '{config.messages_field}' nor '{config.prompt_field}'+"
                        f"'{config.response_field}' (fields: {', '.join(ds.column_names)})",
                        hint="set data.messages_field, or data.prompt_field and data.response_field")
    return ds


def pack_sft(records: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, config) -> datasets.Dataset:
    """Render, tokenise and pack SFT records into ``block_size`` rows with ``prompt_mask`` and ``loss_mask``."""
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no eos token to end responses",
                          hint="use 'gpt2' or a tokenizer from 'dlm tokenizer train'")
    rows = records.map(
        _pack_sft_batch, batched=True, batch_size=config.batch_size, remove_columns=records.column_names,
        fn_kwargs={"tokenizer": tokenizer, "config": config}, num_proc=config.num_proc, desc="tokenize+sft",
    )
    if len(rows) == 0:
        raise DataError(f"no SFT example fits in block_size={config.block_size} ({len(records)} records)",
                        hint="raise data.block_size or shorten the prompts")
    if len(rows) < len(records):
        warnings.warn(f"{len(records) - len(rows)} of {len(records)} SFT examples dropped: "
                      f"the prompt leaves no room for a response in {config.block_size} tokens", stacklevel=2)
    return rows.with_format("torch")


def build_sft_datasets(config, tokenizer: PreTrainedTokenizerBase
                       ) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """(train, validation) SFT row datasets; a Jinja ``config.chat_template`` is set on ``tokenizer`` first."""
    from dlm.training.data import train_and_validation

    set_chat_template(tokenizer, config.chat_template)
    records, val = train_and_validation(config, load_sft_records)
    return pack_sft(records, tokenizer, config), (pack_sft(val, tokenizer, config) if val is not None else None)
