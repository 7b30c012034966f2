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


def test_the_posterior_head_keeps_every_scale_above_its_floor():
    """--min-scale reaches the encoder's head: scale = softplus(linear) + min_scale."""
    features = keras.Input((4,))
    head = DiagonalGaussianPosterior(3, min_scale=0.5).head(features)
    net = keras.Model(features, head)
    assert net.get_layer("posterior").min_scale == 0.5
    scale = net(np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32) * 30)["scale"].numpy()
    assert scale.min() >= 0.5 and scale.min() < 0.52 and scale.shape == (200, 3)


def test_the_posterior_head_computes_in_the_dtype_asked_for_under_mixed_precision():
    """With --mixed-precision the networks compute in float16 and the head in float32 (HEAD)."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        features = keras.Input((4,))
        head = DiagonalGaussianPosterior(3).head(features, dtype="float32")
        out = keras.Model(features, head)(np.ones((2, 4), np.float32))
        assert out["loc"].dtype == out["scale"].dtype == tf.float32
    finally:
        keras.config.set_dtype_policy(before)
