import math

import pytest
import torch

from dlm.errors import InputError
from dlm.evaluation import distinct_n, diversity_report, self_bleu, sentence_bleu, unigram_entropy, words


def test_unigram_entropy_of_hand_made_samples():
    assert unigram_entropy(words(["a a b b"])) == pytest.approx(math.log(2))
    assert unigram_entropy(words(["a a a a"])) == 0.0
    # mean over samples: log 4 and the entropy of (1/2, 1/4, 1/4) = 1.5 log 2
    assert unigram_entropy(words(["a b c d", "x x y z"])) == pytest.approx((math.log(4) + 1.5 * math.log(2)) / 2)
    assert unigram_entropy(torch.tensor([[1, 1, 2, 2]])) == pytest.approx(math.log(2))


def test_distinct_n_counts_over_all_samples():
    samples = words(["a b a b", "a b c"])
    assert distinct_n(samples, 1) == pytest.approx(3 / 7)  # {a, b, c} over 7 tokens
    assert distinct_n(samples, 2) == pytest.approx(3 / 5)  # ab ba ab | ab bc -> {ab, ba, bc}
    assert distinct_n(samples, 4) == pytest.approx(1.0)  # one 4-gram
    assert distinct_n(samples, 5) == 0.0


def test_bleu_by_hand():
    hyp, ref = "the cat sat on the mat".split(), "the cat is on the mat".split()
    # p1 = 5/6, p2 = 3/5 (the cat, on the, the mat), p3 = 1/4 (on the mat), p4 = 0 -> ε/3; no brevity penalty
    expected = math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(1 / 4) + math.log(0.1 / 3)) / 4)
    assert sentence_bleu(hyp, [ref]) == pytest.approx(expected)
    # all precisions 1: BLEU is the brevity penalty exp(1 − r/c) against the closest reference length r
    hyp = "the cat sat on".split()
    refs = ["the cat sat on the mat".split(), "a dog".split()]
    assert sentence_bleu(hyp, refs) == pytest.approx(1.0)  # tie at distance 2: the shorter (2) is closest
    assert sentence_bleu(hyp, refs[:1]) == pytest.approx(math.exp(-0.5))


def test_self_bleu_is_one_for_identical_samples_and_low_for_disjoint_ones():
    same = words(["a b c d e"] * 3)
    assert self_bleu(same) == pytest.approx(1.0)
    # no match at any order: p_n = ε/(6 − n), n = 1..4
    assert self_bleu(words(["a b c d e", "f g h i j"])) == pytest.approx(0.1 / 120 ** 0.25)
    with pytest.raises(InputError):
        self_bleu(words(["a b"]))


def test_report_keys():
    report = diversity_report(words(["a b c d", "a b e f"]), with_self_bleu=True)
    assert set(report) == {"unigram_entropy", "distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu_4"}
    with pytest.raises(InputError):
        unigram_entropy("a b c")
