"""The course's models as one class: networks, likelihood and objective together.

`Autoencoder(config, image_shape)` builds the encoder and decoder (Keras functional models),
the likelihood p(x|z), and exposes the objective the config names (`objective`), plus the
operations people use a trained model for (encode, decode, reconstruct, sample).
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from tfvae import objectives
from tfvae.networks import build_decoder, build_encoder
from tfvae.layers import DiagonalGaussian
from tfvae.probability import Likelihood


def likelihood_for(config) -> Likelihood:
    if config.variational:
        return Likelihood(config.likelihood, config.gaussian_variance, config.gaussian_scale)
    # Autoencoders reconstruct a mean: logits (cross-entropy) or a loc (squared error).
    return Likelihood(config.likelihood, "fixed", config.gaussian_scale)


class Autoencoder:
    """An AE, SAE, DAE, CAE, VAE or IWAE.

    Args:
      config: a `tfvae.config.Config`.
      image_shape: (height, width, channels) of the images.
      encoder, decoder: existing networks (from a saved model); built from the config if None.

    Example:
      >>> model = Autoencoder(Config(model="vae", latent_dim=2), (28, 28, 1))
      >>> loss, metrics = model.objective(x, model.draw_noise(len(x), seed=[0, 1]))
    """

    def __init__(self, config, image_shape, encoder=None, decoder=None):
        self.config = config
        self.image_shape = tuple(int(d) for d in image_shape)
        self.likelihood = likelihood_for(config)
        self.encoder = encoder or build_encoder(config, self.image_shape)
        self.decoder = decoder or build_decoder(config, self.image_shape, self.likelihood.output_keys)
        self._keras_model = None

    # ------------------------------------------------------------------ training
    @property
    def variational(self) -> bool:
        return self.config.variational

    @property
    def trainable_variables(self):
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    @property
    def metric_names(self) -> tuple:
        return objectives.metric_names(self.config)

    def draw_noise(self, batch_size: int, seed):
        return objectives.draw_noise(self.config, batch_size, self.image_shape, seed)

    def objective(self, x, noise, kl_weight=1.0):
        """(loss per example, {metric: value per example}) of the config's model.

        `x` is the (already binarized) batch; `noise` comes from `draw_noise`.
        """
        if "binarize" in noise:
            x = objectives.binarize(x, noise["binarize"])
        cfg = self.config
        if cfg.model == "iwae":
            return objectives.iwae_objective(cfg, self.encoder, self.decoder, self.likelihood, x, noise)
        if cfg.model == "vae":
            return objectives.vae_objective(cfg, self.encoder, self.decoder, self.likelihood, x, noise, kl_weight)
        return objectives.autoencoder_objective(cfg, self.encoder, self.decoder, self.likelihood, x, noise)

    # ------------------------------------------------------------------ using a model
    def encode(self, x):
        """The code h (autoencoders) or the posterior mean (variational models)."""
        out = self.encoder(x, training=False)
        return out["loc"] if self.variational else out["code"]

    def posterior(self, x):
        """q(z|x) as a tfd distribution (variational models only)."""
        if not self.variational:
            raise ValueError(f"--model {self.config.model} has no posterior; it encodes to a code h")
        out = self.encoder(x, training=False)
        return DiagonalGaussian.distribution(out["loc"], out["scale"])

    def decode(self, z):
        """p(x|z) as a tfd distribution over images."""
        return self.likelihood.distribution(self.decoder(z, training=False))

    def decode_mean(self, z):
        """Pixel means E[x|z]."""
        return self.likelihood.mean(self.decoder(z, training=False))

    def reconstruct(self, x):
        """Pixel means of the reconstruction of x (through the code / the posterior mean)."""
        return self.decode_mean(self.encode(x))

    def sample(self, n: int, seed, mean: bool = True):
        """n images from the prior: pixel means, or images sampled from p(x|z) when mean=False."""
        seeds = tf.random.experimental.stateless_split(tf.cast(tf.convert_to_tensor(seed), tf.int32), 2)
        z = tf.random.stateless_normal([n, self.config.latent_dim], seeds[0])
        if mean:
            return self.decode_mean(z)
        return self.decode(z).sample(seed=seeds[1])

    # ------------------------------------------------------------------ saving
    @property
    def keras_model(self) -> keras.Model:
        """One functional model: images -> encoder outputs and the reconstruction's pixel means."""
        if self._keras_model is None:
            x = keras.Input(self.image_shape, name="images")
            enc = self.encoder(x)
            code = enc["loc"] if self.variational else enc["code"]
            dec = self.decoder(code)
            if self.likelihood.kind == "bernoulli":
                mean = keras.layers.Activation("sigmoid", name="reconstruction")(dec["logits"])
            else:
                mean = keras.layers.Identity(name="reconstruction")(dec["loc"])
            self._keras_model = keras.Model(x, {**enc, "reconstruction": mean}, name="autoencoder")
        return self._keras_model

    def save(self, path: str) -> None:
        """Writes the model as a `.keras` file, atomically (a temporary file, then a rename)."""
        tmp = f"{path}.tmp-{os.getpid()}.keras"
        try:
            self.keras_model.save(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def from_keras_file(cls, path: str, config, image_shape) -> "Autoencoder":
        import tfvae.layers  # noqa: F401  (registers the custom layers)

        full = keras.models.load_model(path, compile=False)
        model = cls(config, image_shape, encoder=full.get_layer("encoder"), decoder=full.get_layer("decoder"))
        model._keras_model = full
        return model
