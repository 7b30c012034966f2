"""The approximate posterior q(z|x): a diagonal Gaussian whose parameters the encoder outputs."""

from __future__ import annotations

from tfvae.lazy import tfd


def diagonal_gaussian(loc, scale):
    """N(loc, diag(scale^2)), one event per row (the last axis is the event)."""
    return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)


class DiagonalGaussianPosterior:
    """q(z|x) = N(loc, diag(scale^2)): the encoder's head, the distribution, the reparameterization.

    Args:
      latent_dim: the dimension of z.
      min_scale: the floor of every standard deviation.

    Example:
      >>> posterior = DiagonalGaussianPosterior(20)
      >>> outputs = posterior.head(features)          # {"loc", "scale"}, in a Keras graph
      >>> q = posterior.distribution(outputs)          # a tfd distribution over z
      >>> z = posterior.reparameterize(outputs, eps)   # loc + scale * eps, eps (batch, L, latent)
    """

    output_keys = ("loc", "scale")

    def __init__(self, latent_dim: int, min_scale: float = 1e-3):
        self.latent_dim = int(latent_dim)
        self.min_scale = float(min_scale)

    def head(self, features, dtype="float32") -> dict:
        """The encoder's last layer: features -> {"loc", "scale"} (the `DiagonalGaussian` layer)."""
        from tfvae.layers import DiagonalGaussian

        loc, scale = DiagonalGaussian(self.latent_dim, self.min_scale, name="posterior", dtype=dtype)(features)
        return {"loc": loc, "scale": scale}

    @staticmethod
    def distribution(outputs):
        """q(z|x) with batch shape (batch,) and event shape (latent_dim,)."""
        return diagonal_gaussian(outputs["loc"], outputs["scale"])

    @staticmethod
    def reparameterize(outputs, eps):
        """z = loc + scale * eps for standard-normal eps of shape (batch, samples, latent_dim)."""
        return outputs["loc"][:, None, :] + outputs["scale"][:, None, :] * eps

    @staticmethod
    def mean(outputs):
        return outputs["loc"]
