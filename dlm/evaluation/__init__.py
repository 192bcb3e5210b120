"""Evaluation of diffusion LMs: validation NELBO (bits/token, perplexity bound), generative perplexity under a
real causal LM, and diversity (unigram entropy, distinct-n, self-BLEU); ``dlm eval`` runs them.

Each is a Python function here and an ``evaluate`` module shipped in the package::

    import evaluate
    from dlm.evaluation import metric_path
    gen_ppl = evaluate.load(metric_path("gen_ppl"))          # local script: works offline
    gen_ppl.compute(predictions=texts, judge="smollm2")
"""

from __future__ import annotations

from pathlib import Path

from dlm.evaluation.diversity import (distinct_n, diversity_report, self_bleu, sentence_bleu, sequence_entropy,
                                      unigram_entropy, words)
from dlm.evaluation.genppl import GenPPLResult, Judge, generative_perplexity, load_judge, smollm2_gguf
from dlm.evaluation.nelbo import (TIME_SAMPLINGS, NELBOResult, heldout_blocks, nelbo_estimate, score_texts,
                                  stratified_times, validation_nelbo)
from dlm.evaluation.samples import SampleSet, draw_samples, load_for_eval

METRICS = ("dlm_nelbo", "gen_ppl", "diversity")


def metric_path(name: str) -> str:
    """Path of the ``evaluate`` module script ``name`` (one of :data:`METRICS`) shipped in the package."""
    from dlm.errors import ConfigError

    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}", hint=f"choose one of {', '.join(METRICS)}")
    return str(Path(__file__).resolve().parent / "metrics" / f"{name}.py")


__all__ = [
    "METRICS", "metric_path",
    "NELBOResult", "TIME_SAMPLINGS", "heldout_blocks", "nelbo_estimate", "score_texts", "stratified_times", "validation_nelbo",
    "GenPPLResult", "Judge", "generative_perplexity", "load_judge", "smollm2_gguf",
    "distinct_n", "diversity_report", "self_bleu", "sentence_bleu", "sequence_entropy", "unigram_entropy", "words",
    "SampleSet", "draw_samples", "load_for_eval",
]
