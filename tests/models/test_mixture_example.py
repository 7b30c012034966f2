"""The worked example of docs/ARCHITECTURE.md, a family in one file (docs/examples/mixture_prior.py):
its learned prior trains, its KL is the Monte Carlo estimate it says it is, exports draw from it."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae.config import make_config
from tfvae.errors import ConfigError

from conftest import FAMILY_SHAPE, ROOT, family_images

pytestmark = pytest.mark.usefixtures("docs_example")




def _model(**kw):
    import keras

    from tfvae import models

    keras.utils.set_random_seed(0)
    return models.build(make_config({"model": "vae-mog", "hidden": "8", "latent_dim": 2, "mixture_components": 4,
                                     **kw}), FAMILY_SHAPE)


def test_the_kl_is_the_monte_carlo_estimate_over_the_reconstruction_s_samples():
    m = _model(mc_samples=5)
    x = family_images(binary=True)
    noise = m.draw_noise(len(x), [1, 2])
    loss, metrics = m.loss(tf.constant(x), noise, {"kl_weight": 1.0})
    assert "kl" not in metrics and set(metrics) == {"loss", "log_px_z", "kl_mc", "elbo"}
    enc = m.encoder(x)
    z = enc["loc"][:, None] + enc["scale"][:, None] * noise["eps"]
    q = m.posterior(x)
    zs = tf.transpose(z, [1, 0, 2])
    expected = tf.reduce_mean(q.log_prob(zs) - m.prior.distribution().log_prob(zs), axis=0).numpy()
    np.testing.assert_allclose(metrics["kl_mc"].numpy(), expected, rtol=1e-5)
    # the mixture's density, by hand
    mix = m.prior.mixture()
    w = mix["weights"].astype(np.float64)
    zz = zs.numpy().astype(np.float64)[..., None, :]  # (L, batch, 1, d)
    comp = -0.5 * np.sum(((zz - mix["loc"]) / mix["scale"]) ** 2 + np.log(2 * np.pi * mix["scale"] ** 2), axis=-1)
    by_hand = np.log(np.sum(w * np.exp(comp), axis=-1))
    np.testing.assert_allclose(m.prior.log_prob(zs).numpy(), by_hand, rtol=1e-5, atol=1e-5)


def test_free_bits_need_a_closed_form_kl():
    with pytest.raises(ConfigError, match="--free-bits needs a KL per latent dimension in closed form"):
        _model(free_bits=0.5)


def test_the_prior_learns_and_the_edge_runner_draws_from_it(bars_npz, tmp_path):
    kw = dict(model="vae-mog", mixture_components=3, hidden="16", latent_dim=2, batch_size=64, epochs=3,
              learning_rate=0.01, progress=False)
    run = tfvae.fit(bars_npz, out=str(tmp_path / "mog"), **kw)
    trained = tfvae.load(run.run_dir)
    prior = trained.model.prior.mixture()
    assert np.abs(prior["loc"] - _model(latent_dim=2, mixture_components=3).prior.mixture()["loc"]).max() > 1e-3
    assert trained.model.prior.layer.name == "prior" and len(trained.model.prior.trainable_variables) == 3
    from tfvae.export.exporter import export_run

    export_run(trained, str(tmp_path / "exp"), quantize=("none",), n_eval=64)
    out = tmp_path / "z.npy"
    edge = os.path.join(ROOT, "export", "edge", "tfvae_edge.py")
    proc = subprocess.run([sys.executable, edge, "--model", str(tmp_path / "exp" / "tflite" / "decoder_none.tflite"),
                           "-n", "2000", "--seed", "4", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from tfvae.export.tflite import draw_prior

    z = draw_prior(prior, 2000, 4)
    np.testing.assert_allclose(np.load(out), trained.decode(z), atol=1e-5)  # the runner drew these z
    # the draws follow the mixture: their mean is the weighted mean of the components
    np.testing.assert_allclose(z.mean(0), prior["weights"] @ prior["loc"], atol=0.15)


def test_early_stopping_keeps_the_learned_prior_of_the_best_epoch(bars_npz, tmp_path):
    import json

    import keras

    from tfvae.rundir import RunDir

    run = tfvae.fit(bars_npz, out=str(tmp_path / "es"), model="vae-mog", mixture_components=2, hidden="16",
                    latent_dim=2, batch_size=64, epochs=4, early_stopping=3, learning_rate=0.01, progress=False)
    best = json.loads(open(RunDir(run.run_dir).best_info_path).read())["epoch"]
    trained = tfvae.load(run.run_dir)  # model.keras: the best epoch
    held = keras.models.clone_model(trained.keras_model)
    held.load_weights(RunDir(run.run_dir).best_weights_path)
    prior = trained.keras_model.get_layer("prior")
    assert [w.name for w in prior.weights] == ["logits", "loc", "raw_scale"]
    for a, b in zip(prior.weights, held.get_layer("prior").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert best == run.metrics["best_epoch"] >= 1
