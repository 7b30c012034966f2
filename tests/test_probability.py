"""The probabilities and bounds are the course's: KL in closed form, ELBO <= IWAE_k <= log p(x)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import objectives
from tfvae.probability import Likelihood, diagonal_gaussian, kl_divergence, standard_normal_prior


def test_kl_equals_course_closed_form():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(50, 7)).astype(np.float32) * 2
    sigma = np.exp(rng.normal(size=(50, 7))).astype(np.float32)
    kl = kl_divergence(diagonal_gaussian(mu, sigma), standard_normal_prior(7)).numpy()
    # -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    closed = -0.5 * np.sum(1 + np.log(sigma.astype(np.float64) ** 2) - mu.astype(np.float64) ** 2
                           - sigma.astype(np.float64) ** 2, axis=1)
    np.testing.assert_allclose(kl, closed, rtol=1e-5, atol=1e-5)
    assert np.all(kl >= 0)
    # KL of the prior with itself is exactly zero.
    zero = kl_divergence(diagonal_gaussian(np.zeros((1, 7), np.float32), np.ones((1, 7), np.float32)),
                         standard_normal_prior(7)).numpy()
    assert zero[0] == pytest.approx(0.0, abs=1e-7)


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


# ---------------------------------------------------------------------------------------------
# Probabilistic PCA: p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I). log p(x) is exact:
# x ~ N(b, W W^T + s^2 I). With W's columns orthogonal the true posterior is diagonal, so a
# diagonal q can equal it exactly.
D, K_LAT, S = 6, 3, 0.5


def _ppca():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(D, K_LAT)))
    w = (q * np.array([2.0, 1.2, 0.7])).astype(np.float64)  # orthogonal columns
    b = rng.normal(size=D) * 0.3
    return w, b


def _linear_decoder(w, b):
    z = keras.Input((K_LAT,))
    dense = keras.layers.Dense(D, kernel_initializer=keras.initializers.Constant(w.T.astype(np.float32)),
                               bias_initializer=keras.initializers.Constant(b.astype(np.float32)))
    return keras.Model(z, {"loc": keras.layers.Reshape((D, 1, 1))(dense(z))})


def _exact_posterior_encoder(w, b, shift=0.0, scale_factor=1.0):
    """q(z|x) = the exact posterior (shift=0, scale_factor=1), or a deliberately worse one."""
    precision = np.eye(K_LAT) + w.T @ w / S**2  # diagonal, since W^T W is
    cov = np.linalg.inv(precision)
    m = cov @ w.T / S**2  # posterior mean = m (x - b)
    x = keras.Input((D, 1, 1))
    flat = keras.layers.Flatten()(x)
    loc = keras.layers.Dense(K_LAT, kernel_initializer=keras.initializers.Constant(m.T.astype(np.float32)),
                             bias_initializer=keras.initializers.Constant((-(m @ b) + shift).astype(np.float32)))(flat)
    std = np.sqrt(np.diag(cov)) * scale_factor
    scale = keras.layers.Dense(K_LAT, kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant(std.astype(np.float32)))(flat)
    return keras.Model(x, {"loc": loc, "scale": scale})


def _data(w, b, n=64):
    rng = np.random.default_rng(4)
    z = rng.normal(size=(n, K_LAT))
    x = z @ w.T + b + S * rng.normal(size=(n, D))
    cov = w @ w.T + S**2 * np.eye(D)
    diff = x - b
    _, logdet = np.linalg.slogdet(cov)
    log_px = -0.5 * (D * math.log(2 * math.pi) + logdet + np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff))
    return x.reshape(n, D, 1, 1).astype(np.float32), log_px


def _log_weights(encoder, decoder, x, k, seed):
    lik = Likelihood("gaussian", "fixed", S)
    eps = tf.random.stateless_normal([len(x), k, K_LAT], [seed, 0])
    log_w, _, _ = objectives.log_importance_weights(encoder, decoder, lik, tf.constant(x), eps, training=False)
    return log_w


def _iwae(encoder, decoder, x, k, seed):
    return objectives.iwae_bound_from_log_weights(_log_weights(encoder, decoder, x, k, seed)).numpy()


def _analytic_elbo(encoder, w, b, x):
    """E_q[log p(x|z)] - KL in closed form for the linear-Gaussian decoder."""
    out = encoder(x)
    mu, sd = out["loc"].numpy().astype(np.float64), out["scale"].numpy().astype(np.float64)
    xf = x.reshape(len(x), D).astype(np.float64)
    resid = xf - mu @ w.T - b
    trace = np.einsum("ij,nj->n", w**2, sd**2)  # tr(W diag(sd^2) W^T)
    expected_loglik = -0.5 * D * math.log(2 * math.pi * S**2) - (np.sum(resid**2, 1) + trace) / (2 * S**2)
    kl = -0.5 * np.sum(1 + np.log(sd**2) - mu**2 - sd**2, axis=1)
    return expected_loglik - kl


def test_exact_posterior_makes_every_importance_weight_equal_p_x():
    w, b = _ppca()
    x, log_px = _data(w, b)
    encoder, decoder = _exact_posterior_encoder(w, b), _linear_decoder(w, b)
    log_w = _log_weights(encoder, decoder, x, 64, seed=1).numpy()
    # log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z when q is the true posterior
    np.testing.assert_allclose(log_w, np.broadcast_to(log_px[:, None], log_w.shape), atol=2e-3)
    np.testing.assert_allclose(_iwae(encoder, decoder, x, 16, 2), log_px, atol=2e-3)
    np.testing.assert_allclose(_analytic_elbo(encoder, w, b, x), log_px, atol=2e-3)


def test_elbo_le_iwae_le_log_px_and_iwae_rises_with_k():
    w, b = _ppca()
    x, log_px = _data(w, b)
    encoder = _exact_posterior_encoder(w, b, shift=0.6, scale_factor=1.8)  # a poor q
    decoder = _linear_decoder(w, b)
    exact_elbo = _analytic_elbo(encoder, w, b, x)
    assert np.all(log_px - exact_elbo > 0.05), "a poor q leaves a visible gap"

    # The Monte Carlo ELBO the VAE trains on estimates the closed-form one without bias.
    lik = Likelihood("gaussian", "fixed", S)
    eps = tf.random.stateless_normal([len(x), 4000, K_LAT], [7, 0])
    mc = objectives.elbo(encoder, decoder, lik, tf.constant(x), eps)["elbo"].numpy()
    _, log_px_z, _ = objectives.log_importance_weights(encoder, decoder, lik, tf.constant(x), eps)
    se = log_px_z.numpy().std(axis=1, ddof=1) / math.sqrt(4000)
    assert np.all(np.abs(mc - exact_elbo) < 5 * se + 1e-3)

    means, errors = {}, {}
    for k in (1, 10, 100, 1000):  # E[IWAE_k], estimated from 20 independent draws
        draws = np.stack([_iwae(encoder, decoder, x, k, seed) for seed in range(20)])
        means[k] = draws.mean(axis=0)
        errors[k] = draws.std(axis=0, ddof=1) / math.sqrt(len(draws))
    for k in means:  # ELBO <= IWAE_k <= log p(x), within 4 standard errors of the estimate
        assert np.all(exact_elbo <= means[k] + 4 * errors[k] + 1e-3), k
        assert np.all(means[k] <= log_px + 4 * errors[k] + 1e-3), k
    averaged = [float(np.mean(means[k])) for k in (1, 10, 100, 1000)]
    assert averaged == sorted(averaged), f"IWAE_k must rise with k: {averaged}"
    assert abs(averaged[0] - float(np.mean(exact_elbo))) < 0.1  # IWAE_1 is the ELBO
    # ... towards log p(x): at k = 1000 the gap is a small fraction of the ELBO's
    assert float(np.mean(log_px - means[1000])) < 0.25 * float(np.mean(log_px - exact_elbo))
