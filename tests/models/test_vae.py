"""vae: minus the ELBO with reparameterized samples; beta, KL warm-up and free bits."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import bce, family_images, family_model


def test_vae_loss_is_minus_elbo_with_reparameterized_samples():
    m = family_model(model="vae", mc_samples=3)
    x = family_images(binary=True)
    noise = m.draw_noise(len(x), [5, 6])
    loss, metrics = m.loss(tf.constant(x), noise, {"kl_weight": 1.0})
    enc = m.encoder(x)
    mu, sd = enc["loc"].numpy(), enc["scale"].numpy()
    eps = noise["eps"].numpy()  # (batch, L, latent)
    assert eps.shape == (len(x), 3, 3)
    z = mu[:, None] + sd[:, None] * eps  # z = mu + sigma * eps
    recon = np.stack([-bce(x, m.decoder(z[:, l])["logits"].numpy()) for l in range(3)], 1).mean(1)
    kl = -0.5 * np.sum(1 + np.log(sd.astype(np.float64) ** 2) - mu**2 - sd**2, axis=1)
    np.testing.assert_allclose(metrics["log_px_z"].numpy(), recon, rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"].numpy(), kl, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["elbo"].numpy(), recon - kl, rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), -(recon - kl), rtol=1e-5)


def test_beta_and_free_bits_change_the_loss_not_the_reported_elbo():
    x = family_images(binary=True)
    m = family_model(model="vae", beta=4.0, free_bits=0.5)
    noise = m.draw_noise(len(x), [5, 6])
    loss, metrics = m.loss(tf.constant(x), noise, {"kl_weight": 4.0})
    enc = m.encoder(x)
    mu, sd = enc["loc"].numpy().astype(np.float64), enc["scale"].numpy().astype(np.float64)
    kl_dims = -0.5 * (1 + np.log(sd**2) - mu**2 - sd**2)
    floored = np.maximum(kl_dims, 0.5).sum(axis=1)
    assert np.any(kl_dims < 0.5)  # the floor is active for some dimensions
    np.testing.assert_allclose(loss.numpy(), -(metrics["log_px_z"].numpy() - 4.0 * floored), rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"].numpy(), metrics["log_px_z"].numpy() - kl_dims.sum(1), rtol=1e-5)


def test_the_kl_weight_ramps_over_the_warm_up_epochs_and_evaluation_uses_beta():
    m = family_model(model="vae", beta=2.0, kl_warmup=2)
    weights = [float(m.schedule(tf.constant(s, tf.int64), 7)["kl_weight"]) for s in (0, 6, 13, 20)]
    assert weights == pytest.approx([2.0 / 14, 2.0 * 7 / 14, 2.0, 2.0])
    assert m.eval_schedule() == {"kl_weight": 2.0}
    assert float(family_model(model="vae", beta=0.5).schedule(tf.constant(0, tf.int64), 7)["kl_weight"]) == 0.5
    assert m.warmup_epochs(m.config) == 2


def test_dynamic_binarization_draws_bernoulli_pixels():
    m = family_model(model="vae", binarize="dynamic")
    x = np.full((200, *m.image_shape), 0.3, np.float32)
    noise = m.draw_noise(len(x), [9, 9])
    from tfvae.objectives import binarize

    b = binarize(tf.constant(x), noise["binarize"]).numpy()
    assert set(np.unique(b)) == {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 0.02
    edges = binarize(tf.constant(np.array([0.0, 1.0], np.float32)), tf.constant([0.0, 0.999], tf.float32)).numpy()
    np.testing.assert_array_equal(edges, [0.0, 1.0])  # pixels exactly 0 and 1 stay put
    assert "binarize" not in family_model(model="vae", binarize="none").draw_noise(4, [0, 1])


def test_samples_come_from_the_prior_and_follow_the_seed():
    m = family_model(model="vae")
    a, b = m.sample(4, [1, 0]).numpy(), m.sample(4, [1, 0]).numpy()
    np.testing.assert_array_equal(a, b)
    z = m.prior.sample(4, tf.random.experimental.stateless_split(tf.constant([1, 0], tf.int32), 2)[0])
    np.testing.assert_allclose(a, m.decode_mean(z).numpy(), rtol=1e-6)
