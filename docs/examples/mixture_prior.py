"""A model family in one file: the VAE with a learned mixture-of-Gaussians prior.

    p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)),   pi = softmax(logits), all learned

Put this file in tfvae/models/ and `tfvae fit --model vae-mog --mixture-components 10` trains it;
or import it from anywhere (`import mixture_prior`) and use `tfvae.fit(..., model="vae-mog")`.
The KL to a mixture has no closed form, so the bound uses the Monte Carlo estimate
log q(z|x) - log p(z) over the reconstruction term's samples, and the metric says so: `kl_mc`.

Everything else (training, resume, evaluation, pictures, export) comes from the VAE it extends:
the prior's variables live in a `Parameters` layer, which the family hands over as a part, so
checkpoints, model.keras and the SavedModel hold them.
"""

import numpy as np

from tfvae.config import Option
from tfvae.lazy import tf, tfd
from tfvae.models import register
from tfvae.models.vae import VAE
from tfvae.probability import Prior

SOFTPLUS_INVERSE_OF_1 = float(np.log(np.expm1(1.0)))  # raw scales start at softplus^-1(1): sigma_k = 1


class MixtureOfGaussians(Prior):
    """A learned mixture of K diagonal Gaussians over the latent space."""

    closed_form_kl = False

    def __init__(self, latent_dim: int, components: int, min_scale: float = 1e-3, layer=None):
        from tfvae.layers import Parameters  # a Keras layer: imported when a model is built, not with the file

        super().__init__(latent_dim)
        self.components, self.min_scale = int(components), float(min_scale)
        self.description = f"a learned mixture of {self.components} Gaussians"
        k, d = self.components, self.latent_dim
        self._layer = layer or Parameters(
            {"logits": (k,), "loc": (k, d), "raw_scale": (k, d)},
            {"loc": {"class_name": "RandomNormal", "config": {"stddev": 1.0}},
             "raw_scale": {"class_name": "Constant", "config": {"value": SOFTPLUS_INVERSE_OF_1}}},
            name="prior")

    @property
    def layer(self):
        return self._layer

    def _scale(self):
        return tf.nn.softplus(self._layer["raw_scale"]) + self.min_scale

    def distribution(self):
        components = tfd.Independent(tfd.Normal(self._layer["loc"], self._scale()), reinterpreted_batch_ndims=1)
        return tfd.MixtureSameFamily(tfd.Categorical(logits=self._layer["logits"]), components)

    def sample_in_graph(self, n):
        k = tf.random.categorical(self._layer["logits"][None], n, dtype=tf.int32)[0]
        eps = tf.random.normal(tf.stack([n, self.latent_dim]))
        return tf.gather(self._layer["loc"], k) + tf.gather(self._scale(), k) * eps

    def mixture(self) -> dict:
        return {"weights": tf.nn.softmax(self._layer["logits"]).numpy(), "loc": self._layer["loc"].numpy(),
                "scale": self._scale().numpy()}


@register
class MixturePriorVAE(VAE):
    name = "vae-mog"
    summary = "VAE with a learned mixture-of-Gaussians prior (Monte Carlo KL)"
    options = VAE.options + (Option("mixture_components", 10, "components K of the learned mixture prior."),)
    metric_names = ("loss", "log_px_z", "kl_mc", "elbo")

    def make_prior(self, layer=None):
        return MixtureOfGaussians(self.config.latent_dim, self.config.mixture_components, self.config.min_scale,
                                  layer)
