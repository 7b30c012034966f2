"""dae: the denoising autoencoder. Loss L(x, g(f(x~))) with x~ the corrupted input and x the CLEAN
one: masking noise (each input zeroed with probability nu = `--noise-level`) or additive Gaussian
noise (x + sigma * N(0, 1), sigma = `--noise-level`)."""

from tfvae.config import Option
from tfvae.errors import ConfigError
from tfvae.lazy import tf
from tfvae.models.base import Autoencoder, register
from tfvae.objectives import corrupt


@register
class DenoisingAE(Autoencoder):
    name = "dae"
    summary = "denoising autoencoder: L(x, g(f(x~))), x~ masked or Gaussian-corrupted x"
    # one name per quantity: the training loss is the reconstruction of the CORRUPTED input (against
    # the clean one); evaluate adds the reconstruction of the clean input
    metric_names = ("loss", "reconstruction_corrupted")
    score_description = "reconstruction loss of the clean input"
    options = Autoencoder.options + (
        Option("noise", "masking", "masking (inputs zeroed) or additive gaussian.", choices=("masking", "gaussian")),
        Option("noise_level", 0.25, "masking probability nu, or Gaussian sigma.", minimum="non_negative"),
    )

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        if config.noise == "masking" and not config.noise_level < 1:
            raise ConfigError(
                f"--noise masking drops each input with probability --noise-level, which must be "
                f"below 1, got {config.noise_level}"
            )
        if config.noise_level == 0:
            raise ConfigError("--model dae needs --noise-level > 0 (with 0 it is a plain --model ae)")

    def family_noise(self, batch_size, seed_a, seed_b):
        shape = [batch_size, self.flat_size]
        if self.config.noise == "masking":
            return {"corrupt": tf.random.stateless_uniform(shape, seed_a)}
        return {"corrupt": tf.random.stateless_normal(shape, seed_a)}

    @property
    def flat_size(self) -> int:
        import math

        return math.prod(self.image_shape)

    def corrupt(self, x, noise):
        """x~: the corrupted input."""
        return corrupt(x, self.config.noise, self.config.noise_level, noise)

    def objective(self, x, noise, schedule):
        code = self.encoder(self.corrupt(x, noise["corrupt"]), training=True)["code"]
        loss = self.reconstruction_loss(code, x)  # against the clean input
        return loss, {"loss": loss, "reconstruction_corrupted": loss}

    def held_out_terms(self, x, seed, samples: int = 1) -> dict:
        """The reconstruction loss of the clean input (the score), and of the input corrupted with
        noise seeded by `seed` (the training loss's quantity), both against the clean input."""
        clean = self.reconstruction_loss(self.encode(x), x)
        noise = self.draw_noise(tf.shape(x)[0], seed)["corrupt"]
        corrupted = self.reconstruction_loss(self.encode(self.corrupt(x, noise)), x)
        return {"reconstruction_clean": clean, "reconstruction_corrupted": corrupted, "score": clean}

    def reconstruction_rows(self, x, seed: int = 0) -> list:
        """The images, their corrupted versions, and the reconstructions of those."""
        import numpy as np

        noise = self.draw_noise(len(x), tf.constant([seed, 7], tf.int64))["corrupt"]
        x_tilde = self.corrupt(tf.constant(x), noise).numpy()
        return [x, np.clip(x_tilde, 0, 1), self.reconstruct(x_tilde).numpy()]
