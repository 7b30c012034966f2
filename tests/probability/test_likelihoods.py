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


# ---------------------------------------------------------------- the path training and evaluation use
def _per_sample(t, batch, samples):
    """Rows image-major, as the trainer and the importance sampler lay them out: (batch * samples, ...)."""
    return np.repeat(t, samples, axis=0) if t.shape[0] == batch else t


def test_log_prob_samples_is_exact_for_extreme_logits():
    """x l - log(1 + e^l) in float64 (logaddexp), the value the trainer and log p(x) use: finite and
    exact for logits far beyond where a naive log(sigmoid(l)) underflows to -inf (NaN for x = 0)."""
    logits = np.array([-1e4, -300.0, -60.0, -20.0, -1.0, 0.0, 1.0, 20.0, 60.0, 300.0, 1e4], np.float32)
    d = len(logits)
    x = np.stack([np.zeros(d), np.ones(d), (np.arange(d) % 2).astype(float)]).astype(np.float32)
    samples = 2
    rows = np.tile(logits, (3 * samples, 1))
    rows[1::2] = -rows[1::2]  # the second sample of each image: the opposite logits
    got = Likelihood("bernoulli").log_prob_samples({"logits": rows.reshape(-1, 1, d, 1)}, x.reshape(3, 1, d, 1),
                                                   samples).numpy()
    l64 = rows.astype(np.float64).reshape(3, samples, d)
    exact = np.sum(x[:, None, :] * l64 - np.logaddexp(0.0, l64), axis=-1)
    assert got.shape == (3, samples) and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, exact, rtol=1e-6)
    np.testing.assert_allclose(Likelihood("bernoulli").log_prob({"logits": rows[::2].reshape(-1, 1, d, 1)},
                                                                x.reshape(3, 1, d, 1)).numpy(), exact[:, 0], rtol=1e-6)


def _normal_logpdf(x, loc, scale):
    """The closed-form Gaussian log-density in float64, summed over pixels."""
    x, loc, scale = (np.asarray(a, np.float64) for a in (x, loc, scale))
    return np.sum(-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi), axis=-1)


def test_log_prob_samples_gaussian_branches_against_the_closed_form():
    """Pixel, image and fixed variance through log_prob_samples, with scales far from 1 (a scale
    replaced by 1, or one image's scale given to another, is off by many nats)."""
    rng = np.random.default_rng(7)
    batch, samples, d = 3, 4, 12
    x = rng.random((batch, d)).astype(np.float32)
    loc = rng.random((batch * samples, d)).astype(np.float32)
    per_pixel = (0.02 + 0.3 * rng.random((batch * samples, d))).astype(np.float32)
    per_image = (0.05 + 0.5 * rng.random((batch * samples, 1))).astype(np.float32)
    x_rows = np.repeat(x, samples, axis=0)
    cases = {
        "pixel": ({"loc": loc, "scale": per_pixel}, per_pixel),
        "image": ({"loc": loc, "scale": per_image}, np.broadcast_to(per_image, loc.shape)),
        "fixed": ({"loc": loc}, np.full(loc.shape, 0.07)),
    }
    for variance, (outputs, scale) in cases.items():
        lik = Likelihood("gaussian", variance, fixed_scale=0.07)
        shaped = {k: v.reshape(len(v), 1, -1, 1) if v.shape[1] == d else v.reshape(len(v), 1, 1, 1)
                  for k, v in outputs.items()}
        got = lik.log_prob_samples(shaped, x.reshape(batch, 1, d, 1), samples).numpy()
        exact = _normal_logpdf(x_rows, loc, scale).reshape(batch, samples)
        np.testing.assert_allclose(got, exact, rtol=2e-6, err_msg=variance)
