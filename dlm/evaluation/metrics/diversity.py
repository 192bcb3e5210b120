"""Diversity of generated texts: unigram entropy (nats), distinct-n and optional self-BLEU-4.

    diversity = evaluate.load(dlm.evaluation.metric_path("diversity"))
    diversity.compute(predictions=texts)                     # whitespace tokens
    diversity.compute(predictions=texts, tokenizer="DIR")    # a tokenizer's ids (e.g. the model's)
"""

import datasets
import evaluate

from dlm.evaluation.diversity import diversity_report, words

_DESCRIPTION = "unigram entropy, distinct-n and self-BLEU of generated texts (dlm.evaluation.diversity)."
_KWARGS = """tokenizer: None (whitespace) or a tokenizer directory; orders: n of distinct-n; self_bleu: bool."""


class Diversity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
                                   features=datasets.Features({"predictions": datasets.Value("string")}))

    def _compute(self, predictions, tokenizer=None, orders=(1, 2, 3, 4), self_bleu=False):
        if tokenizer is None:
            rows = words(list(predictions))
        else:
            from dlm.tokenization import load_tokenizer

            tok = load_tokenizer(tokenizer)
            rows = [tok(text, add_special_tokens=False)["input_ids"] for text in predictions]
        return diversity_report(rows, tuple(orders), self_bleu)
