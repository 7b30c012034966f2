"""ae: the undercomplete autoencoder. Loss L(x, g(f(x))): the likelihood's reconstruction loss
(summed cross-entropy for Bernoulli, summed squared error for Gaussian) of the code h = f(x)."""

from tfvae.models.base import Autoencoder, register


@register
class AE(Autoencoder):
    name = "ae"
    summary = "undercomplete autoencoder: L(x, g(f(x)))"
