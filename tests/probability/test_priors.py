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

    estimated = Sampled(3).marginal_quantiles([0.025, 0.5, 0.975], (1,))
    np.testing.assert_allclose(estimated, q[:, :1], atol=0.03)
    # the base class's draws follow the seed
    a, b = (Sampled(2).sample(4, tf.constant([5, s], tf.int64)).numpy() for s in (6, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, Sampled(2).sample(4, tf.constant([5, 7], tf.int64)).numpy())
    m = prior.mixture()
    assert m["weights"].tolist() == [1.0] and m["loc"].shape == m["scale"].shape == (1, 3)
    np.testing.assert_array_equal(m["loc"], 0)
    np.testing.assert_array_equal(m["scale"], 1)
    # float32, as the exported graphs take them
    assert {a.dtype for a in (q, estimated, m["weights"], m["loc"], m["scale"])} == {np.dtype(np.float32)}
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


def _normal_logpdf(z, loc, scale):
    return -0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((z - loc) / scale) ** 2


def _normal_cdf(z, loc, scale):
    from math import erf, sqrt

    return np.vectorize(lambda t: 0.5 * (1 + erf(t / sqrt(2))))((z - loc) / scale)


def _class_prior(classes=3, d=2):
    from tfvae.probability.priors import ClassPrior

    prior = ClassPrior(d, classes)
    prior.layer.build(None)
    rng = np.random.default_rng(5)
    prior.layer["loc"].assign(rng.normal(size=(classes, d)).astype(np.float32))
    prior.layer["raw_scale"].assign(rng.normal(size=(classes, d)).astype(np.float32))
    loc = prior.layer["loc"].numpy().astype(np.float64)
    scale = np.log1p(np.exp(prior.layer["raw_scale"].numpy().astype(np.float64))) + 1e-3  # softplus + floor
    return prior, loc, scale


def test_the_class_prior_bound_to_labels_is_each_class_gaussian_in_closed_form():
    """p(z|y) = N(mu_y, sigma_y^2) per example: log-density, KL to q (whole and per dimension),
    draws and quantiles against numpy's closed forms; unbound, the equal mixture of the classes."""
    prior, loc, scale = _class_prior()
    labels = np.array([2, 0, 1, 2])
    p = prior.given(tf.constant(labels))
    assert p.closed_form_kl and p.latent_dim == 2
    mu, sd = loc[labels], scale[labels]  # (4, 2)
    rng = np.random.default_rng(0)
    z2 = rng.normal(size=(4, 2)).astype(np.float32)
    z3 = rng.normal(size=(4, 5, 2)).astype(np.float32)
    np.testing.assert_allclose(p.log_prob(tf.constant(z2)), _normal_logpdf(z2, mu, sd).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(p.log_prob(tf.constant(z3)), _normal_logpdf(z3, mu[:, None], sd[:, None]).sum(-1),
                               rtol=1e-5)
    np.testing.assert_allclose(p.distribution().log_prob(z2), _normal_logpdf(z2, mu, sd).sum(-1), rtol=1e-5)
    q_loc, q_scale = rng.normal(size=(4, 2)), rng.uniform(0.3, 2.0, size=(4, 2))
    q = diagonal_gaussian(tf.constant(q_loc, tf.float32), tf.constant(q_scale, tf.float32))
    kl = np.log(sd / q_scale) + (q_scale ** 2 + (q_loc - mu) ** 2) / (2 * sd ** 2) - 0.5
    np.testing.assert_allclose(p.kl(q), kl.sum(-1), rtol=1e-5)
    np.testing.assert_allclose(p.kl_per_dimension(q), kl, rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="needs the labels"):
        prior.kl(q)
    # one draw per example, from its class's Gaussian: 4000 copies of each label
    many = prior.given(tf.constant(np.repeat(labels, 4000)))
    for draws in (many.sample(1, tf.constant([1, 2])).numpy(), many.sample_in_graph(1).numpy()):
        draws = draws.reshape(4, 4000, 2)
        np.testing.assert_allclose(draws.mean(1), mu, atol=4 * sd.max() / np.sqrt(4000))
        np.testing.assert_allclose(draws.std(1), sd, rtol=0.06)
    np.testing.assert_array_equal(many.sample(1, tf.constant([1, 2])), many.sample(1, tf.constant([1, 2])))
    probabilities = [0.05, 0.5, 0.9]
    quantiles = p.marginal_quantiles(probabilities, [1, 0])  # of the first example's class
    np.testing.assert_allclose(_normal_cdf(quantiles, mu[0, [1, 0]], sd[0, [1, 0]]),
                               np.repeat(np.array(probabilities)[:, None], 2, 1), atol=1e-5)
    mix = prior.mixture()
    assert mix["per_class"] is True
    np.testing.assert_allclose(mix["weights"], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(mix["loc"], loc, rtol=1e-6)
    np.testing.assert_allclose(mix["scale"], scale, rtol=1e-5)


def test_the_class_prior_starts_near_zero_with_unit_scales_and_equal_weights():
    from tfvae.probability.priors import ClassPrior

    prior = ClassPrior(4, 200)
    prior.layer.build(None)
    log_w, loc, scale = (t.numpy() for t in prior.components())
    np.testing.assert_allclose(scale, 1.001, rtol=1e-6)  # softplus(softplus^-1(1)) + the 1e-3 floor
    assert 0.09 < loc.std() < 0.11 and abs(loc.mean()) < 0.01 and loc.shape == (200, 4)
    np.testing.assert_array_equal(log_w, np.zeros(200))
    assert len(prior.trainable_variables) == 2  # no weights to learn: the classes weigh the same
    assert prior.description == "a learned Gaussian per class (200 classes)"
    assert prior.layer.name == "prior"  # the name the saved files key its variables by
    assert ClassPrior(4, 200, layer=prior.layer).layer is prior.layer  # a loaded model's layer is kept
    assert prior.given(tf.constant([3])).description == "N(mu_y, sigma_y^2) of 200 classes"


def test_draws_inside_an_exported_graph_follow_the_prior():
    """sample_in_graph (the exported samplers' stateful ops): N(0, I), and a mixture's draws pick
    component k with its weight and then follow N(mu_k, sigma_k^2)."""
    from tfvae.probability.priors import MixtureOfGaussians

    z = StandardNormal(3).sample_in_graph(tf.constant(20000)).numpy()
    assert z.shape == (20000, 3)
    np.testing.assert_allclose(z.mean(0), 0, atol=0.04)
    np.testing.assert_allclose(z.std(0), 1, atol=0.03)
    prior = MixtureOfGaussians(1, 2)
    prior.layer.build(None)
    prior.layer["logits"].assign(np.log([0.8, 0.2]).astype(np.float32))
    prior.layer["loc"].assign(np.array([[-20.0], [20.0]], np.float32))
    prior.layer["raw_scale"].assign(np.log(np.expm1([[1.0], [3.0]])).astype(np.float32))
    for z in (prior.sample_in_graph(tf.constant(20000)).numpy()[:, 0],
              prior.sample(20000, tf.constant([8, 9])).numpy()[:, 0]):
        assert z.shape == (20000,)
        left, right = z[z < 0], z[z > 0]
        assert abs(len(left) / len(z) - 0.8) < 0.015
        np.testing.assert_allclose([left.mean(), right.mean()], [-20, 20], atol=0.2)
        np.testing.assert_allclose([left.std(), right.std()], [1.001, 3.001], rtol=0.05)
        # the component drawn and the noise added to it are independent draws
        eps = np.where(z < 0, (z + 20) / 1.001, (z - 20) / 3.001)
        assert abs(np.corrcoef(z > 0, eps)[0, 1]) < 0.03
