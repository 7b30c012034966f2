"""p(x|z): the Bernoulli and Gaussian likelihoods are the course's formulas, and never NaN; the discretized
logistic is TFP's quantized logistic, a probability of the 8-bit levels."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfvae.probability import Likelihood


@pytest.fixture(autouse=True)
def fresh_distribution_classes(monkeypatch):
    """The discretized logistic's tfd class is made on first use and kept: each test here makes it
    afresh, so that none depends on what an earlier test made."""
    from tfvae.probability import likelihoods

    monkeypatch.setattr(likelihoods, "_DISCRETIZED_LOGISTIC", None)


def test_bernoulli_log_likelihood_is_summed_cross_entropy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 5, 5, 1)).astype(np.float32) * 3
    x = (rng.random((4, 5, 5, 1)) < 0.5).astype(np.float32)
    x_hat = 1 / (1 + np.exp(-logits.astype(np.float64)))
    course = -np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat), axis=(1, 2, 3))
    lik = Likelihood("bernoulli")
    np.testing.assert_allclose(-lik.distribution({"logits": logits}).log_prob(x).numpy(), course, rtol=1e-5)
    np.testing.assert_allclose(lik.reconstruction_loss({"logits": logits}, x).numpy(), course, rtol=1e-5)
    # the defaults are the command line's: a learned scale per pixel, 0.1 when fixed, floor 1e-3
    from tfvae.probability import DiagonalGaussianPosterior

    default = Likelihood("gaussian")
    assert (default.variance, default.fixed_scale, default.min_scale) == ("pixel", 0.1, 1e-3)
    assert DiagonalGaussianPosterior(4).min_scale == 1e-3
    draws = lik.distribution({"logits": logits}).sample(seed=tf.constant([1, 2]))
    assert draws.dtype == tf.float32 and draws.shape == (4, 5, 5, 1)  # images, as the pictures take them


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


# ------------------------------------------------------------------------------------ discretized logistic
def _quantized_logistic_log_prob(levels, loc, scale):
    """TFP's QuantizedDistribution of a logistic on the 0..255 scale, in float64: the bin of level k
    is (k - 1/2, k + 1/2], the first and last reaching to -inf and +inf."""
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    q = tfd.QuantizedDistribution(tfd.Logistic(255.0 * np.float64(loc) - 0.5, 255.0 * np.float64(scale)),
                                  low=np.float64(0.0), high=np.float64(255.0))
    return q.log_prob(np.float64(levels)).numpy()


def test_discretized_logistic_is_tfps_quantized_logistic_on_every_level_and_branch():
    """All 256 levels, locations at and beyond the edges, scales from far below one level to the
    whole range, through log_prob_samples (pixel, image and fixed scales) against TFP in float64;
    the 256 probabilities sum to 1 and the tfd distribution gives the same log-probabilities."""
    rng = np.random.default_rng(11)
    levels = np.arange(256, dtype=np.float32)
    x = (levels / 255.0).astype(np.float32)  # one image of 256 pixels, every level once
    loc = np.array([0.0, 1.0, 0.5, 0.002, 0.998, 0.3], np.float32)
    scales = np.array([1e-4, 1e-3, 0.004, 0.05, 0.3, 1.0], np.float32)
    samples = len(loc)
    per_pixel = rng.choice(scales, (samples, 256)).astype(np.float32)
    per_image = scales.reshape(samples, 1)
    cases = {"pixel": per_pixel, "image": per_image, "fixed": np.full((samples, 1), 0.02, np.float32)}
    for variance, scale in cases.items():
        lik = Likelihood("logistic", variance, fixed_scale=0.02)
        outputs = {"loc": np.repeat(loc[:, None], 256, axis=1).reshape(samples, 1, 256, 1)}
        if variance != "fixed":
            outputs["scale"] = scale.reshape(samples, 1, -1, 1)
        got = lik.log_prob_samples(outputs, x.reshape(1, 1, 256, 1), samples).numpy()[0]
        want = np.array([_quantized_logistic_log_prob(levels, loc[s], np.broadcast_to(scale[s], (256,))).sum()
                         for s in range(samples)])
        np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=variance)
        dist = lik.distribution({k: tf.constant(v) for k, v in outputs.items()})
        np.testing.assert_allclose(dist.log_prob(x.reshape(1, 1, 256, 1)).numpy(), got, rtol=1e-6)
    # per pixel: exact and finite everywhere, and a probability: the levels' P sum to 1
    for m, s in ((0.0, 1e-4), (1.0, 1e-4), (0.37, 0.004), (0.5, 2.0), (1.3, 0.01)):
        from tfvae.probability.likelihoods import discretized_logistic_log_prob

        lp = discretized_logistic_log_prob(tf.constant(x), np.float32(m), np.float32(s)).numpy().astype(np.float64)
        want = _quantized_logistic_log_prob(levels, m, s)
        finite = np.isfinite(want)
        assert np.all(np.isfinite(lp)) and np.all(lp <= 0)
        np.testing.assert_allclose(lp[finite], want[finite], rtol=2e-5, atol=1e-5)
        assert abs(np.exp(lp).sum() - 1.0) < 1e-4, (m, s)


def test_discretized_logistic_samples_are_levels_drawn_with_their_probabilities():
    from tfvae.probability.likelihoods import DiscretizedLogistic, discretized_logistic_log_prob

    loc, scale = np.float32([0.02, 0.5, 0.9]), np.float32([0.01, 0.003, 0.05])
    d = DiscretizedLogistic(np.tile(loc, (20000, 1)), np.tile(scale, (20000, 1)))
    np.testing.assert_array_equal(d.sample(seed=tf.constant([3, 4])), d.sample(seed=tf.constant([3, 4])))
    draws = d.sample(seed=(3, 4)).numpy()
    assert draws.shape == (20000, 3) and np.all((draws >= 0) & (draws <= 1))
    k = np.round(draws * 255.0)
    assert np.max(np.abs(draws * 255.0 - k)) < 1e-4  # every draw is a level
    levels = np.arange(256, dtype=np.float32) / 255.0
    for j in range(3):
        p = np.exp(discretized_logistic_log_prob(tf.constant(levels), loc[j], scale[j]).numpy().astype(np.float64))
        freq = np.bincount(k[:, j].astype(int), minlength=256) / len(k)
        assert np.abs(freq - p).max() < 0.02, j
        mean = float(d.mean().numpy()[0, j])
        assert mean == pytest.approx(float((p * levels).sum()), abs=1e-5)
        assert float(draws[:, j].mean()) == pytest.approx(mean, abs=3e-3)
