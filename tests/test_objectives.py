"""Each model's loss is the one the course defines, computed independently here."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.config import make_config
from tfvae.models import Autoencoder

SHAPE = (6, 6, 1)


def _x(n=5, seed=0, binary=False):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *SHAPE)).astype(np.float32)
    return (x > 0.5).astype(np.float32) if binary else x


def _bce(x, logits):
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))


def _model(**kw):
    cfg = make_config({"hidden": "8", "latent_dim": 3, **kw})
    keras.utils.set_random_seed(0)
    return Autoencoder(cfg, SHAPE)


def test_ae_loss_is_summed_cross_entropy_against_the_input():
    m = _model(model="ae")
    x = _x(binary=True)
    loss, metrics = m.objective(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    logits = m.decoder(m.encoder(x)["code"])["logits"].numpy()
    np.testing.assert_allclose(loss.numpy(), _bce(x, logits), rtol=1e-5)


def test_ae_gaussian_loss_is_squared_error():
    m = _model(model="ae", likelihood="gaussian")
    x = _x()
    loss, _ = m.objective(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    loc = m.decoder(m.encoder(x)["code"])["loc"].numpy()
    np.testing.assert_allclose(loss.numpy(), np.sum((x - loc) ** 2, axis=(1, 2, 3)), rtol=1e-5)


def test_sae_adds_lambda_times_l1_of_the_code():
    m = _model(model="sae", l1=0.37)
    x = _x(binary=True)
    loss, metrics = m.objective(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    h = m.encoder(x)["code"].numpy()
    logits = m.decoder(h)["logits"].numpy()
    expected = _bce(x, logits) + 0.37 * np.abs(h).sum(axis=1)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["penalty"].numpy(), np.abs(h).sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("noise", ["masking", "gaussian"])
def test_dae_corrupts_the_input_and_compares_with_the_clean_one(noise):
    m = _model(model="dae", noise=noise, noise_level=0.4, binarize="none")
    x = _x(n=64)
    noise_t = m.draw_noise(len(x), [3, 4])
    loss, _ = m.objective(tf.constant(x), noise_t)
    raw = noise_t["corrupt"].numpy().reshape(x.shape)
    if noise == "masking":
        x_tilde = x * (raw >= 0.4)
        dropped = 1 - (raw >= 0.4).mean()
        assert 0.3 < dropped < 0.5  # each input is zeroed with probability nu
    else:
        x_tilde = x + 0.4 * raw
    logits = m.decoder(m.encoder(x_tilde)["code"])["logits"].numpy()
    np.testing.assert_allclose(loss.numpy(), _bce(x, logits), rtol=1e-5)  # against CLEAN x
    corrupt_target = _bce(np.clip(x_tilde, 0, 1), logits)
    assert not np.allclose(loss.numpy(), corrupt_target)
    # outside training there is no corruption: reconstruct is deterministic and uses clean x
    r1, r2 = m.reconstruct(x).numpy(), m.reconstruct(x).numpy()
    np.testing.assert_array_equal(r1, r2)
    clean = 1 / (1 + np.exp(-m.decoder(m.encoder(x)["code"])["logits"].numpy()))
    np.testing.assert_allclose(r1, clean, rtol=1e-5, atol=1e-6)


def test_cae_penalty_matches_the_closed_form_of_a_sigmoid_encoder():
    # One-layer sigmoid encoder h = sigmoid(W x + b): ||dh/dx||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2
    m = _model(model="cae", hidden="", code_activation="sigmoid", contractive=0.5)
    x = _x(binary=True)
    loss, metrics = m.objective(tf.constant(x), m.draw_noise(len(x), [0, 1]))
    dense = m.encoder.get_layer("code")
    w = dense.kernel.numpy().astype(np.float64)  # (inputs, code)
    b = dense.bias.numpy().astype(np.float64)
    h = 1 / (1 + np.exp(-(x.reshape(len(x), -1) @ w + b)))
    closed = np.sum((h * (1 - h)) ** 2 * np.sum(w**2, axis=0), axis=1)
    np.testing.assert_allclose(metrics["penalty"].numpy(), closed, rtol=1e-4)
    logits = m.decoder(m.encoder(x)["code"])["logits"].numpy()
    np.testing.assert_allclose(loss.numpy(), _bce(x, logits) + 0.5 * closed, rtol=1e-5)


def test_vae_loss_is_minus_elbo_with_reparameterized_samples():
    m = _model(model="vae", mc_samples=3)
    x = _x(binary=True)
    noise = m.draw_noise(len(x), [5, 6])
    loss, metrics = m.objective(tf.constant(x), noise, kl_weight=1.0)
    enc = m.encoder(x)
    mu, sd = enc["loc"].numpy(), enc["scale"].numpy()
    eps = noise["eps"].numpy()  # (batch, L, latent)
    z = mu[:, None] + sd[:, None] * eps  # z = mu + sigma * eps
    recon = np.stack([-_bce(x, m.decoder(z[:, l])["logits"].numpy()) for l in range(3)], 1).mean(1)
    kl = -0.5 * np.sum(1 + np.log(sd.astype(np.float64) ** 2) - mu**2 - sd**2, axis=1)
    np.testing.assert_allclose(metrics["log_px_z"].numpy(), recon, rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"].numpy(), kl, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["elbo"].numpy(), recon - kl, rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), -(recon - kl), rtol=1e-5)


def test_beta_and_free_bits_change_the_loss_not_the_reported_elbo():
    x = _x(binary=True)
    m = _model(model="vae", beta=4.0, free_bits=0.5)
    noise = m.draw_noise(len(x), [5, 6])
    loss, metrics = m.objective(tf.constant(x), noise, kl_weight=4.0)
    enc = m.encoder(x)
    mu, sd = enc["loc"].numpy().astype(np.float64), enc["scale"].numpy().astype(np.float64)
    kl_dims = -0.5 * (1 + np.log(sd**2) - mu**2 - sd**2)
    floored = np.maximum(kl_dims, 0.5).sum(axis=1)
    assert np.any(kl_dims < 0.5)  # the floor is active for some dimensions
    np.testing.assert_allclose(loss.numpy(), -(metrics["log_px_z"].numpy() - 4.0 * floored), rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"].numpy(), metrics["log_px_z"].numpy() - kl_dims.sum(1), rtol=1e-5)


def test_iwae_loss_is_minus_the_importance_weighted_bound():
    m = _model(model="iwae", iw_samples=7)
    x = _x(binary=True)
    noise = m.draw_noise(len(x), [1, 2])
    loss, metrics = m.objective(tf.constant(x), noise)
    enc = m.encoder(x)
    mu, sd = enc["loc"].numpy().astype(np.float64), enc["scale"].numpy().astype(np.float64)
    eps = noise["eps"].numpy().astype(np.float64)
    z = mu[:, None] + sd[:, None] * eps
    log_pz = -0.5 * np.sum(z**2 + np.log(2 * np.pi), axis=2)
    log_qz = -0.5 * np.sum(eps**2 + np.log(2 * np.pi) + 2 * np.log(sd[:, None]), axis=2)
    log_px_z = np.stack([-_bce(x, m.decoder(z[:, i].astype(np.float32))["logits"].numpy()) for i in range(7)], 1)
    log_w = log_px_z + log_pz - log_qz
    bound = np.log(np.mean(np.exp(log_w - log_w.max(1, keepdims=True)), axis=1)) + log_w.max(1)
    np.testing.assert_allclose(loss.numpy(), -bound, rtol=1e-5)
    np.testing.assert_allclose(metrics["iwae_bound"].numpy(), bound, rtol=1e-5)
    # the reported terms: E_q[log p(x|z)] over the k samples, the closed-form KL, their difference
    kl = -0.5 * np.sum(1 + np.log(sd**2) - mu**2 - sd**2, axis=1)
    np.testing.assert_allclose(metrics["log_px_z"].numpy(), log_px_z.mean(1), rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"].numpy(), kl, rtol=1e-4)
    np.testing.assert_allclose(metrics["elbo"].numpy(), log_px_z.mean(1) - kl, rtol=1e-5)
    # the bound sits above the reported ELBO (Jensen; the ELBO uses the closed-form KL, not these samples' one)
    assert np.all(metrics["iwae_bound"].numpy() >= metrics["elbo"].numpy() - 0.5)


def test_dynamic_binarization_draws_bernoulli_pixels():
    m = _model(model="vae", binarize="dynamic")
    x = np.full((200, *SHAPE), 0.3, np.float32)
    noise = m.draw_noise(len(x), [9, 9])
    from tfvae.objectives import binarize

    b = binarize(tf.constant(x), noise["binarize"]).numpy()
    assert set(np.unique(b)) == {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 0.02
    edges = binarize(tf.constant(np.array([0.0, 1.0], np.float32)), tf.constant([0.0, 0.999], tf.float32)).numpy()
    np.testing.assert_array_equal(edges, [0.0, 1.0])  # pixels exactly 0 and 1 stay put
