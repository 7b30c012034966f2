"""Evaluation: the importance-sampled log p(x) against an exact one, active units, the report."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tfvae import models
from tfvae.config import make_config
from tfvae.data import prepare
from tfvae.evaluation import JIT_CONV_SAMPLES_PER_STEP, active_units, bound_metrics, log_likelihood, step_shape

from conftest import analytic_elbo, family_images, family_model, ppca, ppca_data, ppca_model, run_cli


def test_importance_sampled_log_px_matches_the_exact_value_and_bounds_the_elbo():
    w, b = ppca()
    x, log_px = ppca_data(w, b, n=40)
    model = ppca_model(w, b, shift=0.5, scale_factor=1.6)  # a mediocre q: the ELBO is visibly loose
    elbo = analytic_elbo(model.encoder, w, b, x)
    est = log_likelihood(model, x, k=5000, seed=1, batch_size=16, chunk=1000)
    # within 0.05 nats per image of the exact log p(x), on average and per image within 0.3
    assert abs(est.mean() - log_px.mean()) < 0.05
    np.testing.assert_allclose(est, log_px, atol=0.3)
    assert est.mean() > elbo.mean() + 0.3  # no lower than the ELBO, by a clear margin here
    assert np.all(est >= elbo - 0.05)
    # the MC ELBO the report shows agrees with the closed form
    assert abs(bound_metrics(model, x, samples=500)["elbo"] - elbo.mean()) < 0.1


def test_log_px_does_not_depend_on_chunk_or_batch_size_and_is_seeded():
    w, b = ppca()
    x, _ = ppca_data(w, b, n=23)
    model = ppca_model(w, b, shift=0.4, scale_factor=1.5)
    ref = log_likelihood(model, x, k=450, seed=3, batch_size=23, chunk=450)
    for batch, chunk in ((5, 100), (7, 200), (23, 50), (1, 1000)):
        np.testing.assert_allclose(log_likelihood(model, x, k=450, seed=3, batch_size=batch, chunk=chunk), ref,
                                   rtol=0, atol=1e-4)
    np.testing.assert_array_equal(log_likelihood(model, x, k=450, seed=3), ref)
    assert not np.allclose(log_likelihood(model, x, k=450, seed=4), ref, atol=1e-4)
    # image j's samples depend on its index in the whole set: a slice evaluated apart agrees
    np.testing.assert_allclose(log_likelihood(model, x[9:], k=450, seed=3, first_index=9), ref[9:], rtol=0, atol=1e-4)
    np.testing.assert_allclose(log_likelihood(model, x, k=450), log_likelihood(model, x, k=450, seed=0, first_index=0),
                               rtol=0, atol=1e-4)
    # k = 1 is a one-sample ELBO; k outside 1..10^8 is refused
    assert log_likelihood(model, x[:2], k=1).shape == (2,)
    assert log_likelihood(model, x[:0], k=10**8).shape == (0,)
    assert ref.dtype == np.float64

    class Progress:  # what the command's progress bar is told: images done so far
        def start(self, what, total, unit):
            self.started, self.seen = (what, total, unit), []

        def update(self, done):
            self.seen.append(done)

        def finish(self, done):
            self.seen.append(("finished", done))

    bar = Progress()
    log_likelihood(model, x, k=100, batch_size=5, progress=bar)
    assert bar.started == ("log p(x)", 23, "image") and bar.seen == [5, 10, 15, 20, 23, ("finished", 23)]
    for bad in (0, 10**8 + 1):
        with pytest.raises(ValueError, match=f"k must be between 1 and 10\\^8 importance samples, got {bad}"):
            log_likelihood(model, x[:2], k=bad)


def test_xla_conv_steps_are_bounded_and_give_the_same_estimate(monkeypatch):
    # XLA's CPU convolutions hold ~0.5 MB per sample: 100 images x 500 samples ran out of memory
    for batch, chunk in ((100, 500), (1000, 5000), (7, 100_000)):
        images, samples = step_shape("conv", batch, chunk, jit=True)
        assert images * -(-samples // 100) * 100 <= JIT_CONV_SAMPLES_PER_STEP and images >= 1 and samples >= 1
        assert step_shape("conv", batch, chunk, jit=False) == step_shape("mlp", batch, chunk, jit=True) == (batch, chunk)
    assert step_shape("conv", 100, None, jit=False) == (100, 100) and step_shape("mlp", 100, None, None) == (100, 500)
    config = make_config(dict(model="vae", network="conv", hidden="16", latent_dim=3, binarize="none"))
    model = models.build(config, (28, 28, 1))
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    plain = log_likelihood(model, x, k=300, seed=2, batch_size=3, chunk=300, jit=False)
    np.testing.assert_allclose(log_likelihood(model, x, k=300, seed=2, batch_size=3, chunk=300, jit=True), plain,
                               rtol=1e-5, atol=1e-3)
    # the sampler really runs bounded steps: with a 100-sample cap, one image and one block per step
    import tfvae.evaluation as evaluation

    steps, sample_noise = [], evaluation._sample_noise

    def recording(ids, first_block, n_blocks, latent, seed):
        steps.append((int(ids.shape[0]), n_blocks))
        return sample_noise(ids, first_block, n_blocks, latent, seed)

    monkeypatch.setattr(evaluation, "_sample_noise", recording)
    monkeypatch.setattr(evaluation, "JIT_CONV_SAMPLES_PER_STEP", 100)
    capped = log_likelihood(model, x, k=300, seed=2, batch_size=3, chunk=300, jit=True)
    assert steps and set(steps) == {(1, 1)}, steps
    np.testing.assert_allclose(capped, plain, rtol=1e-5, atol=1e-3)


def test_an_unused_latent_dimension_is_inactive():
    w, b = ppca()
    w = w.copy()
    w[:, 1] = 0.0  # the decoder ignores z_1: its posterior is the prior, its mean never moves
    x, _ = ppca_data(w, b, n=200)
    model = ppca_model(w, b)
    n_active, variance = active_units(model, x)
    assert n_active == 2
    assert variance[1] < 1e-10 and variance[0] > 0.01 and variance[2] > 0.01
    kl = bound_metrics(model, x)["kl_per_dim"]
    assert kl[1] < 1e-6 and kl[0] > 0.1


def test_evaluate_command_reports_the_protocol_and_json(capsys, tmp_path, runs):
    js = tmp_path / "r.json"
    code, stdout, err = run_cli(capsys, "evaluate", runs["vae2"], "-k", "200", "--max-test-examples", "50",
                                "--json", js)
    assert code == 0, err
    assert "protocol: 50 test images, binarized once (seed" in stdout and "k = 200 importance samples" in stdout
    report = json.loads(js.read_text())
    m = report["metrics"]
    assert report["protocol"]["test_images"] == 50 and report["protocol"]["k"] == 200
    assert m["log_likelihood"] >= m["elbo"] - 0.5  # the IS estimate sits above the ELBO
    assert 0 <= m["active_units"] <= 2
    assert len(report["kl_per_dim"]) == 2
    # with k = 1 the importance-sampled estimate is a one-sample ELBO; 200 samples tighten it
    js1 = tmp_path / "r1.json"
    code, _, err = run_cli(capsys, "evaluate", runs["vae2"], "-k", "1", "--max-test-examples", "50", "--json", js1)
    assert code == 0, err
    m1 = json.loads(js1.read_text())["metrics"]
    assert m["log_likelihood"] > m1["log_likelihood"] + 5.0, (m1["log_likelihood"], m["log_likelihood"])
    code, stdout, _ = run_cli(capsys, "evaluate", runs["ae"], "--max-test-examples", "20")
    assert code == 0 and "reconstruction loss" in stdout and "log p(x)" not in stdout


def test_evaluation_reads_8_bit_images_as_pixels_in_0_1(runs):
    import tfvae
    from tfvae.evaluation import active_units, log_likelihood, per_image_terms

    model = tfvae.load(str(runs["vae2"])).model
    x8 = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
    xf = x8.astype(np.float32) / 255.0
    a, b = per_image_terms(model, x8, seed=1), per_image_terms(model, xf, seed=1)
    np.testing.assert_allclose(a["elbo"], b["elbo"], rtol=1e-6)
    np.testing.assert_allclose(log_likelihood(model, x8, k=10), log_likelihood(model, xf, k=10), rtol=1e-6)
    np.testing.assert_allclose(active_units(model, x8)[1], active_units(model, xf)[1], rtol=1e-6)


def test_a_learned_scale_at_its_floor_is_reported_as_such(tmp_path):
    """Images of exact zeros and ones, not dequantized: the learned Gaussian scale falls to
    --min-scale on the black pixels, and evaluate says on how many, beside the density (meaningless once it is most)."""
    import tfvae
    from tfvae.evaluation import evaluate, format_report

    from conftest import make_bars

    x, y = make_bars(600, seed=3)
    x = np.where(x == 255, 255, 0).astype(np.uint8)  # no background noise: most pixels exactly 0
    np.savez(tmp_path / "bars.npz", x_train=x[:500], y_train=y[:500], x_test=x[500:], y_test=y[500:])
    result = tfvae.fit(f"npz:{tmp_path / 'bars.npz'}", out=str(tmp_path / "run"), likelihood="gaussian",
                       dequantize="none", min_scale=0.05, hidden="32", latent_dim=2, epochs=8, batch_size=32, learning_rate=0.01,
                       progress=False)
    trained = tfvae.load(result.run_dir)
    report = evaluate(trained, k=20, max_test_examples=50)
    test = trained.splits().test[:50]
    scale = trained.model.decode(trained.model.encode(test)).distribution.scale.numpy()
    expected = float(np.mean(np.broadcast_to(scale, test.shape) <= 0.05 * 1.01))
    assert report["metrics"]["scale_at_floor"] == pytest.approx(expected) and expected > 0.25
    assert "learned scale at its floor (--min-scale 0.05)" in format_report(report)
    for fraction, noted in ((0.9, True), (0.3, False)):  # the note comes when the floor holds most pixels
        report["metrics"]["scale_at_floor"] = fraction
        assert ("compares with no published number" in format_report(report)) == noted


def _evaluate_tiny(model, splits, k=50):
    import types

    from tfvae.evaluation import evaluate, format_report

    trained = types.SimpleNamespace(model=model, config=model.config, run_dir="tiny")
    report = evaluate(trained, k=k, splits=splits)
    return report, format_report(report)


def test_bits_per_dimension_of_a_dequantized_model_is_the_hand_computed_value():
    """Probabilistic PCA on 8-bit pixels, dequantized: q(z|x) is the exact posterior, so log p(y) of
    each dequantized test image is known in closed form and bits/dim = (-mean log p(y) + D ln 256) /
    (D ln 2), the change of variables to the levels' scale; evaluate prints it with its protocol."""
    from tfvae.data import ImageData
    from tfvae.exact import LinearGaussian

    m = LinearGaussian(d=6, k=3, s=0.08, scales=(0.15, 0.1, 0.05))
    m.b = np.full(6, 0.5)
    x, _ = m.data(300, seed=9)
    levels = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    splits = prepare(ImageData(levels[:200], None, levels[200:], None), binarization="none",
                     dequantization="uniform", validation_split=0.0, seed=0)
    model = m.model(dequantize="uniform")
    report, text = _evaluate_tiny(model, splits)
    y = splits.test  # (k + u) / 256
    assert np.all(np.floor(y.astype(np.float64) * 256) == levels[200:])
    by_hand = (-np.mean(m.log_px(y)) + 6 * math.log(256)) / (6 * math.log(2))
    assert report["metrics"]["bits_per_dim"] == pytest.approx(by_hand, abs=2e-5)
    assert report["metrics"]["bits_per_dim"] == pytest.approx(report["metrics"]["nll"] / (6 * math.log(2)) + 8)
    assert report["protocol"]["dequantization"] == "uniform"
    assert "dequantized once, (k + u) / 256 (seed 20140103)" in text and "in bits per dimension" in text
    assert f"{by_hand:.4f} bits/dim" in text and "D ln 256" in text


def test_bits_per_dimension_of_the_discretized_logistic_is_the_levels_probability():
    """A logistic p(x|z) whose decoder ignores z, and q(z|x) = p(z): log p(x) = sum_j log P(k_j)
    exactly, computed here from the logistic's CDF in float64, and bits/dim = -mean log p(x) / (D ln 2),
    nothing added."""
    import keras

    from tfvae.data import ImageData

    d, s = 8, 0.05
    loc = np.linspace(0.05, 0.95, d)
    z = keras.Input((2,))
    dense = keras.layers.Dense(d, kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant(np.log(loc / (1 - loc)).astype(np.float32)))
    decoder = keras.Model(z, {"loc": keras.layers.Reshape((d, 1, 1))(keras.layers.Activation("sigmoid")(dense(z)))})
    x = keras.Input((d, 1, 1))
    flat = keras.layers.Flatten()(x)
    one = keras.initializers.Constant(math.log(math.e - 1))  # softplus(bias) = 1: q(z|x) = p(z) = p(z|x)
    encoder = keras.Model(x, {"loc": keras.layers.Dense(2, kernel_initializer="zeros")(flat),
                              "scale": keras.layers.Dense(2, "softplus", kernel_initializer="zeros",
                                                          bias_initializer=one)(flat)})
    config = make_config(dict(model="vae", likelihood="logistic", gaussian_variance="fixed", gaussian_scale=s,
                              latent_dim=2))
    model = models.build(config, (d, 1, 1), parts={"encoder": encoder, "decoder": decoder})
    levels = np.random.default_rng(2).integers(0, 256, (60, d, 1, 1)).astype(np.uint8)
    splits = prepare(ImageData(levels[:30], None, levels[30:], None), binarization="none", validation_split=0.0, seed=0)
    report, text = _evaluate_tiny(model, splits, k=10)

    sigmoid = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    k = levels[30:].reshape(30, d).astype(np.float64)
    upper = np.where(k == 255, 1.0, sigmoid((k + 0.5 - 255 * loc) / (255 * s)))
    lower = np.where(k == 0, 0.0, sigmoid((k - 0.5 - 255 * loc) / (255 * s)))
    log_px = np.log(upper - lower).sum(axis=1)
    assert report["metrics"]["log_likelihood"] == pytest.approx(log_px.mean(), rel=1e-5)
    assert report["metrics"]["bits_per_dim"] == pytest.approx(-log_px.mean() / (d * math.log(2)), rel=1e-5)
    assert "8-bit levels as they are" in text and "discretized logistic's probability" in text


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "given the labels"])
def test_scale_at_floor_counts_the_decoded_scales_within_1_percent_of_the_floor(conditional):
    """Against the decoder's own scales, batch by batch (and each image decoded with its label);
    None where no scale is learned."""
    from tfvae.evaluation import scale_at_floor

    extra = {"condition": "label", "label_classes": 3} if conditional else {}
    m = family_model(model="vae", likelihood="gaussian", gaussian_variance="pixel", min_scale=0.6, **extra)
    x = family_images(n=7)
    for v in m.decoder.weights:  # a third of the pixels' scales pushed to the floor
        if v.path == "raw_scale_dense/bias":
            v.assign(np.tile([-9.0, 0.0, 0.0], 12).astype(np.float32))
        if v.path == "raw_scale_dense/kernel":
            v.assign(v.numpy() * 3)
    labels = np.array([0, 1, 2, 2, 1, 0, 1]) if conditional else None

    def at_floor(labels):
        view = m.given(tf.constant(labels)) if conditional else m
        scale = view.decode(view.encode(tf.constant(x))).distribution.scale.numpy()
        return np.mean(np.broadcast_to(scale, x.shape) <= 0.6 * 1.01)

    for y in [labels] + ([(labels + 1) % 3] if conditional else []):
        want = at_floor(y)
        assert 0 < want < 1
        assert scale_at_floor(m, x, labels=y, batch_size=3) == pytest.approx(want)
    for no_scale in (dict(likelihood="bernoulli"), dict(likelihood="gaussian", gaussian_variance="fixed"),
                     dict(likelihood="logistic", gaussian_variance="fixed")):
        assert scale_at_floor(family_model(model="vae", **no_scale, **extra), x, labels=labels) is None


def test_the_terms_of_a_conditional_model_are_conditioned_on_each_images_label():
    """Each image's terms, batch by batch, equal those of the model bound to that image's label
    alone, and the defaults are one seeded draw (seed 0, L = 1); a conditional model refuses to
    be evaluated without labels."""
    from tfvae.errors import ConfigError
    from tfvae.evaluation import per_image_terms

    m = family_model(model="vae", condition="label", label_classes=3)
    x, y = family_images(n=5, binary=True), np.array([2, 0, 1, 1, 2])
    terms = per_image_terms(m, x, labels=y, batch_size=2)
    assert terms["elbo"].dtype == np.float64 and terms["elbo"].shape == (5,)
    np.testing.assert_array_equal(terms["elbo"], per_image_terms(m, x, seed=0, batch_size=2, samples=1, labels=y)["elbo"])
    assert not np.allclose(terms["elbo"], per_image_terms(m, x, labels=(y + 1) % 3, batch_size=2)["elbo"])
    # one image at a time with its own label, 10,000 draws: the same expectation
    together = per_image_terms(m, x, labels=y, samples=10_000)
    for i in (0, 2):
        alone = per_image_terms(m, x[i:i + 1], labels=y[i:i + 1], samples=10_000)
        assert alone["log_px_z"][0] == pytest.approx(together["log_px_z"][i], abs=0.2)
        assert alone["kl"][0] == pytest.approx(terms["kl"][i], rel=1e-5)  # closed form: no noise
    np.testing.assert_allclose(bound_metrics(m, x, labels=y)["kl"], terms["kl"].mean(), rtol=1e-5)
    ll = log_likelihood(m, x, k=500, labels=y, batch_size=2)  # log p(x | y), above the ELBO given y
    assert np.all(ll > per_image_terms(m, x, labels=y, samples=2000)["elbo"] - 0.05)
    assert not np.allclose(ll, log_likelihood(m, x, k=500, labels=(y + 1) % 3, batch_size=2))
    n, variance = active_units(m, x, labels=y, batch_size=2)
    by_hand = np.concatenate([m.given(tf.constant(y[a:a + 2])).encode(tf.constant(x[a:a + 2])).numpy()
                              for a in (0, 2, 4)]).astype(np.float64).var(axis=0)
    np.testing.assert_allclose(variance, by_hand, rtol=1e-6)
    assert n == int(np.sum(by_hand > 0.01))
    for call in (lambda: per_image_terms(m, x), lambda: active_units(m, x), lambda: bound_metrics(m, x),
                 lambda: log_likelihood(m, x, k=10)):
        with pytest.raises(ConfigError, match="conditioned on the label"):
            call()


def test_active_units_per_layer_are_the_variances_of_each_layers_posterior_means():
    from tfvae.evaluation import active_units_per_layer

    m = family_model(model="hvae")
    x = family_images(n=9)
    levels = m.encode_levels(tf.constant(x))
    out = active_units_per_layer(m, x, batch_size=4, threshold=1e-4)
    assert sorted(out) == sorted(levels) and len(out) == 2
    for name, (n, variance) in out.items():
        by_hand = levels[name].numpy().astype(np.float64).var(axis=0)
        np.testing.assert_allclose(variance, by_hand, rtol=1e-4, atol=1e-9)
        assert variance.shape == (levels[name].shape[1],) and n == int(np.sum(by_hand > 1e-4)) and n > 0
    assert active_units_per_layer(family_model(model="vae"), x) == {}  # one stochastic layer
