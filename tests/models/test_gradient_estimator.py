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
