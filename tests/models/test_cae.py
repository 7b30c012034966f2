"""cae: reconstruction plus lambda times the exact Jacobian's squared Frobenius norm."""

import numpy as np
import tensorflow as tf

from tfvae.config import make_config

from conftest import bce, family_images, family_model


def test_cae_penalty_matches_the_closed_form_of_a_sigmoid_encoder():
    # One-layer sigmoid encoder h = sigmoid(W x + b): ||dh/dx||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2
    m = family_model(model="cae", hidden="", code_activation="sigmoid", contractive=0.5)
    x = family_images(binary=True)
    loss, metrics = m.loss(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    dense = m.encoder.get_layer("code")
    w = dense.kernel.numpy().astype(np.float64)  # (inputs, code)
    b = dense.bias.numpy().astype(np.float64)
    h = 1 / (1 + np.exp(-(x.reshape(len(x), -1) @ w + b)))
    closed = np.sum((h * (1 - h)) ** 2 * np.sum(w**2, axis=0), axis=1)
    np.testing.assert_allclose(metrics["penalty"].numpy(), closed, rtol=1e-4)
    logits = m.decoder(m.encoder(x)["code"])["logits"].numpy()
    np.testing.assert_allclose(loss.numpy(), bce(x, logits) + 0.5 * closed, rtol=1e-5)


def test_xla_does_not_suit_the_contractive_step():
    from tfvae.training import resolve_jit

    assert not resolve_jit(make_config(dict(model="cae")))
    assert resolve_jit(make_config(dict(model="cae", jit="on")))
    assert resolve_jit(make_config(dict(model="ae")))  # an MLP of another family: XLA on
