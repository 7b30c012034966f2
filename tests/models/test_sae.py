"""sae: reconstruction plus lambda times the L1 norm of the code."""

import numpy as np
import tensorflow as tf

from conftest import bce, family_images, family_model


def test_sae_adds_lambda_times_l1_of_the_code():
    m = family_model(model="sae", l1=0.37)
    x = family_images(binary=True)
    loss, metrics = m.loss(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    h = m.encoder(x)["code"].numpy()
    logits = m.decoder(h)["logits"].numpy()
    expected = bce(x, logits) + 0.37 * np.abs(h).sum(axis=1)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["penalty"].numpy(), np.abs(h).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(metrics["reconstruction"].numpy(), bce(x, logits), rtol=1e-5)
