"""ae: the loss is the likelihood's reconstruction loss against the input."""

import numpy as np
import tensorflow as tf

from conftest import bce, family_images, family_model


def test_ae_loss_is_summed_cross_entropy_against_the_input():
    m = family_model(model="ae")
    x = family_images(binary=True)
    loss, metrics = m.loss(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    logits = m.decoder(m.encoder(x)["code"])["logits"].numpy()
    np.testing.assert_allclose(loss.numpy(), bce(x, logits), rtol=1e-5)
    np.testing.assert_array_equal(metrics["reconstruction"].numpy(), loss.numpy())
    assert set(metrics) == set(m.metric_names)


def test_ae_gaussian_loss_is_squared_error():
    m = family_model(model="ae", likelihood="gaussian")
    x = family_images()
    loss, _ = m.loss(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    loc = m.decoder(m.encoder(x)["code"])["loc"].numpy()
    np.testing.assert_allclose(loss.numpy(), np.sum((x - loc) ** 2, axis=(1, 2, 3)), rtol=1e-5)


def test_code_activation_bounds_the_code():
    m = family_model(model="ae", code_activation="sigmoid")
    h = m.encode(family_images(n=50)).numpy()
    assert h.min() >= 0 and h.max() <= 1
