"""p(z) as an object: the closed-form KL is the course's, the Monte Carlo KL estimates it, draws follow the seed."""

import numpy as np
import pytest
import tensorflow as tf

from tfvae.probability import Prior, StandardNormal, diagonal_gaussian, kl_divergence, standard_normal_prior


def test_kl_equals_course_closed_form():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(50, 7)).astype(np.float32) * 2
    sigma = np.exp(rng.normal(size=(50, 7))).astype(np.float32)
    kl = StandardNormal(7).kl(diagonal_gaussian(mu, sigma)).numpy()
    # -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    closed = -0.5 * np.sum(1 + np.log(sigma.astype(np.float64) ** 2) - mu.astype(np.float64) ** 2
                           - sigma.astype(np.float64) ** 2, axis=1)
    np.testing.assert_allclose(kl, closed, rtol=1e-5, atol=1e-5)
    assert np.all(kl >= 0)
    # KL of the prior with itself is exactly zero.
    zero = StandardNormal(7).kl(diagonal_gaussian(np.zeros((1, 7), np.float32), np.ones((1, 7), np.float32))).numpy()
    assert zero[0] == pytest.approx(0.0, abs=1e-7)


def test_the_monte_carlo_kl_of_the_base_prior_estimates_the_closed_form():
    # The base class's KL (for priors without a closed form) on N(0, I): mean of log q(z) - log p(z)
    class NoClosedForm(Prior):
        def distribution(self):
            return standard_normal_prior(self.latent_dim)

    rng = np.random.default_rng(1)
    mu = rng.normal(size=(8, 3)).astype(np.float32)
    sigma = np.exp(0.3 * rng.normal(size=(8, 3))).astype(np.float32)
    q = diagonal_gaussian(mu, sigma)
    eps = tf.random.stateless_normal([8, 20000, 3], [3, 4])
    z = mu[:, None] + sigma[:, None] * eps
    mc = NoClosedForm(3).kl(q, z).numpy()
    exact = StandardNormal(3).kl(q).numpy()
    np.testing.assert_allclose(mc, exact, rtol=0.05, atol=0.05)
    assert NoClosedForm(3).kl_metric == "kl_mc" and StandardNormal(3).kl_metric == "kl"
    with pytest.raises(ValueError, match="pass the samples z"):
        NoClosedForm(3).kl(q)
    assert NoClosedForm(3).kl_per_dimension(q) is None
    np.testing.assert_allclose(StandardNormal(3).kl_per_dimension(q).numpy().sum(1), exact, rtol=1e-5)
    np.testing.assert_allclose(kl_divergence(q, standard_normal_prior(3)).numpy(), exact, rtol=1e-6)


def test_draws_follow_the_seed_and_the_distribution():
    prior = StandardNormal(4)
    a = prior.sample(5000, tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(a, prior.sample(5000, tf.constant([1, 2], tf.int64)).numpy())
    assert not np.allclose(a, prior.sample(5000, tf.constant([1, 3], tf.int64)).numpy())
    assert a.shape == (5000, 4) and abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    np.testing.assert_allclose(prior.log_prob(np.zeros((1, 4), np.float32)).numpy(), [-2 * np.log(2 * np.pi)],
                               rtol=1e-6)


def test_quantiles_and_mixture_describe_the_prior():
    prior = StandardNormal(3)
    q = prior.marginal_quantiles([0.025, 0.5, 0.975], (0, 2))
    np.testing.assert_allclose(q, [[-1.959964, -1.959964], [0, 0], [1.959964, 1.959964]], atol=1e-5)

    class Sampled(Prior):  # the base class estimates quantiles from seeded draws
        def distribution(self):
            return standard_normal_prior(self.latent_dim)

    np.testing.assert_allclose(Sampled(3).marginal_quantiles([0.025, 0.5, 0.975], (1,)), q[:, :1], atol=0.03)
    m = prior.mixture()
    assert m["weights"].tolist() == [1.0] and m["loc"].shape == m["scale"].shape == (1, 3)
    assert prior.layer is None and prior.trainable_variables == []


def test_a_prior_without_the_export_capabilities_says_what_to_add():
    from tfvae.errors import TfvaeError

    class Bare(Prior):
        def distribution(self):
            return standard_normal_prior(self.latent_dim)

    with pytest.raises(TfvaeError, match="is not a mixture of diagonal Gaussians.*give it a mixture"):
        Bare(2).mixture()
    with pytest.raises(TfvaeError, match="cannot be sampled inside an exported graph.*sample_in_graph"):
        Bare(2).sample_in_graph(3)
    with pytest.raises(TypeError, match="distribution"):
        type("NoDistribution", (Prior,), {})(2)  # the one member every prior must define
