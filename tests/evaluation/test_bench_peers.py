import json

import pytest
import torch
import torch.nn.functional as F

from tests.scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_peers")


def test_flash_attn_standin_matches_plain_attention_and_rotary(bench):
    mods = bench.flash_attn_standin()
    varlen = mods["flash_attn.flash_attn_interface"].flash_attn_varlen_qkvpacked_func
    gen = torch.Generator().manual_seed(0)
    qkv = torch.randn(2 * 5, 3, 2, 4, generator=gen)  # two sequences of 5 tokens, 2 heads of 4
    out = varlen(qkv, torch.tensor([0, 5, 10]), 5, 0.0, causal=False)
    for b in range(2):
        q, k, v = qkv[5 * b:5 * b + 5].unbind(1)  # [5, H, D]
        att = torch.softmax(torch.einsum("ihd,jhd->hij", q, k) / 2.0, -1)
        assert torch.allclose(out[5 * b:5 * b + 5], torch.einsum("hij,jhd->ihd", att, v), atol=1e-5)
    ragged = varlen(qkv, torch.tensor([0, 3, 10]), 7, 0.0)
    q, k, v = qkv[:3].unbind(1)
    assert torch.allclose(ragged[:3], F.scaled_dot_product_attention(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)).transpose(0, 1), atol=1e-5)
    # rotary: flash-attn's non-interleaved formula on q and k, v untouched
    rotary = mods["flash_attn.layers.rotary"].apply_rotary_emb_qkv_
    x = torch.randn(1, 5, 3, 2, 4, generator=gen)
    angles = torch.randn(5, 2, generator=gen)
    y = rotary(x.clone(), angles.cos(), angles.sin())
    cos, sin = torch.cat([angles.cos()] * 2, -1)[None, :, None], torch.cat([angles.sin()] * 2, -1)[None, :, None]
    for j in (0, 1):
        half = torch.cat([-x[:, :, j, :, 2:], x[:, :, j, :, :2]], -1)
        assert torch.allclose(y[:, :, j], x[:, :, j] * cos + half * sin, atol=1e-6)
    assert torch.equal(y[:, :, 2], x[:, :, 2])


def test_toy_part_runs_and_skips_missing_peers(bench, tmp_path, capsys):
    out = tmp_path / "peers.json"
    assert bench.main(["--parts", "toy", "--sedd-repo", str(tmp_path / "nope"), "--toy-samples", "300",
                       "--toy-steps", "2", "--toy-length", "2", "--toy-vocab", "3", "--json", str(out),
                       "--figures", str(tmp_path / "fig")]) == 0
    err = capsys.readouterr().err
    assert "[skip] SEDD" in err and "[skip] MDLM" in err
    rows = json.loads(out.read_text())["toy"]["rows"]
    labels = {r["sampler"] for r in rows}
    assert {"dlm ancestral (cache)", "dlm analytic"} <= labels
    assert all(0 <= r["tv"] <= 1 and r["nfe"] >= 1 for r in rows)
    assert (tmp_path / "fig" / "peers_toy_tv.png").is_file()


def test_upstream_models_match_their_conversions(bench, tmp_path):
    """Only with checkouts of the upstream repositories: DLM_SEDD_REPO and DLM_MDLM_REPO."""
    import os

    sedd_repo, mdlm_repo = os.environ.get("DLM_SEDD_REPO"), os.environ.get("DLM_MDLM_REPO")
    if not (sedd_repo and mdlm_repo):
        pytest.skip("set DLM_SEDD_REPO and DLM_MDLM_REPO to checkouts of the upstream code")
    pytest.importorskip("einops")
    pytest.importorskip("omegaconf")
    out = tmp_path / "peers.json"
    assert bench.main(["--parts", "denoiser", "--sedd-repo", sedd_repo, "--mdlm-repo", mdlm_repo, "--hidden", "32",
                       "--layers", "1", "--heads", "2", "--cond", "16", "--vocab", "50", "--seq", "12", "--batch", "2",
                       "--repeats", "1", "--json", str(out), "--figures", str(tmp_path)]) == 0
    rows = json.loads(out.read_text())["denoiser"]
    assert len(rows) == 4
    for row in rows:
        assert row["max_abs_output_diff"] < 1e-4 and row["max_abs_loss_diff"] < 1e-4 * max(1.0, row["max_abs_loss"])
