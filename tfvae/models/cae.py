"""cae: the contractive autoencoder. Loss L(x, g(h)) + lambda * ||dh/dx||_F^2 with the exact
Jacobian of the encoder (`--contractive` is lambda)."""

from tfvae.config import Option
from tfvae.models.base import Autoencoder, register
from tfvae.objectives import contractive_penalty


@register
class ContractiveAE(Autoencoder):
    name = "cae"
    summary = "contractive autoencoder: L(x, g(h)) + lambda * ||dh/dx||_F^2, exact Jacobian"
    options = Autoencoder.options + (
        Option("contractive", 0.01, "lambda of lambda * ||dh/dx||_F^2.", minimum="non_negative"),
    )
    metric_names = ("loss", "reconstruction", "penalty")

    @classmethod
    def uses_xla(cls, network: str, on_gpu: bool) -> bool:
        return False  # XLA spends minutes constant-folding the Jacobian

    def objective(self, x, noise, schedule):
        penalty, code = contractive_penalty(self.encoder, x)  # ||dh/dx||_F^2
        recon = self.reconstruction_loss(code, x)
        loss = recon + self.config.contractive * penalty
        return loss, {"loss": loss, "reconstruction": recon, "penalty": penalty}
