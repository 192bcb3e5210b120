import math

import pytest
import torch

from dlm.errors import CheckpointError, InputError
from dlm.evaluation import generative_perplexity, load_judge
from dlm.evaluation.genppl import sequence_nll, window_spans



def nll_by_hand(judge, ids):
    """Σ −log p of every token after the context token, one full forward pass (fits the context)."""
    full = torch.tensor([[judge.context_id] + ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(judge.model(input_ids=full).logits[0, :-1].double(), -1)
    return -sum(log_probs[j, full[0, j + 1]].item() for j in range(len(ids)))


def test_gen_ppl_is_exp_of_the_mean_nll(judge_dir):
    judge = load_judge(judge_dir)
    assert judge.context_id == judge.tokenizer.bos_token_id and judge.max_length == 12
    texts = ["the cat sat", "a dog ran to the big red house"]  # both fit the 12-token context
    encoded = [judge.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert all(len(ids) < 12 for ids in encoded)
    total = sum(nll_by_hand(judge, ids) for ids in encoded)
    count = sum(map(len, encoded))
    result = generative_perplexity(texts, judge, batch_size=2)
    assert result.num_tokens == count
    assert result.nats_per_token == pytest.approx(total / count, rel=1e-5)
    assert result.gen_ppl == pytest.approx(math.exp(total / count), rel=1e-5)
    assert result.per_sample_nll[0] == pytest.approx(nll_by_hand(judge, encoded[0]) / len(encoded[0]), rel=1e-5)


def test_long_texts_are_scored_in_sliding_windows(judge_dir):
    judge = load_judge(judge_dir)
    text = "the cat sat on a mat and the dog ran to the big red house with a small blue door. " * 2
    ids = judge.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 30
    full = [judge.context_id] + ids
    expected = 0.0  # each position p once, predicted by a forward pass over exactly its window's context
    for begin, end, first in window_spans(len(ids), 12, 5):
        for p in range(first, end):
            with torch.no_grad():
                logits = judge.model(input_ids=torch.tensor([full[begin:p]])).logits[0, -1].double()
            expected -= torch.log_softmax(logits, -1)[full[p]].item()
    assert sequence_nll(judge, ids, stride=5)[0] == pytest.approx(expected, rel=1e-5)
    # the windows cover each position once, always with context before it
    spans = window_spans(len(ids), 12, 5)
    covered = [p for _, end, first in spans for p in range(first, end)]
    assert covered == list(range(1, len(ids) + 1))
    assert all(first > begin and end - begin <= 12 for begin, end, first in spans)
    result = generative_perplexity([text], judge, stride=5)
    assert result.num_tokens == len(ids) and math.isfinite(result.gen_ppl)


def test_judge_errors(tmp_path, judge_dir):
    with pytest.raises(CheckpointError, match="neither"):
        load_judge(tmp_path)
    with pytest.raises(InputError):
        generative_perplexity("one string", load_judge(judge_dir))
    with pytest.raises(InputError, match="stride"):
        window_spans(10, 4, 4)
