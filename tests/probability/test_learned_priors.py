"""The learned priors (`--prior mog`, `--prior vamp`): their densities by hand, their Monte Carlo KL
against a large-sample average, the VampPrior's pseudo-inputs, log p(x) never below the bounds
where it is exact, and what the command line refuses."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfvae

from conftest import FAMILY_SHAPE, ROOT, family_images, family_model, one_error_line, run_cli


def _mixture_log_density(z, weights, loc, scale):
    """log sum_k w_k N(z; loc_k, diag(scale_k^2)) in float64 numpy, z (..., d)."""
    z = np.asarray(z, np.float64)[..., None, :]
    loc, scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
    comp = -0.5 * np.sum(((z - loc) / scale) ** 2 + np.log(2 * np.pi * scale ** 2), axis=-1)
    top = comp.max(axis=-1, keepdims=True)
    return (top + np.log(np.sum(np.asarray(weights, np.float64) * np.exp(comp - top), axis=-1, keepdims=True)))[..., 0]


def _vamp(**kw):
    m = family_model(model="vae", prior="vamp", prior_components=7, **kw)
    m.initialize(family_images(20, seed=3), seed=11)
    return m


def test_the_vampprior_is_the_mean_of_the_posteriors_at_its_pseudo_inputs():
    m = _vamp()
    u = np.clip(m.prior.layer["pseudo_inputs"].numpy(), 0, 1)
    enc = m.encoder(u)
    loc, scale = enc["loc"].numpy(), enc["scale"].numpy()
    z = np.random.default_rng(0).normal(size=(4, 9, 3)).astype(np.float32) * 2
    by_hand = _mixture_log_density(z, np.full(7, 1 / 7), loc, scale)
    np.testing.assert_allclose(m.prior.log_prob(tf.constant(z)).numpy(), by_hand, rtol=1e-5, atol=1e-4)
    # the same as TFP's mixture distribution, and what the exports draw from
    np.testing.assert_allclose(m.prior.distribution().log_prob(z).numpy(), by_hand, rtol=1e-5, atol=1e-4)
    mix = m.prior.mixture()
    np.testing.assert_allclose(mix["weights"], np.full(7, 1 / 7), rtol=1e-6)
    np.testing.assert_allclose(mix["loc"], loc, rtol=1e-6)
    np.testing.assert_allclose(mix["scale"], scale, rtol=1e-6)
    assert {a.dtype for a in mix.values()} == {np.dtype(np.float32)}  # as the exported graphs take them
    assert m.prior.description == "a VampPrior of 7 pseudo-inputs"
    mog = family_model(model="vae", prior="mog", prior_components=4).prior
    assert mog.description == "a learned mixture of 4 Gaussians"
    assert {a.dtype for a in mog.mixture().values()} == {np.dtype(np.float32)}
    assert m.prior.layer.name == mog.layer.name == "prior"  # the name the saved files key its variables by
    from tfvae.probability.priors import MixtureOfGaussians

    assert MixtureOfGaussians(3, 4, layer=mog.layer).layer is mog.layer  # a loaded model's layer is kept
    wide = MixtureOfGaussians(4, 500)
    wide.layer.build(None)
    assert 0.93 < np.std(wide.components()[1].numpy()) < 1.07  # the means start at N(0, 1) draws


def test_pseudo_inputs_start_as_training_images_or_as_noise():
    images = family_images(20, seed=3)
    m = _vamp()
    u = m.prior.layer["pseudo_inputs"].numpy()
    assert u.shape == (7, *FAMILY_SHAPE)
    # each pseudo-input is one of the training images plus N(0, 0.01) noise, distinct images
    nearest = [int(np.argmin(np.abs(images - v).reshape(20, -1).max(axis=1))) for v in u]
    assert len(set(nearest)) == 7
    residual = u - images[nearest]
    assert 0.005 < residual.std() < 0.015 and np.abs(residual).max() < 0.06
    np.testing.assert_array_equal(u, _vamp().prior.layer["pseudo_inputs"].numpy())  # a function of the seed
    # as many pseudo-inputs as images: each image once; more: images repeat
    for n, distinct in ((7, 7), (4, 4)):
        few = family_model(model="vae", prior="vamp", prior_components=7)
        few.initialize(images[:n], seed=11)
        v = few.prior.layer["pseudo_inputs"].numpy()
        nearest = [int(np.argmin(np.abs(images[:n] - p).reshape(n, -1).max(axis=1))) for p in v]
        assert len(set(nearest)) == distinct and np.abs(v - images[:n][nearest]).max() < 0.06
    noise = family_model(model="vae", prior="vamp", prior_components=7, prior_init="noise")
    noise.initialize(images, seed=11)
    v = noise.prior.layer["pseudo_inputs"].numpy()
    assert abs(v.mean() - 0.05) < 0.005 and abs(v.std() - 0.01) < 0.004


def test_the_pseudo_inputs_and_the_encoder_both_learn_from_the_bound():
    m = _vamp(mc_samples=2)
    x = tf.constant(family_images(binary=True))
    noise = m.draw_noise(len(x), [1, 2])
    with tf.GradientTape() as tape:
        loss, metrics = m.loss(x, noise, {"kl_weight": 1.0})
        total = tf.reduce_mean(loss)
    grad = tape.gradient(total, m.prior.layer["pseudo_inputs"])
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
    assert set(metrics) == {"loss", "log_px_z", "kl_mc", "elbo"}
    assert m.prior.trainable_variables == [m.prior.layer["pseudo_inputs"]]


def test_the_monte_carlo_kl_estimates_the_large_sample_average():
    """--prior mog: KL(q || p) = E_q[log q(z) - log p(z)]; the bound's estimate over L draws against
    the average over 400,000 independent numpy draws from q."""
    m = family_model(model="vae", prior="mog", prior_components=4, mc_samples=4000)
    x = tf.constant(family_images(2, binary=True))
    noise = m.draw_noise(2, [3, 4])
    _, metrics = m.loss(x, noise, {"kl_weight": 1.0})
    enc = m.encoder(x)
    loc, scale = enc["loc"].numpy().astype(np.float64), enc["scale"].numpy().astype(np.float64)
    mix = m.prior.mixture()
    rng = np.random.default_rng(9)
    for i in range(2):
        z = loc[i] + scale[i] * rng.standard_normal((400_000, 3))
        log_q = np.sum(-0.5 * ((z - loc[i]) / scale[i]) ** 2 - np.log(scale[i]) - 0.5 * math.log(2 * math.pi), axis=1)
        diff = log_q - _mixture_log_density(z, mix["weights"], mix["loc"], mix["scale"])
        se = diff.std() / math.sqrt(4000)  # the standard error of the 4000-sample estimate
        assert abs(float(metrics["kl_mc"][i]) - diff.mean()) < 4 * se
        assert diff.mean() > 0  # a KL


def test_the_mixture_prior_samples_follow_its_components():
    m = family_model(model="vae", prior="mog", prior_components=3, latent_dim=2)
    m.prior.layer["loc"].assign([[-4.0, 0.0], [4.0, 0.0], [0.0, 6.0]])
    m.prior.layer["logits"].assign(np.log([0.2, 0.3, 0.5]))
    z = m.prior.sample(20000, [1, 2]).numpy()
    np.testing.assert_array_equal(z, m.prior.sample(20000, [1, 2]).numpy())
    share = [np.mean(z[:, 0] < -2), np.mean(z[:, 0] > 2), np.mean(z[:, 1] > 3)]
    np.testing.assert_allclose(share, [0.2, 0.3, 0.5], atol=0.02)
    # the manifold's ticks are the mixture's marginal quantiles
    ticks = m.prior.marginal_quantiles([0.1, 0.5, 0.9], (0, 1))
    below = [[np.mean(z[:, j] < ticks[i, j]) for j in (0, 1)] for i in range(3)]
    np.testing.assert_allclose(below, [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], atol=0.015)


def _one_dimensional_vae(prior):
    """A VAE on 36 binary pixels with one latent dimension: log p(x) = log int p(x|z) p(z) dz is
    exact by quadrature on a fine grid. q(z|x) is made N(0, 3^2) for every x, wider than any
    posterior here, so that importance sampling converges within the test's k."""
    m = family_model(model="vae", prior=prior, latent_dim=1, hidden="6", prior_components=3)
    if prior == "vamp":
        m.initialize(family_images(10, seed=5), seed=1)
    if prior == "expost":  # three posteriors, as fit-prior stores them
        m.prior.fit(np.log([0.2, 0.5, 0.3]), [[-1.0], [0.5], [2.0]], [[0.5], [1.0], [0.7]])
    head = m.encoder.get_layer("posterior")
    head.loc_layer.kernel.assign(np.zeros_like(head.loc_layer.kernel.numpy()))
    head.raw_scale_layer.kernel.assign(np.zeros_like(head.raw_scale_layer.kernel.numpy()))
    head.raw_scale_layer.bias.assign([np.log(np.expm1(3.0))])
    return m  # (the VampPrior's components are then N(0, 3^2) too: p(z) is what prior.log_prob says)


@pytest.mark.parametrize("prior", ["mog", "vamp", "expost"])
def test_the_importance_sampled_log_px_is_exact_in_the_limit_and_never_below_the_elbo(prior):
    from tfvae.evaluation import bound_metrics, log_likelihood

    m = _one_dimensional_vae(prior)
    x = family_images(3, seed=8, binary=True)
    grid = np.linspace(-12, 12, 24001, dtype=np.float32)[:, None]
    out = m.decoder(grid)["logits"].numpy().reshape(len(grid), -1).astype(np.float64)
    flat = x.reshape(3, -1).astype(np.float64)
    log_px_z = flat @ out.T - np.sum(np.logaddexp(0, out), axis=1)  # (3, grid)
    log_pz = m.prior.log_prob(tf.constant(grid)).numpy().astype(np.float64)
    exact = np.log(np.sum(np.exp(log_px_z + log_pz), axis=1) * (grid[1, 0] - grid[0, 0]))
    estimate = log_likelihood(m, x, k=20000, seed=3)
    np.testing.assert_allclose(estimate, exact, atol=0.02)
    elbo = bound_metrics(m, x, samples=2000)["elbo"]
    assert np.all(elbo <= exact + 1e-3) and np.all(estimate >= elbo)


def test_the_command_line_refuses_options_the_prior_ignores(capsys, bars_npz, tmp_path):
    cases = [
        (["--prior-components", "5"], "--prior-components is the size of --prior mog or vamp"),
        (["--prior", "mog", "--prior-init", "noise"], "--prior-init sets the VampPrior's pseudo-inputs"),
        (["--prior", "vamp", "--free-bits", "0.5"], "--free-bits needs a KL per latent dimension in closed form"),
        (["--prior", "gmm"], "'gmm' is not one of 'normal', 'mog', 'vamp'"),
        (["--prior", "vamp", "--prior-components", "0"], "--prior-components must be an integer > 0"),
    ]
    for extra, message in cases:
        code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", tmp_path / "x", "--epochs", "1", *extra)
        assert code != 0 and message in one_error_line(err), (extra, err)


def test_a_learned_prior_trains_exports_and_the_edge_runner_draws_from_it(bars_npz, tmp_path):
    kw = dict(model="vae", prior="vamp", prior_components=6, hidden="16", latent_dim=2, batch_size=64, epochs=3,
              learning_rate=0.01, progress=False)
    run = tfvae.fit(bars_npz, out=str(tmp_path / "vamp"), **kw)
    trained = tfvae.load(run.run_dir)
    prior = trained.model.prior.mixture()
    assert trained.model.prior.layer.name == "prior" and prior["loc"].shape == (6, 2)
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
    np.testing.assert_allclose(z.mean(0), prior["weights"] @ prior["loc"], atol=0.15)
    # the SavedModel's sample signature draws from the same prior inside the graph
    saved = tf.saved_model.load(str(tmp_path / "exp" / "saved_model" / "vamp" / "1"))
    drawn = saved.signatures["sample"](n=tf.constant(4000))["z"].numpy()
    np.testing.assert_allclose(drawn.mean(0), z.mean(0), atol=0.15)
    np.testing.assert_allclose(drawn.std(0), z.std(0), rtol=0.1)


def test_early_stopping_keeps_the_learned_prior_of_the_best_epoch(bars_npz, tmp_path):
    import json

    import keras

    from tfvae.rundir import RunDir

    run = tfvae.fit(bars_npz, out=str(tmp_path / "es"), model="vae", prior="mog", prior_components=2, hidden="16",
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


def test_the_training_line_names_the_prior(capsys, bars_npz, tmp_path):
    code, out, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", tmp_path / "v", "--prior", "vamp",
                             "--prior-components", "4", "--hidden", "8", "-z", "2", "-b", "64", "-e", "1")
    assert code == 0, err
    assert "training vae (mlp, prior a VampPrior of 4 pseudo-inputs)" in out + err


def _class_vamp(classes=3, per_class=2):
    m = family_model(model="vae", condition="label", label_classes=classes, prior="vamp",
                     prior_components=classes * per_class)
    images, labels = family_images(30, seed=3), np.arange(30) % classes
    m.initialize(images, seed=11, labels=labels)
    return m, images, labels


def test_the_per_class_vampprior_is_each_class_mean_of_its_posteriors():
    """--prior vamp with --condition label: p(z|y) = (1/K_y) sum_k q(z | u_yk, y), by hand from the
    conditional encoder at class y's pseudo-inputs; unbound, the mixture of all components."""
    m, images, labels = _class_vamp()
    prior = m.prior
    assert prior.description == "a VampPrior per class (2 pseudo-inputs for each of 3 classes)"
    np.testing.assert_array_equal(prior.component_class, [0, 0, 1, 1, 2, 2])
    u = prior.layer["pseudo_inputs"].numpy()
    for row, c in enumerate(prior.component_class):  # each starts as a training image of its class (+ noise)
        nearest = np.abs(images - u[row]).reshape(len(images), -1).max(axis=1)
        assert labels[np.argmin(nearest)] == c and nearest.min() < 0.06
    enc = m.encoder([np.clip(u, 0, 1), np.eye(3, dtype=np.float32)[prior.component_class]])
    loc, scale = enc["loc"].numpy(), enc["scale"].numpy()
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 1], np.int32)
    bound = prior.given(tf.constant(y))
    z3 = (rng.normal(size=(4, 5, 3)) * 2).astype(np.float32)  # (batch, samples, d)
    by_hand = np.stack([_mixture_log_density(z3[b], [0.5, 0.5], loc[2 * y[b]:2 * y[b] + 2],
                                             scale[2 * y[b]:2 * y[b] + 2]) for b in range(4)])
    np.testing.assert_allclose(bound.log_prob(tf.constant(z3)).numpy(), by_hand, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bound.log_prob(tf.constant(z3[:, 0])).numpy(), by_hand[:, 0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bound.distribution().log_prob(z3[:, 0]).numpy(), by_hand[:, 0], rtol=1e-5, atol=1e-4)
    # the Monte Carlo KL over the bound's samples: mean_l log q(z_l) - log p(z_l | y)
    q_loc, q_scale = rng.normal(size=(4, 3)).astype(np.float32), rng.uniform(0.5, 1.5, (4, 3)).astype(np.float32)
    from tfvae.lazy import tfd

    q = tfd.Independent(tfd.Normal(q_loc, q_scale), reinterpreted_batch_ndims=1)
    log_q = np.sum(-0.5 * ((z3 - q_loc[:, None]) / q_scale[:, None]) ** 2 - np.log(q_scale[:, None])
                   - 0.5 * math.log(2 * math.pi), axis=-1)
    np.testing.assert_allclose(bound.kl(q, tf.constant(z3)).numpy(), (log_q - by_hand).mean(axis=1),
                               rtol=1e-5, atol=1e-4)
    from tfvae.errors import TfvaeError

    with pytest.raises(TfvaeError, match="needs the labels"):
        prior.kl(q, tf.constant(z3))
    # unbound: every class's components with equal weights, and what the exports draw from
    np.testing.assert_allclose(prior.log_prob(tf.constant(z3)).numpy(),
                               _mixture_log_density(z3, np.full(6, 1 / 6), loc, scale), rtol=1e-5, atol=1e-4)
    mix = prior.mixture()
    np.testing.assert_array_equal(mix["component_class"], [0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(mix["loc"], loc, rtol=1e-6)


def test_the_per_class_vampprior_draws_from_the_components_of_the_label():
    """Seeded draws, draws inside an exported graph and the edge runner's draws for label y come
    from class y's components, each with its weight, then loc + scale * eps."""
    from tfvae.export.tflite import draw_prior
    from tfvae.probability.priors import ClassMixture

    loc = tf.constant([[-20.0], [-10.0], [10.0], [20.0]])
    scale = tf.constant([[1.0], [1.0], [2.0], [2.0]])
    y = np.repeat([0, 1], 10000).astype(np.int32)
    bound = ClassMixture(loc, scale, 2, tf.constant(y))
    seeded = bound.sample(20000, tf.constant([3, 4])).numpy()[:, 0]
    np.testing.assert_array_equal(seeded, bound.sample(20000, tf.constant([3, 4])).numpy()[:, 0])
    mixture = {"weights": np.full(4, 0.25), "loc": loc.numpy(), "scale": scale.numpy(),
               "component_class": np.array([0, 0, 1, 1])}
    for z in (seeded, bound.sample_in_graph(tf.constant(20000)).numpy()[:, 0], draw_prior(mixture, 20000, 5, y)[:, 0]):
        zero, one = z[:10000], z[10000:]
        assert zero.max() < 0 < one.min()  # only the label's components
        assert abs(np.mean(zero < -15) - 0.5) < 0.02 and abs(np.mean(one > 15) - 0.5) < 0.02
        np.testing.assert_allclose([zero[zero < -15].std(), one[one > 15].std()], [1, 2], rtol=0.05)
    one_label = ClassMixture(loc, scale, 2, tf.constant([1])).sample(500, tf.constant([1, 1])).numpy()
    assert one_label.shape == (500, 1) and one_label.min() > 0  # one label for every draw
    weighted = draw_prior({**mixture, "weights": np.array([0.1, 0.3, 0.5, 0.1])}, 20000, 6, y)[:, 0]
    assert abs(np.mean(weighted[:10000] < -15) - 0.25) < 0.02  # within the class, by the weights (0.1 of 0.4)


def test_the_per_class_vampprior_needs_a_multiple_of_the_classes(capsys, tmp_path):
    from tfvae.errors import ConfigError

    with pytest.raises(ConfigError, match="give --prior-components a multiple of 3"):
        family_model(model="vae", condition="label", label_classes=3, prior="vamp", prior_components=7)
    from tfvae.errors import TfvaeError

    m, images, _ = _class_vamp()
    with pytest.raises(TfvaeError, match="give their labels"):
        m.initialize(images, seed=1)


def test_the_ex_post_prior_is_the_mixture_it_holds():
    """--prior expost (fit-prior): p(z) = sum_k w_k N(z; loc_k, scale_k^2), by hand; per class,
    p(z|y) over class y's K/C components with their weights normalized within the class; its
    draws by weight; nothing trained; what fit refuses to store."""
    from tfvae.errors import ConfigError, TfvaeError
    from tfvae.export.tflite import draw_prior

    rng = np.random.default_rng(4)
    loc, scale = rng.normal(size=(6, 3)).astype(np.float32), rng.uniform(0.2, 1.5, (6, 3)).astype(np.float32)
    log_w = np.log([0.1, 0.3, 0.2, 0.2, 0.15, 0.05]).astype(np.float32) + 2.0  # up to a constant
    z3 = (rng.normal(size=(4, 5, 3)) * 1.5).astype(np.float32)
    plain = family_model(model="vae", prior="expost", prior_components=6)
    assert plain.prior.description == "an ex-post mixture of 6 Gaussians fitted to the aggregate posterior"
    plain.prior.fit(log_w, loc, scale)
    assert plain.prior.trainable_variables == [] and plain.kl_metric == "kl_mc"
    weights = [0.1, 0.3, 0.2, 0.2, 0.15, 0.05]
    np.testing.assert_allclose(plain.prior.log_prob(tf.constant(z3)).numpy(),
                               _mixture_log_density(z3, weights, loc, scale), rtol=1e-5, atol=1e-4)
    m = family_model(model="vae", condition="label", label_classes=3, prior="expost", prior_components=6)
    prior = m.prior
    prior.fit(log_w, loc, scale)
    assert prior.description == ("an ex-post mixture per class, 2 Gaussians for each of 3 classes, fitted to its "
                                 "aggregate posterior")
    within = np.array([[0.25, 0.75], [0.5, 0.5], [0.75, 0.25]])  # each class's weights, normalized
    y = np.array([2, 0, 1, 2], np.int32)
    by_hand = np.stack([_mixture_log_density(z3[b], within[y[b]], loc[2 * y[b]:2 * y[b] + 2],
                                             scale[2 * y[b]:2 * y[b] + 2]) for b in range(4)])
    bound = prior.given(tf.constant(y))
    np.testing.assert_allclose(bound.log_prob(tf.constant(z3)).numpy(), by_hand, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bound.log_prob(tf.constant(z3[:, 0])).numpy(), by_hand[:, 0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bound.distribution().log_prob(z3[:, 0]).numpy(), by_hand[:, 0], rtol=1e-5, atol=1e-4)
    mix = prior.mixture()  # unbound: equally frequent classes
    np.testing.assert_array_equal(mix["component_class"], [0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(mix["weights"], within.reshape(-1) / 3, rtol=1e-5)
    np.testing.assert_allclose(mix["scale"], scale)
    # draws: a component of the label's by its weight (seeded, inside an exported graph, the edge runner's)
    far = np.array([[-20.0], [-10.0], [10.0], [20.0], [40.0], [50.0]], np.float32)
    one = family_model(model="vae", condition="label", label_classes=3, prior="expost", prior_components=6,
                       latent_dim=1)
    one.prior.fit(log_w, far, np.ones((6, 1), np.float32))
    labels = np.repeat(np.arange(3), 20000).astype(np.int32)
    bound = one.prior.given(tf.constant(labels))
    for z in (bound.sample(60000, tf.constant([3, 4])).numpy()[:, 0], bound.sample_in_graph(tf.constant(60000)).numpy()[:, 0],
              draw_prior(one.prior.mixture(), 60000, 5, labels)[:, 0]):
        nearest = np.abs(z[:, None] - far[None, :, 0]).argmin(axis=1)
        np.testing.assert_array_equal(nearest // 2, labels)  # only the label's components
        np.testing.assert_allclose([np.mean(nearest[labels == c] == 2 * c) for c in range(3)], within[:, 0], atol=0.015)
    with pytest.raises(TfvaeError, match="needs the labels"):
        prior.kl(None, tf.constant(z3))
    with pytest.raises(ValueError, match="6 components of 3 dimensions"):
        prior.fit(log_w[:5], loc[:5], scale[:5])
    with pytest.raises(TfvaeError, match="not finite"):
        prior.fit(log_w, np.where(loc > 1, np.nan, loc), scale)
    with pytest.raises(ConfigError, match="multiple of 3"):
        family_model(model="vae", condition="label", label_classes=3, prior="expost", prior_components=7)


def test_em_fits_a_known_mixture_and_never_lowers_the_likelihood():
    """fit_mixture on 20,000 draws of a known two-component mixture in 2-d: its weights, means and
    scales come back; the mean log-density rises at every EM step (the EM guarantee); the same
    seed gives the same fit; the variance floor holds."""
    from tfvae.expost import fit_mixture

    rng = np.random.default_rng(0)
    n = 20000
    first = rng.random(n) < 0.3
    z = np.where(first[:, None], rng.normal([-3.0, 1.0], [0.5, 1.0], (n, 2)), rng.normal([2.0, -1.0], [1.5, 0.3], (n, 2)))
    log_w, loc, scale, history = fit_mixture(z, 2, seed=1, iterations=60)
    order = np.argsort(loc[:, 0])
    np.testing.assert_allclose(np.exp(log_w[order]), [0.3, 0.7], atol=0.01)
    np.testing.assert_allclose(loc[order], [[-3.0, 1.0], [2.0, -1.0]], atol=0.05)
    np.testing.assert_allclose(scale[order], [[0.5, 1.0], [1.5, 0.3]], rtol=0.03)
    assert np.all(np.diff(history) >= -1e-9) and history[-1] > history[0] + 0.1
    def normal(mean, sd):
        mean, sd = np.array(mean), np.array(sd)
        return np.prod(np.exp(-0.5 * ((z - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), axis=1)

    exact = np.log(0.3 * normal([-3, 1], [0.5, 1.0]) + 0.7 * normal([2, -1], [1.5, 0.3]))
    assert abs(history[-1] - exact.mean()) < 0.01  # the fit's log-density of the points is the true one's
    again = fit_mixture(z, 2, seed=1, iterations=60)
    np.testing.assert_array_equal(again[1], loc)
    chunked = fit_mixture(z, 2, seed=1, iterations=60, chunk=999)  # the E-step a chunk of points at a time
    np.testing.assert_allclose(chunked[1], loc, rtol=1e-9)
    np.testing.assert_allclose(chunked[3], history, rtol=1e-9)
    _, _, tight, _ = fit_mixture(np.repeat(z[:3], 10, axis=0), 3, seed=0, iterations=5, floor=0.04)
    assert tight.min() >= 0.2 - 1e-9  # three points, three components: each variance held at the floor
    from tfvae.errors import ConfigError

    with pytest.raises(ConfigError, match="at least as many points"):
        fit_mixture(z[:3], 4, seed=0)
    start = fit_mixture(z[:5], 5, seed=2, iterations=0)[1]  # as many components as points: each starts at one
    np.testing.assert_array_equal(start[np.argsort(start[:, 0])], z[:5][np.argsort(z[:5, 0])])


def test_an_em_step_is_the_textbook_update():
    """Two EM iterations against the textbook formulas written out with broadcasting (float64):
    responsibilities r_nk = w_k N(z_n; mu_k, s_k^2) / sum_j ..., then w_k = sum_n r_nk / N,
    mu_k = sum_n r_nk z_n / sum_n r_nk, s_k^2 = sum_n r_nk (z_n - mu_k)^2 / sum_n r_nk; the reported
    mean log-density too. A point far from the rest (1e3) keeps every row's normalization honest."""
    from tfvae.expost import fit_mixture

    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(size=(300, 3)) * [1.0, 2.0, 0.5] + [0.5, 0.0, 1.0], [[1e3, 0.0, 0.0]]])
    init = fit_mixture(z, 4, seed=7, iterations=0)
    w, mu, var = np.exp(init[0]), init[1], init[2] ** 2
    by_hand = []
    for _ in range(2):
        comp = -0.5 * np.sum((z[:, None, :] - mu[None]) ** 2 / var[None] + np.log(2 * np.pi * var[None]), axis=-1)
        joint = np.log(w)[None] + comp
        top = joint.max(axis=1, keepdims=True)
        log_density = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
        by_hand.append(log_density.mean())
        r = np.exp(joint - log_density[:, None])
        w = r.sum(axis=0) / len(z)
        mu = (r.T @ z) / r.sum(axis=0)[:, None]
        var = np.maximum(np.einsum("nk,nkd->kd", r, (z[:, None, :] - mu[None]) ** 2) / r.sum(axis=0)[:, None], 1e-4)
    log_w, loc, scale, history = fit_mixture(z, 4, seed=7, iterations=2, chunk=100)
    np.testing.assert_allclose(np.exp(log_w), w, rtol=1e-9)
    np.testing.assert_allclose(loc, mu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scale ** 2, var, rtol=1e-7)
    np.testing.assert_allclose(history[:2], by_hand, rtol=1e-12)


def test_the_ex_post_prior_picks_distinct_training_images_of_each_class():
    from tfvae.errors import ConfigError
    from tfvae.expost import pick_images

    labels = np.repeat([0, 1, 3], [10, 20, 30])[np.random.default_rng(0).permutation(60)]
    picks = pick_images(labels, 60, 16, [0, 1, 2, 3], seed=5)  # class 2 has no training images
    assert len(picks) == 16
    for c in (0, 1, 3):
        mine = picks[4 * c:4 * c + 4]
        assert len(set(mine)) == 4 and np.all(labels[mine] == c)
    np.testing.assert_array_equal(picks[8:12], -1)  # N(0, I) components, never drawn
    np.testing.assert_array_equal(picks, pick_images(labels, 60, 16, [0, 1, 2, 3], seed=5))
    assert not np.array_equal(picks, pick_images(labels, 60, 16, [0, 1, 2, 3], seed=6))
    plain = pick_images(None, 60, 25, None, seed=1)
    assert len(set(plain)) == 25 and plain.max() < 60
    np.testing.assert_array_equal(pick_images(None, 60, 60, None, seed=1), np.arange(60))  # every image, once
    every = pick_images(labels, 60, 40, [0, 1, 2, 3], seed=5)  # class 0's 10 images: all of them
    np.testing.assert_array_equal(every[:10], np.flatnonzero(labels == 0))
    lonely = np.array([0, 1, 1, 1])
    with pytest.raises(ConfigError, match="class 0 has 1"):
        pick_images(lonely, 4, 4, [0, 1], seed=0)
    with pytest.raises(ConfigError, match="class 0 has 10: give --components 40 or fewer"):
        pick_images(labels, 60, 48, [0, 1, 2, 3], seed=5)
    with pytest.raises(ConfigError, match="has 60: give --components 60 or fewer"):
        pick_images(None, 60, 61, None, seed=5)


def test_the_mixture_densities_at_their_own_means_and_at_the_limits_of_their_sizes():
    """At a component's own mean the per-example density is -sum log scale - d/2 log 2 pi (a
    squared distance of 0, not clipped); one component per class is allowed; a wrong shape of any
    one of fit's arrays is refused; a class without training images leaves the pseudo-inputs of
    the later classes as images of theirs."""
    from tfvae.probability.priors import log_diagonal_gaussians_per_example

    loc = np.array([[[0.3, -0.2, 1.0]]], np.float32)
    scale = np.array([[[0.1, 0.5, 2.0]]], np.float32)
    at_mean = log_diagonal_gaussians_per_example(tf.constant(loc[:, 0]), tf.constant(loc), tf.constant(scale)).numpy()
    np.testing.assert_allclose(at_mean, [[-np.log(scale).sum() - 1.5 * np.log(2 * np.pi)]], rtol=1e-6)
    one_each = family_model(model="vae", condition="label", label_classes=3, prior="expost", prior_components=3)
    assert one_each.prior.per_class == 1
    rng = np.random.default_rng(0)
    loc, scale, log_w = rng.normal(size=(3, 3)), np.ones((3, 3)), np.zeros(3)
    for bad in ((log_w[:2], loc, scale), (log_w, loc, scale[:2]), (log_w, loc[:2], scale[:2])):
        with pytest.raises(ValueError, match="3 components of 3 dimensions"):
            one_each.prior.fit(*bad)
    m = family_model(model="vae", condition="label", label_classes=3, prior="vamp", prior_components=6)
    images, labels = family_images(30, seed=3), np.arange(30) % 3
    keep = labels != 0  # no training image of class 0
    m.initialize(images[keep], seed=11, labels=labels[keep])
    u = m.prior.layer["pseudo_inputs"].numpy()
    for row in range(2, 6):
        nearest = np.abs(images[keep] - u[row]).reshape(keep.sum(), -1).max(axis=1)
        assert nearest.min() < 0.06 and labels[keep][np.argmin(nearest)] == row // 2
