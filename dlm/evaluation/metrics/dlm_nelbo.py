"""NELBO (bits/token, perplexity bound) of texts under a dlm diffusion model, or exact NLL under a dlm AR baseline.

    nelbo = evaluate.load(dlm.evaluation.metric_path("dlm_nelbo"))
    nelbo.compute(predictions=texts, model="DIR", num_t=32)  # {"nats_per_token", "bits_per_token", "ppl_bound", ...}

Each text is tokenised by the model's tokenizer (no special tokens), cut to the model's context and scored as one
sequence; texts of equal token length share a batch.
"""

import datasets
import evaluate

from dlm.evaluation.nelbo import score_texts

_DESCRIPTION = "continuous-time NELBO of texts under a dlm model, stratified over time (dlm.evaluation.nelbo)."
_KWARGS = """model: model directory (None: the shipped model); num_t; time_sampling ("auto"|"count"|"uniform"); seed; device."""


class DLMNelbo(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
                                   features=datasets.Features({"predictions": datasets.Value("string")}))

    def _compute(self, predictions, model=None, num_t=32, time_sampling="auto", seed=0, device="cpu"):
        return score_texts(list(predictions), model, num_t, time_sampling, seed, device).to_dict()
