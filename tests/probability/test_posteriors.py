"""q(z|x): the diagonal Gaussian posterior's head, distribution and reparameterization."""

import keras
import numpy as np
import tensorflow as tf

from tfvae.probability import DiagonalGaussianPosterior


def test_reparameterized_samples_have_the_posterior_s_mean_and_scale():
    posterior = DiagonalGaussianPosterior(3, min_scale=1e-3)
    features = keras.Input((5,))
    keras.utils.set_random_seed(0)
    encoder = keras.Model(features, posterior.head(features))
    out = encoder(np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32))
    assert np.all(out["scale"].numpy() >= 1e-3)
    eps = tf.random.stateless_normal([2, 20000, 3], [0, 1])
    z = posterior.reparameterize(out, eps).numpy()
    np.testing.assert_allclose(z.mean(axis=1), out["loc"].numpy(), atol=0.05)
    np.testing.assert_allclose(z.std(axis=1), out["scale"].numpy(), rtol=0.03)
    q = posterior.distribution(out)
    assert q.event_shape == [3] and q.batch_shape == [2]
    np.testing.assert_allclose(posterior.mean(out).numpy(), q.mean().numpy())
