"""Every probability in tfvae, as objects over TensorFlow Probability distributions.

- `posteriors`: q(z|x), a diagonal Gaussian (`DiagonalGaussianPosterior`, `diagonal_gaussian`);
- `priors`: p(z) (`Prior`, `StandardNormal`): distribution, log_prob, seeded sample, KL to q;
- `likelihoods`: p(x|z) of an image given the decoder's outputs (`Likelihood`).

Event dimensions are explicit: one latent vector or one whole image is one event.
"""

from tfvae.probability.likelihoods import Likelihood, flatten
from tfvae.probability.posteriors import DiagonalGaussianPosterior, diagonal_gaussian
from tfvae.probability.priors import Prior, StandardNormal, standard_normal_prior

__all__ = ["Likelihood", "flatten", "DiagonalGaussianPosterior", "diagonal_gaussian", "Prior", "StandardNormal",
           "standard_normal_prior", "kl_divergence"]


def kl_divergence(q, p):
    """KL(q || p) in nats, in closed form (`tfd.kl_divergence`), for two tfd distributions."""
    from tfvae.lazy import tfd

    return tfd.kl_divergence(q, p)
