"""Continuous-state score-based diffusion: SDEs, denoising score matching, samplers and likelihoods.

Includes the 𝔥-interpolated sampler and the first-order WKB likelihood correction of Hirono, Tanaka &
Fukushima, "Understanding Diffusion Models by Feynman's Path Integral" (ICML'24). See docs/continuous.md.
"""

from dlm.continuous.grids import noise_level, time_grid, time_of_noise_level
from dlm.continuous.likelihood import LikelihoodOutput, bits_per_dim, log_likelihood, wkb_correction
from dlm.continuous.losses import dsm_loss, score_fn
from dlm.continuous.metrics import mmd2, sliced_wasserstein
from dlm.continuous.mixture import GaussianMixture, diffused_log_prob, diffused_score, exact_score, grid_mixture
from dlm.continuous.models import MLP
from dlm.continuous.samplers import h_sample, heun_sample, pc_sample
from dlm.continuous.sde import SDE, CosineSDE, ScoreFn, SimpleSDE, SubVPSDE, VESDE, VPSDE, get_sde, h_drift

__all__ = [
    "SDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "SimpleSDE",
    "CosineSDE",
    "ScoreFn",
    "get_sde",
    "h_drift",
    "time_grid",
    "noise_level",
    "time_of_noise_level",
    "dsm_loss",
    "score_fn",
    "MLP",
    "h_sample",
    "pc_sample",
    "heun_sample",
    "log_likelihood",
    "wkb_correction",
    "LikelihoodOutput",
    "bits_per_dim",
    "GaussianMixture",
    "diffused_log_prob",
    "diffused_score",
    "exact_score",
    "grid_mixture",
    "sliced_wasserstein",
    "mmd2",
]
