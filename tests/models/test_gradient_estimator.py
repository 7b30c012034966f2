"""--gradient-estimator: the score-function (REINFORCE) estimator of the ELBO's encoder gradient
has the reparameterized one's expectation and a far larger variance; the decoder's gradient and
every reported number are the same."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import family_images, family_model

DRAWS = 400


def _gradients(model, x, seed, draws=DRAWS):
    """(encoder gradients (draws, n), decoder gradients (draws, m), losses (draws, batch))."""
    enc_vars, dec_vars = model.encoder.trainable_variables, model.decoder.trainable_variables

    @tf.function
    def one(s):
        noise = model.draw_noise(tf.shape(x)[0], s)
        with tf.GradientTape() as tape:
            loss, metrics = model.loss(x, noise, {"kl_weight": tf.constant(1.0)})
            total = tf.reduce_sum(loss)
        ge, gd = tape.gradient(total, [enc_vars, dec_vars])
        return (tf.concat([tf.reshape(g, [-1]) for g in ge], 0), tf.concat([tf.reshape(g, [-1]) for g in gd], 0),
                metrics["loss"])

    out = [one(tf.constant([seed, i])) for i in range(draws)]
    return [np.stack([o[k].numpy() for o in out]).astype(np.float64) for k in range(3)]


@pytest.mark.parametrize("samples", [1, 4], ids=["L=1 (batch baseline)", "L=4 (per-image baseline)"])
def test_the_score_function_estimator_has_the_same_expectation_and_a_larger_variance(samples):
    x = tf.constant(family_images(n=8, binary=True))
    reparam = family_model(model="vae", mc_samples=samples)
    score = family_model(model="vae", mc_samples=samples, gradient_estimator="score")
    for a, b in zip(reparam.keras_model.weights, score.keras_model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # the same network, seeded alike
    ge_r, gd_r, loss_r = _gradients(reparam, x, 1)
    ge_s, gd_s, loss_s = _gradients(score, x, 1)
    # the same draws give the same loss and the same decoder gradient: z is the same point
    np.testing.assert_allclose(loss_s, loss_r, rtol=1e-6)
    np.testing.assert_allclose(gd_s, gd_r, rtol=1e-4, atol=1e-5)
    # the encoder's: equal means within their standard errors (z-scores of a normal sample) ...
    mean_r, mean_s = ge_r.mean(0), ge_s.mean(0)
    se = np.sqrt(ge_r.var(0, ddof=1) / DRAWS + ge_s.var(0, ddof=1) / DRAWS)
    live = se > 0
    z = (mean_s - mean_r)[live] / se[live]
    assert np.mean(np.abs(z) < 3) > 0.97, np.sort(np.abs(z))[-10:]
    assert abs(np.mean(z)) < 4 / np.sqrt(z.size) + 0.15 and 0.6 < np.std(z) < 1.4, (np.mean(z), np.std(z))
    # ... and the score function's variance is many times the reparameterized one's
    ratio = np.median(ge_s.var(0)[live] / np.maximum(ge_r.var(0)[live], 1e-30))
    assert ratio > 5, ratio


def test_training_with_the_score_function_estimator_runs_and_reports_the_same_terms(tmp_path, bars_npz):
    import tfvae

    run = tfvae.fit(bars_npz, out=str(tmp_path / "score"), progress=False, model="vae", hidden="32", latent_dim=2,
                    batch_size=64, epochs=2, gradient_estimator="score")
    assert all(np.isfinite(run.metrics[k]) for k in ("loss", "log_px_z", "kl", "elbo", "val_elbo"))
    assert run.metrics["loss"] == pytest.approx(-run.metrics["elbo"], rel=1e-5)
    assert tfvae.load(run.run_dir).config.options["gradient_estimator"] == "score"


def test_the_estimator_is_a_vae_option():
    from tfvae.api import resolve_config
    from tfvae.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown --gradient-estimator 'reinforce'"):
        resolve_config({"model": "vae", "gradient_estimator": "reinforce"})
    for other in ("hvae", "iwae", "ae"):
        with pytest.raises(ConfigError, match=f"--gradient-estimator applies to --model vae, not --model {other}"):
            resolve_config({"model": other, "gradient_estimator": "score"})


@pytest.mark.parametrize("samples,prior,n", [(1, "normal", 6), (1, "normal", 2), (2, "normal", 6), (4, "normal", 6),
                                             (4, "mog", 6)])
def test_the_encoder_gradient_is_the_leave_one_out_score_function_formula(samples, prior, n):
    """An exact oracle for one draw: the loss's encoder gradient is, to float rounding,
    sum over images of grad [w KL - (1/L) sum_i (f_i - b_i) log q(z_i|x)] with z, f and b held
    fixed, written out here with TFP: f = log p(x|z) with N(0, I) (its KL in closed form) or
    log p(x|z) - w (log q(z|x) - log p(z)) with a mixture prior (its KL the average of
    log q - log p over the L samples); b_i the mean of f over the image's other samples (L >= 2)
    or over the batch's other images (L = 1)."""
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    w = tf.constant(0.7)
    kw = {"prior": "mog", "prior_components": 3} if prior == "mog" else {}
    m = family_model(model="vae", mc_samples=samples, gradient_estimator="score", **kw)
    x = tf.constant(family_images(n=n, binary=True))
    noise = m.draw_noise(n, tf.constant([3, 4]))
    enc_vars = m.encoder.trainable_variables
    with tf.GradientTape() as tape:
        loss, metrics = m.loss(x, noise, {"kl_weight": w})
        total = tf.reduce_sum(loss)
    got = tape.gradient(total, enc_vars)

    pixels = tf.reshape(x, [n, 1, -1])
    with tf.GradientTape() as tape:
        enc = m.encoder(x)
        q_i = tfd.Independent(tfd.Normal(enc["loc"][:, None], enc["scale"][:, None]), 1)
        z = tf.stop_gradient(enc["loc"][:, None] + enc["scale"][:, None] * noise["eps"])  # (n, L, latent)
        logits = tf.reshape(m.decoder(tf.reshape(z, [n * samples, -1]))["logits"], [n, samples, -1])
        log_px_z = tf.reduce_sum(tfd.Bernoulli(logits=logits).log_prob(pixels), -1)  # (n, L)
        log_q = q_i.log_prob(z)
        if prior == "mog":
            log_p = m.prior.distribution().log_prob(z)
            kl = tf.reduce_mean(log_q - log_p, axis=1)
            f = tf.stop_gradient(log_px_z - w * (log_q - log_p))
        else:
            q = tfd.Independent(tfd.Normal(enc["loc"], enc["scale"]), 1)
            kl = tfd.kl_divergence(q, tfd.Independent(tfd.Normal(tf.zeros_like(enc["loc"]), 1.0), 1))
            f = tf.stop_gradient(log_px_z)
        if samples >= 2:
            b = (tf.reduce_sum(f, 1, keepdims=True) - f) / (samples - 1)
        else:
            b = (tf.reduce_sum(f, 0, keepdims=True) - f) / (n - 1)
        oracle = tf.reduce_sum(w * kl - tf.reduce_mean((f - b) * log_q, axis=1))
    want = tape.gradient(oracle, enc_vars)
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=2e-4, atol=2e-5)
    # the reported terms are the reparameterized ELBO's on the same draws, the surrogate adds 0
    np.testing.assert_allclose(metrics["log_px_z"], tf.reduce_mean(log_px_z, 1), rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"], tf.reduce_mean(log_px_z, 1) - kl, rtol=1e-5)
    np.testing.assert_allclose(loss, metrics["loss"], rtol=1e-6, atol=1e-4)
    # the terms it returns are the reparameterized ELBO's, the KL per dimension (free bits) included
    from tfvae import objectives

    args = (m.encoder, m.decoder, m.likelihood, m.prior, x, noise["eps"])
    terms, _ = objectives.score_function_surrogate(*args, posterior=m.posterior_dist)
    same = objectives.elbo(*args, posterior=m.posterior_dist)
    assert sorted(terms) == sorted(same)
    for key in same:
        np.testing.assert_allclose(terms[key], same[key], rtol=1e-6, err_msg=key)
