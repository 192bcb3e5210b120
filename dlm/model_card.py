"""Model cards of dlm models: ``model_cards/template.md`` filled through ``huggingface_hub.ModelCard``.

:func:`model_card` reads the model directory (``config.json``, the safetensors header for the parameter
count) and, when there is one, its training run (``trainer_state.json`` of the newest checkpoint for the
recipe, the last validation record of ``log.jsonl`` for the figures), and returns a ``ModelCard`` whose
metadata carries ``library_name: dlm``, ``pipeline_tag: text-generation``, license, datasets, tags and,
with evaluation figures, a ``model-index``. ``dlm card MODEL_DIR`` writes one; ``dlm push`` uploads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from dlm.errors import CheckpointError, ConfigError

TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / "template.md"
TAGS = ["dlm", "diffusion", "discrete-diffusion", "text-generation"]
CORPUS_INFO = {
    "austen": "Jane Austen's six novels (public domain; Debian `r-cran-janeaustenr`)",
    "kjv": "the King James Bible (public domain; Debian `bible-kjv`)",
    "shakespeare": "Shakespeare's plays and poems (public domain; Project Gutenberg)",
}
DEFAULT_LIMITATIONS = (
    "A small research model: its text is locally fluent in the style of its training data but often incoherent "
    "over longer spans, and it knows nothing beyond that data. It reproduces the biases and the language of its "
    "(historical) sources. Not for factual use."
)


def find_run_dir(model_dir: str | Path) -> Path | None:
    """The training run a model came from: ``<run>`` for ``<run>/final`` or ``<run>/checkpoint-N``, if it logged."""
    model_dir = Path(model_dir)
    parent = model_dir.parent
    if (model_dir.name == "final" or model_dir.name.startswith("checkpoint-")) and (parent / "log.jsonl").is_file():
        return parent
    return None


def run_recipe(run_dir: str | Path) -> dict | None:
    """The recipe of a training run, from the newest checkpoint's ``trainer_state.json`` (None if none)."""
    from dlm.training.checkpoint import STATE_FILE, checkpoint_dirs

    for ckpt in reversed(checkpoint_dirs(run_dir)):
        try:
            state = json.loads((ckpt / STATE_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(state.get("recipe"), dict):
            return {**state["recipe"], "_step": state.get("step")}
    return None


def run_evaluation(run_dir: str | Path) -> dict | None:
    """The last validation record of ``<run>/log.jsonl`` (step and ``val_*`` figures), or None."""
    log = Path(run_dir) / "log.jsonl"
    if not log.is_file():
        return None
    last = None
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "val_bits_per_token" in record:
            last = record
    return last


def count_parameters(model_dir: str | Path) -> int | None:
    """Parameters in the directory's safetensors files, read from their headers (no weights loaded)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("model*.safetensors")) or sorted(Path(model_dir).glob("adapter_model.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():
                total += math.prod(handle.get_slice(key).get_shape())
    return total


def _describe_source(source: str) -> str:
    if source in CORPUS_INFO:
        return CORPUS_INFO[source]
    if source.startswith("hub:"):
        return f"the hub dataset `{source[4:]}`"
    return f"`{source}`"


def _recipe_table(recipe: dict) -> list[tuple[str, str]]:
    """Key facts of a recipe as (name, value) rows."""
    data, optim, train = recipe.get("data", {}), recipe.get("optim", {}), recipe.get("train", {})
    model, tok = recipe.get("model", {}), recipe.get("tokenizer", {})
    rows = [("data", _describe_source(str(data.get("source", "?"))))]
    if data.get("format") == "sft":
        rows.append(("format", "supervised fine-tuning on prompt/response pairs: loss on response tokens only, "
                               "prompt kept clean (LLaDA)"))
    if model.get("init_from"):
        rows.append(("initialised from", f"`{model['init_from']}`"))
    rows.append(("tokenizer", "byte-level BPE trained on the data" if tok.get("name") == "train"
                 else f"`{tok.get('name')}`"))
    block, batch, steps = data.get("block_size"), train.get("batch_size"), train.get("max_steps")
    rows.append(("sequence length", f"{block} tokens ({data.get('packing', 'wrap')} packing)"))
    objective = {"nelbo": "NELBO (MDLM masked-KL / uniform ELBO)", "score_entropy": "score entropy (SEDD)",
                 "ar": "next-token cross entropy (AR baseline)"}.get(train.get("objective"), str(train.get("objective")))
    if train.get("time_sampling") == "count":
        objective += ", count-weighted estimator ((n+1)/k per masked token)"
    rows.append(("objective", objective))
    if steps and batch:
        tokens = f", {steps * batch * block:,} tokens" if block and data.get("format", "text") != "sft" else ""
        rows.append(("steps", f"{steps:,} × batch {batch}{tokens}"))
    if optim:
        rows.append(("optimiser", f"AdamW, lr {optim.get('lr')}, {optim.get('lr_schedule', 'constant')} schedule, "
                                  f"{optim.get('warmup_steps')} warm-up steps, weight decay {optim.get('weight_decay')}"))
    if train.get("ema"):
        rows.append(("EMA", str(train["ema"])))
    if train.get("mixed_precision", "no") != "no":
        rows.append(("precision", str(train["mixed_precision"])))
    if train.get("lora"):
        lora = train["lora"]
        rows.append(("LoRA", ", ".join(f"{k} {v}" for k, v in lora.items()) + " (merged into the weights)"))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    return str(value)


def model_card(model_dir: str | Path, *, run_dir: str | Path | None = None, recipe: dict | None = None,
               repo_id: str | None = None, model_name: str | None = None, description: str | None = None,
               license: str = "apache-2.0", datasets: list[str] | None = None, language: str | list[str] = "en",
               base_model: str | None = None, evaluation: dict[str, float] | None = None,
               samples: list[dict] | None = None, tags: list[str] | None = None, limitations: str | None = None,
               prompt: str | None = None, template_path: str | Path | None = None):
    """A filled ``huggingface_hub.ModelCard`` for the dlm model in ``model_dir``.

    ``run_dir``: its training run (default: found from ``<run>/final``) for the recipe and validation
    figures; ``recipe`` overrides the recorded one. ``evaluation``: more figures (name → value), e.g. a
    generative perplexity. ``samples``: ``{"prompt", "text", "settings"}`` dicts. ``datasets``: hub dataset
    ids for the metadata (default: the recipe's ``hub:`` source, if any).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    adapter_of = None
    if not config_file.is_file() and (model_dir / "adapter_config.json").is_file():  # a LoRA adapter
        from dlm.hub import resolve_model_dir
        from dlm.training.lora import adapter_base

        adapter_of = adapter_base(model_dir)
        config_file = resolve_model_dir(adapter_of) / "config.json"
        tags = ["lora", "peft"] + list(tags or [])
        if base_model is None and looks_like_repo(adapter_of):
            base_model = adapter_of
        if description is None:
            description = (f"A LoRA adapter (peft) for the dlm model `{adapter_of}`. Merge it into a plain dlm model "
                           f"with `dlm lora merge ADAPTER_DIR OUT`; the architecture below is the base model's.")
    if not config_file.is_file():
        raise CheckpointError(f"{model_dir} has no config.json", hint="give a directory written by save_pretrained or dlm train")
    config = json.loads(config_file.read_text())
    template = Path(template_path) if template_path else TEMPLATE
    if not template.is_file():
        raise ConfigError(f"model card template {template} not found", hint="pass template_path=... (see model_cards/template.md)")
    run_dir = Path(run_dir) if run_dir is not None else find_run_dir(model_dir)
    if recipe is None and run_dir is not None:
        recipe = run_recipe(run_dir)
    recipe = dict(recipe or {})
    step = recipe.pop("_step", None)
    record = run_evaluation(run_dir) if run_dir is not None else None

    source = str(recipe.get("data", {}).get("source", "")) if recipe else ""
    if datasets is None and source.startswith("hub:"):
        datasets = [source[4:]]
    if base_model is None and recipe.get("model", {}).get("init_from") and looks_like_repo(recipe["model"]["init_from"]):
        base_model = recipe["model"]["init_from"]
    name = model_name or (repo_id.split("/")[-1] if repo_id else model_dir.resolve().name
                          if model_dir.name != "final" else model_dir.resolve().parent.name)

    figures: list[tuple[str, str]] = []
    eval_results = []
    note = ""
    if record is not None:
        bits = record["val_bits_per_token"]
        figures += [("validation NELBO (bits/token)", _fmt(bits)),
                    ("validation NELBO (nats/token)", _fmt(record.get("val_nats_per_token", bits * math.log(2)))),
                    ("perplexity upper bound exp(NELBO/token)", _fmt(record.get("val_ppl_bound", math.exp(bits * math.log(2)))))]
        held = recipe.get("data", {})
        split = (f"`{held['val_source']}`" if held.get("val_source") else
                 f"a held-out {100 * held.get('val_fraction', 0):g}% of the documents" if held else "the validation split")
        note = (f"Measured by `dlm train` at step {record.get('step')} on {split} (fixed noise, antithetic times). "
                "The NELBO bounds the negative log-likelihood from above, so exp(NELBO/token) bounds the perplexity.")
        if source:
            eval_results.append(EvalResult(
                task_type="text-generation", dataset_type=source[4:] if source.startswith("hub:") else source,
                dataset_name=_describe_source(source).replace("`", ""), dataset_split="validation",
                metric_type="nelbo_bits_per_token", metric_name="validation NELBO (bits/token)",
                metric_value=round(float(bits), 4)))
    for key, value in (evaluation or {}).items():
        figures.append((key, _fmt(value)))

    process = config.get("process", "masked")
    vocab = config.get("vocab_size")
    real = vocab - 1 if process == "masked" and vocab else vocab
    card_data = ModelCardData(
        library_name="dlm", pipeline_tag="text-generation", license=license, language=language,
        datasets=datasets or None, base_model=base_model, tags=list(dict.fromkeys(TAGS + [
            "masked-diffusion" if process == "masked" else "uniform-diffusion",
            "sedd" if config.get("head") == "score" else "mdlm"] + (tags or []))),
        model_name=name if eval_results else None, eval_results=eval_results or None)
    params = count_parameters(model_dir)
    corpus = _describe_source(source) if source else None
    if description is None:
        kind = "masked (absorbing-state)" if process == "masked" else "uniform-state"
        description = f"A {kind} discrete diffusion language model trained with the `dlm` package" + (
            f" on {corpus}." if corpus else ".")
    recipe_clean = {k: v for k, v in recipe.items() if k in ("model", "tokenizer", "data", "optim", "train")}
    return ModelCard.from_template(
        card_data, template_path=str(template),
        model_name=name, description=description, num_layers=config.get("num_hidden_layers"),
        hidden_size=config.get("hidden_size"), num_heads=config.get("num_attention_heads"),
        cond_dim=config.get("cond_dim"), num_parameters=(f"{params:,}" + (" (the adapter's)" if adapter_of else "")) if params is not None else "unknown",
        process="masked (absorbing-state)" if process == "masked" else "uniform-state",
        schedule=config.get("noise_schedule", "loglinear"),
        head_text=("log concrete score (SEDD parameterisation)" if config.get("head") == "score"
                   else "clean-token posterior p(x0 \\| x_t) (MDLM SUBS parameterisation)"),
        time_conditioning="yes" if config.get("time_conditioning") else "no (MDLM: the masked positions carry the time)",
        vocab_text=f"{real:,} tokens" + (f" + mask (id {config.get('mask_id')})" if process == "masked" else ""),
        max_seq_len=config.get("max_seq_len"), base_model=base_model,
        recipe=bool(recipe_clean), recipe_table=_recipe_table(recipe_clean) if recipe_clean else [],
        recipe_yaml=yaml.safe_dump(recipe_clean, sort_keys=False) if recipe_clean else "",
        recipe_step=step, evaluation=figures, evaluation_note=note, samples=samples or [],
        model_ref=repo_id or str(model_dir), prompt=prompt, limitations=limitations or DEFAULT_LIMITATIONS,
    )


def looks_like_repo(name: str) -> bool:
    """Whether ``name`` reads as a hub id (``user/model``) rather than a local path."""
    from dlm.hub import looks_like_hub_id

    return "/" in name and looks_like_hub_id(name)
