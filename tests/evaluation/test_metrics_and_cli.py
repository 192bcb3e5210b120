import json

import pytest

from dlm.cli.main import main
from dlm.errors import ConfigError
from dlm.evaluation import diversity_report, generative_perplexity, load_judge, metric_path, score_texts, words

TEXTS = ["the cat sat on a mat.", "a dog ran to the big red house.", "the cat ran."]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")


def load(name):
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(metric_path(name))


def test_evaluate_modules_return_what_the_functions_return(judge_dir, dlm_dir):
    assert load("diversity").compute(predictions=TEXTS) == diversity_report(words(TEXTS))
    expected = generative_perplexity(TEXTS, load_judge(judge_dir)).to_dict()
    assert load("gen_ppl").compute(predictions=TEXTS, judge=str(judge_dir)) == pytest.approx(expected)
    nelbo = load("dlm_nelbo").compute(predictions=TEXTS, model=str(dlm_dir), num_t=3, seed=1)
    assert nelbo == score_texts(TEXTS, dlm_dir, num_t=3, seed=1).to_dict()
    assert nelbo["time_sampling"] == "count" and nelbo["num_sequences"] == 3
    with pytest.raises(ConfigError):
        metric_path("bleurt")


def test_cli_eval_reports_nelbo_samples_and_gen_ppl(dlm_dir, judge_dir, corpus, capsys, tmp_path):
    import yaml

    out = tmp_path / "samples.jsonl"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"source": str(corpus), "block_size": 24, "val_fraction": 0.2,
                                               "txt_documents": "paragraph"}}))
    code = main(["eval", "--model", str(dlm_dir), "--recipe", str(recipe), "--num-t", "2",
                 "--max-blocks", "4", "--gen-ppl", "--judge", str(judge_dir), "--num-samples", "3", "--length", "10",
                 "--steps", "4", "--samples-out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["nelbo"]["num_sequences"] == 4 and report["nelbo"]["block_size"] == 24
    assert report["samples"]["nfe_per_sample"] <= 5 and report["gen_ppl"]["num_samples"] == 3
    assert set(report["diversity"]) >= {"unigram_entropy", "distinct_2"}
    assert len(out.read_text().splitlines()) == 3


def test_cli_eval_of_the_ar_baseline(ar_dir, capsys):
    assert main(["eval", "--model", str(ar_dir), "--num-samples", "2", "--length", "8"]) == 0
    text = capsys.readouterr().out
    assert "(ar)" in text and "ancestral AR" in text and "8.0 network calls" in text


def test_cli_eval_passes_temperature_and_top_p_to_the_sampler(dlm_dir, ar_dir, capsys):
    args = ["--num-samples", "2", "--length", "6", "--steps", "3", "--json"]
    assert main(["eval", "--model", str(dlm_dir), *args, "--temperature", "0.7", "--top-p", "0.5"]) == 0
    samples = json.loads(capsys.readouterr().out)["samples"]
    assert samples["temperature"] == 0.7 and samples["top_p"] == 0.5
    assert main(["eval", "--model", str(ar_dir), *args, "--top-p", "0.5"]) == 2
    assert "--top-p applies to the diffusion samplers" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    ([], "nothing to evaluate"),
    (["--num-samples", "2", "--top-p", "1.5"], "top_p"),
    (["--data", "x", "--recipe", "y.yaml"], "not both"),
    (["--num-samples", "0"], "positive"),
    (["--num-samples", "2", "--sampler", "magic"], "unknown sampling method"),
    (["--data", "/nonexistent/corpus.txt"], "not found"),
])
def test_cli_eval_bad_input_is_one_line(dlm_dir, capsys, args, message):
    assert main(["eval", "--model", str(dlm_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1


def test_cli_eval_missing_model(capsys, tmp_path):
    assert main(["eval", "--model", str(tmp_path / "none"), "--num-samples", "1"]) == 2
    assert capsys.readouterr().err.startswith("error:")
