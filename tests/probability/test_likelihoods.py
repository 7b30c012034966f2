"""p(x|z): the Bernoulli and Gaussian likelihoods are the course's formulas, and never NaN."""

import math

import numpy as np
import tensorflow as tf

from tfvae.probability import Likelihood


def test_bernoulli_log_likelihood_is_summed_cross_entropy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 5, 5, 1)).astype(np.float32) * 3
    x = (rng.random((4, 5, 5, 1)) < 0.5).astype(np.float32)
    x_hat = 1 / (1 + np.exp(-logits.astype(np.float64)))
    course = -np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat), axis=(1, 2, 3))
    lik = Likelihood("bernoulli")
    np.testing.assert_allclose(-lik.distribution({"logits": logits}).log_prob(x).numpy(), course, rtol=1e-5)
    np.testing.assert_allclose(lik.reconstruction_loss({"logits": logits}, x).numpy(), course, rtol=1e-5)


def test_no_nan_for_pixels_exactly_zero_or_one_and_extreme_logits():
    logits = np.array([-200.0, -50.0, 0.0, 50.0, 200.0], np.float32).reshape(1, 5, 1, 1)
    for value in (0.0, 1.0):
        x = np.full((1, 5, 1, 1), value, np.float32)
        lp = Likelihood("bernoulli").distribution({"logits": logits}).log_prob(x).numpy()
        assert np.all(np.isfinite(lp))
    # Gaussian scales come through softplus + floor: a huge negative raw scale stays positive.
    from tfvae.layers import PositiveScale

    s = PositiveScale(1e-3)(tf.constant([-1e4, 0.0, 1e4]))
    assert np.all(s.numpy() >= 1e-3) and np.all(np.isfinite(s.numpy()))


def test_gaussian_likelihood_matches_the_course_formula():
    rng = np.random.default_rng(2)
    loc = rng.random((3, 4, 4, 1)).astype(np.float32)
    scale = (0.05 + rng.random((3, 4, 4, 1))).astype(np.float32)
    x = rng.random((3, 4, 4, 1)).astype(np.float32)
    # -log p(x|z) = sum_j 1/2 log(sigma_j^2) + (x_j - mu_j)^2 / (2 sigma_j^2) + 1/2 log(2 pi)
    nll = np.sum(0.5 * np.log(scale.astype(np.float64) ** 2) + (x - loc) ** 2 / (2 * scale.astype(np.float64) ** 2)
                 + 0.5 * math.log(2 * math.pi), axis=(1, 2, 3))
    lp = Likelihood("gaussian").distribution({"loc": loc, "scale": scale}).log_prob(x).numpy()
    np.testing.assert_allclose(-lp, nll, rtol=1e-5)
