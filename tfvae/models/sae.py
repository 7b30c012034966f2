"""sae: the sparse autoencoder. Loss L(x, g(h)) + lambda * ||h||_1, h = f(x) (`--l1` is lambda)."""

from tfvae.config import Option
from tfvae.models.base import Autoencoder, register
from tfvae.objectives import sparsity_penalty


@register
class SparseAE(Autoencoder):
    name = "sae"
    summary = "sparse autoencoder: L(x, g(h)) + lambda * ||h||_1"
    options = Autoencoder.options + (Option("l1", 0.01, "lambda of lambda * ||h||_1.", minimum="non_negative"),)
    metric_names = ("loss", "reconstruction", "penalty")

    def objective(self, x, noise, schedule):
        code = self.encoder(x, training=True)["code"]
        recon = self.reconstruction_loss(code, x)
        penalty = sparsity_penalty(code)  # ||h||_1
        loss = recon + self.config.l1 * penalty
        return loss, {"loss": loss, "reconstruction": recon, "penalty": penalty}
