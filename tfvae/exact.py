"""A latent-variable model where every term of the ELBO is exact: probabilistic PCA.

    p(z) = N(0, I),   p(x|z) = N(W z + b, s^2 I),   so   p(x) = N(b, W W^T + s^2 I)

With W's columns orthogonal the true posterior p(z|x) is a diagonal Gaussian, so tfvae's diagonal
q(z|x) can equal it: then KL(q || p(z|x)) = 0 and the ELBO is log p(x) exactly (the EM view). The
test suite checks tfvae's bounds against it, and the lecture notebook shows
log p(x) = ELBO + KL(q(z|x) || p(z|x)) on it, number by number.

    >>> m = LinearGaussian()
    >>> x, log_px = m.data(64)
    >>> vae = m.model()                      # a tfvae VAE whose q(z|x) is the exact posterior
    >>> worse = m.model(scale_factor=1.5)    # ... or a deliberately wrong one
"""

from __future__ import annotations

import math

import numpy as np


class LinearGaussian:
    """Probabilistic PCA with D observed and K latent dimensions and noise s (orthogonal W)."""

    def __init__(self, d: int = 6, k: int = 3, s: float = 0.5, seed: int = 3, scales=(2.0, 1.2, 0.7)):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(d, k)))
        self.d, self.k, self.s = d, k, s
        self.w = (q * np.asarray(scales[:k], np.float64)).astype(np.float64)  # orthogonal columns
        self.b = rng.normal(size=d) * 0.3
        self.image_shape = (d, 1, 1)

    # ------------------------------------------------------------------ exact quantities
    def data(self, n: int = 64, seed: int = 4):
        """(x of shape (n, D, 1, 1) float32, exact log p(x) of each, float64) drawn from the model."""
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, self.k))
        x = z @ self.w.T + self.b + self.s * rng.normal(size=(n, self.d))
        x = x.reshape(n, *self.image_shape).astype(np.float32)
        return x, self.log_px(x)

    def log_px(self, x) -> np.ndarray:
        """log p(x) = log N(x; b, W W^T + s^2 I), float64."""
        xf = np.asarray(x, np.float64).reshape(len(x), self.d)
        cov = self.w @ self.w.T + self.s**2 * np.eye(self.d)
        diff = xf - self.b
        _, logdet = np.linalg.slogdet(cov)
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
        return -0.5 * (self.d * math.log(2 * math.pi) + logdet + maha)

    def posterior(self):
        """(M, c, std): the exact posterior is N(M (x - b), diag(std^2)); c = -M b."""
        precision = np.eye(self.k) + self.w.T @ self.w / self.s**2  # diagonal, since W^T W is
        cov = np.linalg.inv(precision)
        m = cov @ self.w.T / self.s**2
        return m, -(m @ self.b), np.sqrt(np.diag(cov))

    def analytic_elbo(self, encoder, x) -> np.ndarray:
        """E_q[log p(x|z)] - KL(q || p(z)), both in closed form for the linear decoder, float64."""
        out = encoder(x)
        mu, sd = out["loc"].numpy().astype(np.float64), out["scale"].numpy().astype(np.float64)
        xf = np.asarray(x, np.float64).reshape(len(x), self.d)
        resid = xf - mu @ self.w.T - self.b
        trace = np.einsum("ij,nj->n", self.w**2, sd**2)  # tr(W diag(sd^2) W^T)
        expected = -0.5 * self.d * math.log(2 * math.pi * self.s**2) - (np.sum(resid**2, 1) + trace) / (2 * self.s**2)
        kl = -0.5 * np.sum(1 + np.log(sd**2) - mu**2 - sd**2, axis=1)
        return expected - kl

    # ------------------------------------------------------------------ as tfvae networks
    def decoder(self):
        """p(x|z)'s mean W z + b as a Keras model ({"loc"})."""
        import keras

        z = keras.Input((self.k,))
        dense = keras.layers.Dense(self.d, kernel_initializer=keras.initializers.Constant(self.w.T.astype(np.float32)),
                                   bias_initializer=keras.initializers.Constant(self.b.astype(np.float32)))
        return keras.Model(z, {"loc": keras.layers.Reshape(self.image_shape)(dense(z))})

    def encoder(self, shift: float = 0.0, scale_factor: float = 1.0):
        """q(z|x) as a Keras model ({"loc", "scale"}): the exact posterior (shift 0, scale_factor 1),
        or one whose mean is shifted and whose standard deviations are scaled."""
        import keras

        m, c, std = self.posterior()
        x = keras.Input(self.image_shape)
        flat = keras.layers.Flatten()(x)
        loc = keras.layers.Dense(self.k, kernel_initializer=keras.initializers.Constant(m.T.astype(np.float32)),
                                 bias_initializer=keras.initializers.Constant((c + shift).astype(np.float32)))(flat)
        scale = keras.layers.Dense(self.k, kernel_initializer="zeros",
                                   bias_initializer=keras.initializers.Constant((std * scale_factor).astype(np.float32)))(flat)
        return keras.Model(x, {"loc": loc, "scale": scale})

    def model(self, shift: float = 0.0, scale_factor: float = 1.0, **options):
        """A tfvae VAE (tfvae.models) whose networks are this model's decoder and the encoder above."""
        from tfvae import models
        from tfvae.config import make_config

        config = make_config(dict(model="vae", likelihood="gaussian", gaussian_variance="fixed", gaussian_scale=self.s,
                                  latent_dim=self.k, binarize="none", **options))
        return models.build(config, self.image_shape, parts={"encoder": self.encoder(shift, scale_factor),
                                                             "decoder": self.decoder()})
