"""The prior p(z) as an object that the bounds take as an argument.

A `Prior` gives its `tfd` distribution, `log_prob`, seeded `sample(n, seed)`, and its KL to a
posterior: in closed form where one exists (`closed_form_kl`), otherwise the Monte Carlo estimate
log q(z|x) - log p(z) over the same samples z as the reconstruction term (the metric is then
named `kl_mc`, not `kl`). A learned prior keeps its variables in a Keras layer (`layer`): the
family puts that layer in its Keras model, so checkpoints, model.keras, early stopping's best
weights and every export hold the prior's variables with the networks'.

    >>> prior = StandardNormal(20)
    >>> z = prior.sample(16, seed=[0, 1])          # (16, 20), the same for the same seed
    >>> kl = prior.kl(q)                           # closed form, per example
"""

from __future__ import annotations

import abc

import numpy as np

from tfvae.errors import TfvaeError
from tfvae.lazy import tf, tfd


class Prior(abc.ABC):
    """p(z) over `latent_dim` dimensions.

    Subclasses implement `distribution()` (a tfd distribution with event shape (latent_dim,)),
    and `mixture()` when the prior is a mixture of diagonal Gaussians (what exports need to draw
    z on a device); they override `kl` when it has a closed form.
    """

    closed_form_kl = False
    description = "a prior"

    def __init__(self, latent_dim: int):
        self.latent_dim = int(latent_dim)

    # ------------------------------------------------------------------ variables
    @property
    def layer(self):
        """The Keras layer that holds the prior's variables; None for a prior without any."""
        return None

    @property
    def trainable_variables(self) -> list:
        return list(self.layer.trainable_variables) if self.layer is not None else []

    # ------------------------------------------------------------------ the distribution
    @abc.abstractmethod
    def distribution(self):
        """p(z) as a tfd distribution with event shape (latent_dim,)."""

    def log_prob(self, z):
        """log p(z) for z of shape (..., latent_dim)."""
        return self.distribution().log_prob(z)

    def sample(self, n: int, seed):
        """n draws z ~ p(z), shape (n, latent_dim), a function of the stateless `seed` alone."""
        return self.distribution().sample(n, seed=tf.cast(tf.convert_to_tensor(seed), tf.int32))

    def sample_in_graph(self, n):
        """n draws with TensorFlow's stateful random ops (no seed): for the exported samplers,
        whose random op must be a TFLite builtin."""
        raise TfvaeError(f"the prior {type(self).__name__} cannot be sampled inside an exported graph; give it "
                         "a sample_in_graph(n) built from TFLite builtin random ops")

    def marginal_quantiles(self, probabilities, dims) -> np.ndarray:
        """The inverse CDF of p(z_j) at `probabilities` for each dimension j in `dims`: shape
        (len(probabilities), len(dims)) (the manifold picture's grid). Here estimated from 100,000
        seeded draws; priors with a closed form override it."""
        z = self.sample(100_000, tf.constant([20240, 2], tf.int64)).numpy()[:, list(dims)]
        return np.quantile(z, probabilities, axis=0).astype(np.float32)

    # ------------------------------------------------------------------ KL(q || p)
    @property
    def kl_metric(self) -> str:
        """The metric name of the KL term: `kl` in closed form, `kl_mc` for a Monte Carlo estimate."""
        return "kl" if self.closed_form_kl else "kl_mc"

    def kl(self, q, z=None):
        """KL(q(z|x) || p(z)) per example. Closed form where `closed_form_kl`; otherwise the Monte
        Carlo estimate mean_l [log q(z_l|x) - log p(z_l)] over z of shape (batch, samples, latent)."""
        if z is None:
            raise ValueError(f"{type(self).__name__} has no closed-form KL: pass the samples z")
        zs = tf.transpose(z, [1, 0, 2])  # (samples, batch, latent): q's batch axis last
        return tf.reduce_mean(q.log_prob(zs) - self.log_prob(zs), axis=0)

    def kl_per_dimension(self, q):
        """KL(q_j || p_j) per latent dimension j, shape (batch, latent_dim), for factorized priors
        with a closed form; None otherwise (free bits need it)."""
        return None

    # ------------------------------------------------------------------ exports
    def mixture(self) -> dict:
        """The prior as a mixture of diagonal Gaussians, as numpy arrays: {"weights" (K,), "loc"
        (K, latent), "scale" (K, latent)}; the exports draw z on a device from it."""
        raise TfvaeError(f"the prior {type(self).__name__} is not a mixture of diagonal Gaussians, which the exports "
                         "draw z on a device from; give it a mixture() of weights, loc and scale")


class StandardNormal(Prior):
    """p(z) = N(0, I), the course's prior: no variables, KL in closed form."""

    closed_form_kl = True
    description = "N(0, I)"

    def distribution(self):
        zeros = tf.zeros([self.latent_dim], dtype=tf.float32)
        return tfd.Independent(tfd.Normal(loc=zeros, scale=tf.ones_like(zeros)), reinterpreted_batch_ndims=1)

    def sample(self, n: int, seed):
        return tf.random.stateless_normal([n, self.latent_dim], seed)

    def sample_in_graph(self, n):
        return tf.random.normal(tf.stack([n, self.latent_dim]))

    def kl(self, q, z=None):
        """KL(q || N(0, I)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2), by tfd.kl_divergence."""
        return tfd.kl_divergence(q, self.distribution())

    def kl_per_dimension(self, q):
        return tfd.kl_divergence(q.distribution, self.distribution().distribution)

    def marginal_quantiles(self, probabilities, dims) -> np.ndarray:
        from statistics import NormalDist

        ticks = np.array([NormalDist().inv_cdf(p) for p in probabilities], np.float32)
        return np.repeat(ticks[:, None], len(dims), axis=1)

    def mixture(self) -> dict:
        d = self.latent_dim
        return {"weights": np.ones(1, np.float32), "loc": np.zeros((1, d), np.float32),
                "scale": np.ones((1, d), np.float32)}


def standard_normal_prior(latent_dim: int):
    """The tfd distribution N(0, I) over `latent_dim` dimensions."""
    return StandardNormal(latent_dim).distribution()
