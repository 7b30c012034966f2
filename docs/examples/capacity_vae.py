"""A model family in one file: the VAE with a controlled KL capacity (Burgess et al., 2018).

    loss = -E_q[log p(x|z)] + gamma * |KL(q(z|x) || p(z)) - C|,   C = --capacity * min(1, t / T)

where t counts training steps and T is --capacity-epochs epochs of them: the KL is held near a
capacity C that grows from 0, so the code takes in information a little at a time. The reported
ELBO is the true bound, E_q[log p(x|z)] - KL.

Put this file in tfvae/models/ and `tfvae fit --model vae-capacity --capacity 25` trains it; or
import it from anywhere (`import capacity_vae`) and use `tfvae.fit(..., model="vae-capacity")`.
Everything else (the prior, `--prior vamp` included, training, resume, evaluation, pictures,
export) comes from the variational kind it extends.
"""

from tfvae.config import Option
from tfvae.lazy import tf
from tfvae.models import register
from tfvae.models.base import Variational
from tfvae.models.vae import VAE


@register
class CapacityVAE(Variational):
    name = "vae-capacity"
    summary = "VAE with its KL held near a growing capacity C: -E_q[log p(x|z)] + gamma |KL - C|"
    options = Variational.options + tuple(o for o in VAE.options if o.name == "mc_samples") + (
        Option("capacity", 25.0, "the KL capacity C in nats, reached after --capacity-epochs."),
        Option("capacity_epochs", 20, "epochs over which C grows linearly from 0."),
        Option("gamma", 100.0, "the weight of |KL - C|."),
    )
    metric_names = ("loss", "log_px_z", "kl", "elbo")
    samples_option = "mc_samples"

    @classmethod
    def warmup_epochs(cls, config) -> int:
        return config.capacity_epochs  # the loss may rise while C grows: early stopping waits

    def schedule(self, step, steps_per_epoch: int) -> dict:
        ramp = float(self.config.capacity_epochs * steps_per_epoch)
        return {"capacity": self.config.capacity * tf.minimum(1.0, tf.cast(step + 1, tf.float32) / ramp)}

    def eval_schedule(self) -> dict:
        return {"capacity": self.config.capacity}

    def objective(self, x, noise, schedule):
        terms = self.elbo(x, noise["eps"])
        loss = -terms["log_px_z"] + self.config.gamma * tf.abs(terms["kl"] - schedule["capacity"])
        return loss, {"loss": loss, "log_px_z": terms["log_px_z"], self.kl_metric: terms["kl"], "elbo": terms["elbo"]}
