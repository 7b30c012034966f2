"""hvae, the two-level hierarchical VAE: its bound never above log p(x) where log p(x) is exact (by
quadrature), its terms by hand, its networks as the reference builds them, its exports."""

import math

import numpy as np
import pytest
import tensorflow as tf

import tfvae

from conftest import family_images, family_model

SOFTPLUS_INV_3 = float(np.log(np.expm1(3.0)))


def _widen(head, loc=0.0):
    """Makes a DiagonalGaussian head output N(loc, 3^2) whatever its input."""
    head.loc_layer.kernel.assign(np.zeros_like(head.loc_layer.kernel.numpy()))
    head.loc_layer.bias.assign(np.full_like(head.loc_layer.bias.numpy(), loc))
    head.raw_scale_layer.kernel.assign(np.zeros_like(head.raw_scale_layer.kernel.numpy()))
    head.raw_scale_layer.bias.assign(np.full_like(head.raw_scale_layer.bias.numpy(), SOFTPLUS_INV_3))


def _tiny(prior="normal", **kw):
    extra = {} if prior == "normal" else {"prior_components": 3}
    m = family_model(model="hvae", latent_dim=1, hidden="6", prior=prior, **extra, **kw)
    if prior == "vamp":
        m.initialize(family_images(10, seed=5), seed=1)
    return m


@pytest.mark.parametrize("prior", ["normal", "vamp"])
def test_the_bounds_never_exceed_the_exact_log_px_and_importance_sampling_reaches_it(prior):
    """z1, z2 of one dimension each: log p(x) = log int int p(x|z1,z2) p(z1|z2) p(z2) dz1 dz2 by
    quadrature on a 2-d grid. Both posteriors are made N(0, 3^2), wider than the true ones, so
    importance sampling converges within k = 20,000."""
    from tfvae.evaluation import bound_metrics, log_likelihood

    m = _tiny(prior)
    _widen(m.encoder.get_layer("posterior"))
    _widen(m.encoder_z1.get_layer("posterior_z1"))
    x = family_images(3, seed=8, binary=True)
    g = np.linspace(-10, 10, 801, dtype=np.float32)
    dz = float(g[1] - g[0])
    z2, z1 = np.meshgrid(g, g, indexing="ij")
    z1f, z2f = z1.reshape(-1, 1), z2.reshape(-1, 1)
    logits = m.decoder({"z1": tf.constant(z1f), "z2": tf.constant(z2f)})["logits"].numpy()
    logits = logits.reshape(len(z1f), -1).astype(np.float64)
    flat = x.reshape(3, -1).astype(np.float64)
    log_px = flat @ logits.T - np.sum(np.logaddexp(0, logits), axis=1)  # (3, grid points)
    cond = m.prior_z1(tf.constant(g[:, None, None]))
    loc, scale = cond["loc"].numpy()[:, 0, 0].astype(np.float64), cond["scale"].numpy()[:, 0, 0].astype(np.float64)
    log_p1 = (-0.5 * ((z1 - loc[:, None]) / scale[:, None]) ** 2 - np.log(scale[:, None])
              - 0.5 * math.log(2 * math.pi)).reshape(-1)
    log_p2 = np.repeat(m.prior.log_prob(tf.constant(g[:, None])).numpy().astype(np.float64), len(g))
    joint = log_px + log_p1 + log_p2
    top = joint.max(axis=1, keepdims=True)
    exact = (top[:, 0] + np.log(np.sum(np.exp(joint - top), axis=1))) + 2 * math.log(dz)
    estimate = log_likelihood(m, x, k=20000, seed=3)
    np.testing.assert_allclose(estimate, exact, atol=0.03)
    elbo = bound_metrics(m, x, samples=4000)["elbo"]
    assert np.all(elbo <= exact + 0.01) and np.all(estimate >= elbo)
    assert np.all(exact - elbo > 0.05)  # a real gap: the posteriors are far too wide


def test_the_terms_are_the_hierarchy_s_densities():
    """kl_z1 is KL(q(z1|x,z2) || p(z1|z2)) in closed form at the sampled z2; kl_z2 is closed form for
    N(0, I); the importance weights average, over many samples, to the ELBO."""
    m = family_model(model="hvae", latent_dim=3, hidden="8", mc_samples=3)
    x = tf.constant(family_images(4, binary=True))
    noise = m.draw_noise(4, [5, 6])
    eps = noise["eps"]
    assert eps.shape == (4, 3, 6)  # eps of z2, then of z1
    _, metrics = m.loss(x, noise, {"kl_weight": 1.0})
    assert set(metrics) == {"loss", "log_px_z", "kl_z1", "kl_z2", "kl_mc", "elbo"}
    enc2 = m.encoder(x)
    z2 = enc2["loc"][:, None] + enc2["scale"][:, None] * eps[..., :3]
    enc1 = m.encoder_z1({"images": x, "z2": z2})
    cond = m.prior_z1(z2)
    q1, p1 = (np.asarray(enc1["loc"], np.float64), np.asarray(enc1["scale"], np.float64),), \
        (np.asarray(cond["loc"], np.float64), np.asarray(cond["scale"], np.float64))
    kl1 = np.sum(np.log(p1[1] / q1[1]) + (q1[1] ** 2 + (q1[0] - p1[0]) ** 2) / (2 * p1[1] ** 2) - 0.5, axis=-1)
    np.testing.assert_allclose(metrics["kl_z1"].numpy(), kl1.mean(axis=1), rtol=1e-4, atol=1e-4)
    mu, s = np.asarray(enc2["loc"], np.float64), np.asarray(enc2["scale"], np.float64)
    kl2 = -0.5 * np.sum(1 + np.log(s ** 2) - mu ** 2 - s ** 2, axis=-1)
    np.testing.assert_allclose(metrics["kl_z2"].numpy(), kl2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics["kl_mc"].numpy(), kl1.mean(axis=1) + kl2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics["elbo"].numpy(), metrics["log_px_z"].numpy() - metrics["kl_mc"].numpy(),
                               rtol=1e-6)
    many = tf.random.stateless_normal([4, 20000, 6], [1, 1])
    log_w, _, _ = m.log_importance_weights(x, many)
    exact_elbo = m.elbo(x, many)["elbo"].numpy()
    np.testing.assert_allclose(tf.reduce_mean(log_w, axis=1).numpy(), exact_elbo, atol=0.25)


def test_the_parts_and_the_reference_networks():
    m = family_model(model="hvae", latent_dim=3, hidden="8")
    assert set(m.parts) == {"encoder", "decoder", "encoder_z1", "prior_z1"}
    vamp = family_model(model="hvae", latent_dim=3, hidden="8", prior="vamp", prior_components=4)
    assert set(vamp.parts) == {"encoder", "decoder", "encoder_z1", "prior_z1", "prior"}
    from tfvae import models
    from tfvae.config import make_config
    from tfvae.layers import GatedConv2D, GatedDense

    conv = models.build(make_config({"model": "hvae", "network": "conv", "activation": "gated", "hidden": "300,300",
                                     "latent_dim": 40}), (28, 28, 1))
    gated = [layer for layer in conv.encoder.layers if isinstance(layer, GatedConv2D)]
    assert [(g.filters, g.kernel_size, g.strides) for g in gated] == [(32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2),
                                                                      (6, 3, 1)]
    assert conv.encoder.get_layer("conv_flatten").output.shape[-1] == 294  # the reference's h_size
    dec = [layer for layer in conv.decoder.layers if isinstance(layer, GatedConv2D)]
    assert [(g.filters, g.kernel_size, g.strides) for g in dec] == [(64, 3, 1)] * 4
    assert conv.decoder.get_layer("joint_dense").units == 784 and isinstance(conv.decoder.get_layer("joint_dense"),
                                                                             GatedDense)
    assert [layer.units for layer in conv.prior_z1.layers if isinstance(layer, GatedDense)] == [300, 300]
    x = tf.random.uniform([2, 28, 28, 1])
    assert conv.reconstruct(x.numpy()).shape == (2, 28, 28, 1)
    noise = conv.draw_noise(2, [0, 1])
    loss, _ = conv.loss(x, noise, {"kl_weight": 1.0})
    assert loss.shape == (2,) and np.all(np.isfinite(loss.numpy()))


def test_codes_are_the_top_layer_decoded_through_the_mean_of_z1():
    m = family_model(model="hvae", latent_dim=3, hidden="8")
    x = tf.constant(family_images(2))
    z2 = m.encode(x)
    np.testing.assert_array_equal(z2.numpy(), m.encoder(x)["loc"].numpy())
    z1 = m.prior_z1(z2[:, None])["loc"][:, 0]
    np.testing.assert_allclose(m.decode_mean(z2).numpy(), m.decode_levels(z1, z2).numpy(), rtol=1e-6)
    levels = m.encode_levels(x)
    np.testing.assert_allclose(m.reconstruct(x).numpy(), m.decode_levels(levels["z1"], levels["z2"]).numpy(),
                               rtol=1e-6)
    a, b = m.sample(6, [1, 2], mean=False).numpy(), m.sample(6, [1, 2], mean=False).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 1.0}


def test_free_bits_are_not_an_option(capsys, bars_npz, tmp_path):
    from conftest import one_error_line, run_cli

    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-m", "hvae", "-o", tmp_path / "x", "--free-bits", "0.5")
    assert code == 2 and "--free-bits" in one_error_line(err)


def test_evaluation_reports_active_units_per_layer_and_the_export_decodes_both_levels(bars_npz, tmp_path):
    from tfvae.evaluation import evaluate, format_report
    from tfvae.export.exporter import export_run

    run = tfvae.fit(bars_npz, out=str(tmp_path / "h"), model="hvae", hidden="16", latent_dim=3, batch_size=64,
                    epochs=2, progress=False)
    trained = tfvae.load(run.run_dir)
    report = evaluate(trained, k=50, max_test_examples=32)
    m = report["metrics"]
    assert {"active_units_z1", "active_units_z2"} <= set(m) and m["active_units_z2"] == m["active_units"]
    assert len(report["posterior_mean_variance_z1"]) == 3
    assert "of z1" in format_report(report) and "(Monte Carlo)" in format_report(report)
    export_run(trained, str(tmp_path / "exp"), name="h", quantize=("none",), n_eval=64)
    saved = tf.saved_model.load(str(tmp_path / "exp" / "saved_model" / "h" / "1"))
    z1, z2 = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(saved.signatures["decode_levels"](z1=tf.constant(z1), z2=tf.constant(z2))["images"],
                               trained.model.decode_levels(z1, z2).numpy(), atol=1e-5)
    readme = (tmp_path / "exp" / "README.md").read_text()
    assert "the top latent z2, decoded through z1 = E[z1|z2]" in readme and "`decode_levels`" in readme
