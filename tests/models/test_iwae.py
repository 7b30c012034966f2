"""iwae: minus the k-sample importance-weighted bound; its reported terms."""

import numpy as np
import tensorflow as tf

from conftest import bce, family_images, family_model


def test_iwae_loss_is_minus_the_importance_weighted_bound():
    m = family_model(model="iwae", iw_samples=7)
    x = family_images(binary=True)
    noise = m.draw_noise(len(x), [1, 2])
    loss, metrics = m.loss(tf.constant(x), noise)
    enc = m.encoder(x)
    mu, sd = enc["loc"].numpy().astype(np.float64), enc["scale"].numpy().astype(np.float64)
    eps = noise["eps"].numpy().astype(np.float64)
    z = mu[:, None] + sd[:, None] * eps
    log_pz = -0.5 * np.sum(z**2 + np.log(2 * np.pi), axis=2)
    log_qz = -0.5 * np.sum(eps**2 + np.log(2 * np.pi) + 2 * np.log(sd[:, None]), axis=2)
    log_px_z = np.stack([-bce(x, m.decoder(z[:, i].astype(np.float32))["logits"].numpy()) for i in range(7)], 1)
    log_w = log_px_z + log_pz - log_qz
    bound = np.log(np.mean(np.exp(log_w - log_w.max(1, keepdims=True)), axis=1)) + log_w.max(1)
    np.testing.assert_allclose(loss.numpy(), -bound, rtol=1e-5)
    np.testing.assert_allclose(metrics["iwae_bound"].numpy(), bound, rtol=1e-5)
    # the reported terms: E_q[log p(x|z)] over the k samples, the closed-form KL, their difference
    kl = -0.5 * np.sum(1 + np.log(sd**2) - mu**2 - sd**2, axis=1)
    np.testing.assert_allclose(metrics["log_px_z"].numpy(), log_px_z.mean(1), rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"].numpy(), kl, rtol=1e-4)
    np.testing.assert_allclose(metrics["elbo"].numpy(), log_px_z.mean(1) - kl, rtol=1e-5)
    assert set(metrics) == set(m.metric_names)
