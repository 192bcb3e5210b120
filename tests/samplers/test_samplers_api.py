"""The sampling API: network-call counts, the no-change cache, seeds, fixed positions, greedy decoding, guidance,
score models, trajectories and user errors."""

import pytest
import torch

from dlm.errors import ConfigError, DLMError, InputError
from dlm.exact import ExactPosterior, random_toy_distribution
from dlm.losses import posterior_log_ratios
from dlm.processes import MaskedProcess, UniformProcess
from dlm.samplers import SAMPLERS, Posterior, is_time_independent, sample, sample_with_info
from dlm.exact import TabulatedPosterior

V, L = 4, 3
PROBS = random_toy_distribution(V, L, seed=1)
MASKED, UNIFORM = MaskedProcess(V), UniformProcess(V)
METHODS = {"masked": list(SAMPLERS), "uniform": ["euler", "analytic", "ancestral"]}
ALL = [(MASKED, m) for m in METHODS["masked"]] + [(UNIFORM, m) for m in METHODS["uniform"]]
IDS = [f"{p.name}-{m}" for p, m in ALL]


def denoiser(process, probs=PROBS, length=L, **kwargs):
    return TabulatedPosterior(ExactPosterior(process, probs, length), **kwargs)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- network calls ----------------------------------------------------------------------------------------------

def test_first_hitting_calls_once_per_masked_position():
    length = 3
    out = sample_with_info(denoiser(MASKED), MASKED, 50, length, steps=999, method="first_hitting", generator=gen())
    assert out.nfe == length
    prompted = sample_with_info(denoiser(MASKED), MASKED, 50, length, method="first_hitting", generator=gen(),
                                prompt=torch.tensor([[1]]))
    assert prompted.nfe == length - 1
    fixed = torch.tensor([[True, False, True], [False, False, True]])  # rows with 1 and 2 free positions
    ragged = sample_with_info(denoiser(MASKED), MASKED, 2, length, method="first_hitting", generator=gen(),
                              fixed_mask=fixed, fixed_tokens=torch.zeros(2, 3, dtype=torch.long))
    assert ragged.nfe == 2 and not (ragged.tokens == V).any()


@pytest.mark.parametrize("method", ["euler", "analytic", "ancestral"])
@pytest.mark.parametrize("process", [MASKED, UNIFORM], ids=["masked", "uniform"])
def test_step_samplers_call_once_per_step_plus_the_clean_up(process, method):
    """steps calls, plus one for the clean-up at t_min unless (masked) no mask is left by then."""
    den = denoiser(process)
    options = {"cache": False} if method == "ancestral" else {}
    for steps in (1, 10):
        out = sample_with_info(den, process, 200, L, steps, method=method, generator=gen(), return_trajectory=True,
                               **options)
        left = isinstance(process, UniformProcess) or bool((out.trajectory[-1] == V).any())
        assert out.nfe == steps + left
    assert den.calls == out.nfe + 1 + (isinstance(process, UniformProcess) or steps == 1)
    off = sample_with_info(denoiser(process), process, 200, L, 10, method=method, generator=gen(), noise_removal="none",
                           **options)
    assert off.nfe == 10


def test_ancestral_cache_skips_calls_exactly_when_nothing_changed():
    den = denoiser(MASKED, time_independent=True)
    steps = 40
    out = sample_with_info(den, MASKED, 1, L, steps, method="ancestral", generator=gen(3), return_trajectory=True)
    states = out.trajectory  # states[k] is x before step k; states[steps] the last one before the clean-up
    changed = [not torch.equal(states[k], states[k - 1]) for k in range(1, steps + 1)]
    expected = 1 + sum(changed[: steps - 1])  # step k calls iff step k−1 changed x
    if (states[steps] == V).any():
        expected += changed[steps - 1]  # the clean-up reuses the last posterior if the last step changed nothing
    assert out.nfe == expected <= steps + 1
    assert out.nfe <= L + 2


def test_cache_is_exact_for_a_time_independent_denoiser():
    """Same seed, with and without the cache: the same samples (a cached posterior is the posterior); the cache
    re-evaluates only the sequences the last step changed, so each costs at most 1 + L evaluations."""
    cached = sample_with_info(denoiser(MASKED, time_independent=True), MASKED, 500, L, 64, method="ancestral",
                              generator=gen(1))
    fresh = sample_with_info(denoiser(MASKED), MASKED, 500, L, 64, method="ancestral", generator=gen(1), cache=False)
    assert torch.equal(cached.tokens, fresh.tokens)
    assert cached.nfe_per_sample <= 1 + L < 64 <= fresh.nfe_per_sample == fresh.nfe


def test_time_independence_detection():
    assert is_time_independent(denoiser(MASKED, time_independent=True))
    assert not is_time_independent(denoiser(MASKED))

    class Config:
        time_conditioning = False

    class Model:
        config = Config()

    assert is_time_independent(Model())
    Model.config.time_conditioning = True
    assert not is_time_independent(Model())


# --- randomness ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("process,method", ALL, ids=IDS)
def test_same_seed_same_samples_and_fixed_positions_never_change(process, method):
    fixed = torch.tensor([[False, True, False]])
    tokens = torch.tensor([[0, 2, 0]])
    kwargs = dict(prompt=torch.tensor([[3]]), fixed_mask=fixed, fixed_tokens=tokens, return_trajectory=True)
    a = sample_with_info(denoiser(process), process, 300, L, 8, method=method, generator=gen(5), **kwargs)
    b = sample_with_info(denoiser(process), process, 300, L, 8, method=method, generator=gen(5), **kwargs)
    c = sample_with_info(denoiser(process), process, 300, L, 8, method=method, generator=gen(6), **kwargs)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    for state in a.trajectory:
        assert (state[:, 0] == 3).all() and (state[:, 1] == 2).all()
    assert (a.tokens < V).all()


@pytest.mark.parametrize("method", METHODS["masked"])
def test_temperature_zero_reveals_the_argmax(method):
    """L = 1: p(x0 | all masked) = p, so greedy decoding returns argmax p whatever the seed."""
    probs = random_toy_distribution(V, 1, seed=3)
    out = sample(denoiser(MASKED, probs, 1), MASKED, 200, 1, 4, method=method, generator=gen(), temperature=0.0)
    assert (out == probs.argmax()).all()


@pytest.mark.parametrize("method", METHODS["masked"])
def test_top_p_restricts_draws_to_the_nucleus(method):
    probs = torch.tensor([0.45, 0.05, 0.3, 0.2], dtype=torch.float64)
    out = sample(denoiser(MASKED, probs, 1), MASKED, 20_000, 1, 4, method=method, generator=gen(), top_p=0.7)
    freq = torch.bincount(out[:, 0], minlength=V).double() / 20_000
    torch.testing.assert_close(freq, torch.tensor([0.6, 0, 0.4, 0], dtype=torch.float64), atol=0.015, rtol=0)


@pytest.mark.parametrize("process,method", ALL, ids=IDS)
def test_default_temperature_and_top_p_change_nothing(process, method):
    plain = sample(denoiser(process), process, 500, L, 6, method=method, generator=gen(2))
    explicit = sample(denoiser(process), process, 500, L, 6, method=method, generator=gen(2), temperature=1.0,
                      top_p=1.0)
    assert torch.equal(plain, explicit)


# --- guidance, score models, records -------------------------------------------------------------------------------

def test_classifier_free_guidance_combines_conditional_and_unconditional_posteriors():
    exact = ExactPosterior(MASKED, PROBS, L)
    fixed = torch.tensor([[True, False, False]]).expand(2, L)
    x = torch.tensor([[1, V, V], [1, 2, V]])
    t = torch.full((2,), 0.5)
    guided = Posterior(exact, MASKED, fixed, cfg_scale=1.5)(x, t)
    cond, uncond = exact(x, t).double(), exact(x.masked_fill(fixed, V), t).double()
    torch.testing.assert_close(guided, torch.log_softmax(2.5 * cond - 1.5 * uncond, dim=-1), atol=1e-5, rtol=1e-5)
    out = sample_with_info(TabulatedPosterior(exact), MASKED, 100, L, 6, method="ancestral", generator=gen(),
                           prompt=torch.tensor([[1]]), cfg_scale=2.0, cache=False)
    assert out.nfe in (6, 7) and (out.tokens[:, 0] == 1).all()  # one batched call per step (+ clean-up)
    assert out.nfe_per_sample == 2 * out.nfe  # each call evaluates the conditional and the unconditional input


@pytest.mark.parametrize("method", ["euler", "analytic"])
@pytest.mark.parametrize("process", [MASKED, UNIFORM], ids=["masked", "uniform"])
def test_score_parameterization_reads_the_model_score(process, method):
    """A score model whose log-score is the exact mean of ratios samples exactly as the posterior path."""
    exact = denoiser(process)

    def score_model(x, t):
        return posterior_log_ratios(exact(x, t).double(), process, x, process.schedule.total(t.double())).float()

    by_score = sample(score_model, process, 500, L, 8, method=method, generator=gen(4), parameterization="score")
    by_posterior = sample(exact, process, 500, L, 8, method=method, generator=gen(4))
    assert (by_score != by_posterior).double().mean() < 0.01  # float32 scores vs float64 ratios: rare ties differ


def test_callback_and_trajectory_show_every_step():
    seen = []
    out = sample_with_info(denoiser(MASKED), MASKED, 5, L, 7, method="ancestral", generator=gen(),
                           callback=lambda step, t, x: seen.append((step, t, (x == V).sum().item())),
                           return_trajectory=True, progress=True, cache=False)
    assert [s for s, _, _ in seen] == list(range(7)) and len(out.trajectory) == 8
    assert all(a[1] > b[1] for a, b in zip(seen, seen[1:]))
    masks = [(x == V).sum().item() for x in out.trajectory]
    assert masks[0] == 5 * L and all(a >= b for a, b in zip(masks, masks[1:]))


def test_remdm_remasks_revealed_tokens():
    out = sample_with_info(denoiser(MASKED), MASKED, 200, L, 32, method="ancestral", generator=gen(), remask=0.3,
                           remask_strategy="cap", return_trajectory=True)
    masks = [(x == V).sum().item() for x in out.trajectory]
    assert any(b > a for a, b in zip(masks, masks[1:])) and (out.tokens < V).all()
    plain = sample(denoiser(MASKED), MASKED, 200, L, 32, method="ancestral", generator=gen())
    unmasked = sample(denoiser(MASKED), MASKED, 200, L, 32, method="ancestral", generator=gen(), remask=0.0)
    assert torch.equal(plain, unmasked)


def test_confidence_blocks_fill_left_to_right():
    out = sample_with_info(denoiser(MASKED), MASKED, 4, L, 3, method="confidence", generator=gen(), block_length=1,
                           return_trajectory=True)
    for k, state in enumerate(out.trajectory):
        assert ((state != V).sum(-1) == k).all() and (state[:, :k] != V).all()


# --- user errors ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("process,kwargs,error,text", [
    (MASKED, dict(method="nope"), ConfigError, "unknown sampling method"),
    (MASKED, dict(steps=0), ConfigError, "steps"),
    (MASKED, dict(prompt=torch.tensor([[0, 1, 2, 3]])), InputError, "prompt has 4 tokens"),
    (MASKED, dict(prompt=torch.tensor([[V]])), InputError, "prompt ids must lie in"),
    (MASKED, dict(top_p=0.0), ConfigError, "top_p"),
    (MASKED, dict(top_p=1.5), ConfigError, "top_p"),
    (MASKED, dict(temperature=-1.0), ConfigError, "temperature"),
    (MASKED, dict(t_min=0.0), ConfigError, "t_min"),
    (MASKED, dict(spacing="log"), ConfigError, "spacing"),
    (MASKED, dict(noise_removal="maybe"), ConfigError, "noise_removal"),
    (MASKED, dict(method="euler", block_length=2), ConfigError, "do not apply"),
    (MASKED, dict(method="confidence", block_length=0), ConfigError, "block_length"),
    (MASKED, dict(method="confidence", steps=1, block_length=1), ConfigError, "cannot cover"),
    (MASKED, dict(method="confidence", confidence="vibes"), ConfigError, "confidence"),
    (MASKED, dict(method="ancestral", remask=2.0), ConfigError, "remask"),
    (MASKED, dict(method="ancestral", remask_strategy="loop", remask=0.1), ConfigError, "strategy"),
    (MASKED, dict(method="ancestral", point_estimate=True), ConfigError, "point_estimate"),
    (MASKED, dict(method="euler", parameterization="energy"), ConfigError, "parameterization"),
    (MASKED, dict(method="euler", parameterization="score", temperature=0.5), ConfigError, "raw score"),
    (MASKED, dict(cfg_scale=1.0), ConfigError, "prompt or fixed"),
    (MASKED, dict(fixed_mask=torch.tensor([[True, False, False]])), InputError, "together"),
    (MASKED, dict(prompt=torch.zeros(2, 1, dtype=torch.long)), InputError, "num_samples"),
    (MASKED, dict(device="meta"), InputError, "generator is on cpu"),
    (UNIFORM, dict(method="first_hitting"), ConfigError, "masked"),
    (UNIFORM, dict(method="confidence"), ConfigError, "masked"),
    (UNIFORM, dict(method="ancestral", remask=0.1), ConfigError, "masked process"),
    (UNIFORM, dict(cfg_scale=1.0, prompt=torch.tensor([[1]])), ConfigError, "masked process"),
])
def test_bad_inputs_raise_clear_errors(process, kwargs, error, text):
    kwargs = {"steps": 4, **kwargs}
    with pytest.raises(error, match=text) as info:
        sample(denoiser(process), process, 3, L, generator=gen(), **kwargs)
    assert isinstance(info.value, DLMError) and info.value.one_line().startswith("error: ")
