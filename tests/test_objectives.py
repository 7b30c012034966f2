"""The bounds, with the prior as an argument: ELBO <= IWAE_k <= log p(x), exact for the true posterior."""

import math

import numpy as np
import tensorflow as tf

from tfvae import objectives
from tfvae.probability import Likelihood, StandardNormal

from conftest import D, K_LAT, S, analytic_elbo, exact_posterior_encoder, linear_decoder, ppca, ppca_data

PRIOR = StandardNormal(K_LAT)


def _log_weights(encoder, decoder, x, k, seed):
    lik = Likelihood("gaussian", "fixed", S)
    eps = tf.random.stateless_normal([len(x), k, K_LAT], [seed, 0])
    log_w, _, _ = objectives.log_importance_weights(encoder, decoder, lik, PRIOR, tf.constant(x), eps, training=False)
    return log_w


def _iwae(encoder, decoder, x, k, seed):
    return objectives.iwae_bound(_log_weights(encoder, decoder, x, k, seed)).numpy()


def test_exact_posterior_makes_every_importance_weight_equal_p_x():
    w, b = ppca()
    x, log_px = ppca_data(w, b)
    encoder, decoder = exact_posterior_encoder(w, b), linear_decoder(w, b)
    log_w = _log_weights(encoder, decoder, x, 64, seed=1).numpy()
    # log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z when q is the true posterior
    np.testing.assert_allclose(log_w, np.broadcast_to(log_px[:, None], log_w.shape), atol=2e-3)
    np.testing.assert_allclose(_iwae(encoder, decoder, x, 16, 2), log_px, atol=2e-3)
    np.testing.assert_allclose(analytic_elbo(encoder, w, b, x), log_px, atol=2e-3)


def test_elbo_le_iwae_le_log_px_and_iwae_rises_with_k():
    w, b = ppca()
    x, log_px = ppca_data(w, b)
    encoder = exact_posterior_encoder(w, b, shift=0.6, scale_factor=1.8)  # a poor q
    decoder = linear_decoder(w, b)
    exact_elbo = analytic_elbo(encoder, w, b, x)
    assert np.all(log_px - exact_elbo > 0.05), "a poor q leaves a visible gap"

    # The Monte Carlo ELBO the VAE trains on estimates the closed-form one without bias.
    lik = Likelihood("gaussian", "fixed", S)
    eps = tf.random.stateless_normal([len(x), 4000, K_LAT], [7, 0])
    mc = objectives.elbo(encoder, decoder, lik, PRIOR, tf.constant(x), eps)["elbo"].numpy()
    _, log_px_z, _ = objectives.log_importance_weights(encoder, decoder, lik, PRIOR, tf.constant(x), eps)
    se = log_px_z.numpy().std(axis=1, ddof=1) / math.sqrt(4000)
    assert np.all(np.abs(mc - exact_elbo) < 5 * se + 1e-3)

    means, errors = {}, {}
    for k in (1, 10, 100, 1000):  # E[IWAE_k], estimated from 20 independent draws
        draws = np.stack([_iwae(encoder, decoder, x, k, seed) for seed in range(20)])
        means[k] = draws.mean(axis=0)
        errors[k] = draws.std(axis=0, ddof=1) / math.sqrt(len(draws))
    for k in means:  # ELBO <= IWAE_k <= log p(x), within 4 standard errors of the estimate
        assert np.all(exact_elbo <= means[k] + 4 * errors[k] + 1e-3), k
        assert np.all(means[k] <= log_px + 4 * errors[k] + 1e-3), k
    averaged = [float(np.mean(means[k])) for k in (1, 10, 100, 1000)]
    assert averaged == sorted(averaged), f"IWAE_k must rise with k: {averaged}"
    assert abs(averaged[0] - float(np.mean(exact_elbo))) < 0.1  # IWAE_1 is the ELBO
    # ... towards log p(x): at k = 1000 the gap is a small fraction of the ELBO's
    assert float(np.mean(log_px - means[1000])) < 0.25 * float(np.mean(log_px - exact_elbo))


def _numpy_elbo(model, x, eps):
    """-ELBO's terms recomputed in float64 numpy from the encoder's and decoder's outputs alone: z =
    mu + sigma * eps, log p(x|z) by the closed-form Gaussian density (each variance kind) or the
    Bernoulli cross-entropy, KL(N(mu, sigma^2) || N(0, I)) by its formula."""
    enc = {k: v.numpy().astype(np.float64) for k, v in model.encoder(x, training=False).items()}
    z = enc["loc"] + enc["scale"] * eps[:, 0, :]
    dec = {k: v.numpy().astype(np.float64) for k, v in model.decoder(z.astype(np.float32), training=False).items()}
    flat = x.reshape(len(x), -1).astype(np.float64)
    if "logits" in dec:
        logits = dec["logits"].reshape(len(x), -1)
        log_px_z = np.sum(flat * logits - np.logaddexp(0.0, logits), axis=1)
    else:
        loc = dec["loc"].reshape(len(x), -1)
        scale = np.broadcast_to(dec["scale"], dec["loc"].shape).reshape(len(x), -1) if "scale" in dec else \
            np.full_like(loc, model.config.gaussian_scale)
        log_px_z = np.sum(-0.5 * ((flat - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi), axis=1)
    kl = 0.5 * np.sum(enc["loc"] ** 2 + enc["scale"] ** 2 - 1.0 - 2.0 * np.log(enc["scale"]), axis=1)
    return log_px_z, kl, dec


def test_the_elbo_and_the_score_against_numpy_from_the_networks_outputs():
    """Every likelihood kind through a built model: its ELBO terms and its anomaly score (held_out_terms,
    the score signature's computation) equal the formulas recomputed from the networks' outputs.
    The Gaussian kinds' scales are far from 1 here, so a scale dropped or mis-broadcast shows."""
    from conftest import family_images, family_model

    seed = tf.constant([3, 9], tf.int64)
    for options in ({"likelihood": "bernoulli"}, {"likelihood": "gaussian", "gaussian_variance": "pixel"},
                    {"likelihood": "gaussian", "gaussian_variance": "image"},
                    {"likelihood": "gaussian", "gaussian_variance": "fixed", "gaussian_scale": 0.2}):
        model = family_model(model="vae", **options)
        x = family_images(6, binary=options["likelihood"] == "bernoulli")
        eps = tf.random.stateless_normal([len(x), 1, model.eps_dim], seed).numpy()
        log_px_z, kl, dec = _numpy_elbo(model, x, eps)
        if options.get("gaussian_variance") == "image":
            assert dec["scale"].shape == (len(x), 1, 1, 1)  # one learned scale per image
        terms = model.elbo(x, tf.constant(eps), training=False)
        np.testing.assert_allclose(terms["log_px_z"].numpy(), log_px_z, rtol=1e-5, err_msg=str(options))
        np.testing.assert_allclose(terms["kl"].numpy(), kl, rtol=1e-5, atol=1e-6, err_msg=str(options))
        np.testing.assert_allclose(terms["elbo"].numpy(), log_px_z - kl, rtol=1e-5, err_msg=str(options))
        score = model.held_out_terms(x, seed)["score"].numpy()
        np.testing.assert_allclose(score, kl - log_px_z, rtol=1e-5, err_msg=str(options))


def test_a_dequantized_run_trains_on_k_plus_u_over_256():
    """The training loss of a run with --dequantize uniform is the loss of (k + u) / 256 with the
    step's uniforms, not of the 8-bit pixels."""
    from tfvae import models
    from tfvae.config import make_config

    base = dict(model="vae", likelihood="gaussian", latent_dim=2, hidden=(8,))
    model = models.build(make_config({**base, "dequantize": "uniform"}), (4, 4, 1))
    raw = models.build(make_config({**base, "dequantize": "none"}), (4, 4, 1), parts=model.parts)
    x = tf.constant(np.random.default_rng(1).integers(0, 256, (5, 4, 4, 1)) / 255.0, tf.float32)
    noise = model.draw_noise(5, tf.constant([3, 4], tf.int64))
    u = noise["dequantize"]
    assert "dequantize" not in raw.draw_noise(5, tf.constant([3, 4], tf.int64))
    rest = {k: v for k, v in noise.items() if k != "dequantize"}
    y = (tf.round(tf.reshape(x, [5, -1]) * 255) + u) / 256
    want, _ = raw.loss(tf.reshape(y, x.shape), rest)
    got, _ = model.loss(x, noise)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert np.all(np.abs(got.numpy() - raw.loss(x, rest)[0].numpy()) > 1e-3)


class InTraining:
    """A network whose output `key` is multiplied by `factor` when it is called in training mode:
    what a dropout or batch-normalization layer changes between training and inference, made
    deterministic."""

    def __init__(self, net, key, factor=1.5):
        self.net, self.key, self.factor = net, key, factor

    def __call__(self, x, training=None):
        out = dict(self.net(x, training=False))
        if training is True:
            out[self.key] = out[self.key] * self.factor
        return out


def test_the_networks_run_in_training_mode_when_training_and_in_inference_mode_when_evaluating():
    w, b = ppca()
    x, _ = ppca_data(w, b, n=8)
    x = tf.constant(x)
    enc, dec = exact_posterior_encoder(w, b), linear_decoder(w, b)
    lik = Likelihood("gaussian", "fixed", S)
    eps = tf.random.stateless_normal([8, 2, K_LAT], [0, 1])
    bounds = {
        "elbo": lambda e, d, **t: objectives.elbo(e, d, lik, PRIOR, x, eps, **t)["elbo"],
        "log_w": lambda e, d, **t: objectives.log_importance_weights(e, d, lik, PRIOR, x, eps, **t)[0],
        "score": lambda e, d, **t: objectives.score_function_surrogate(e, d, lik, PRIOR, x, eps, **t)[0]["elbo"],
        "decode": lambda e, d, **t: objectives.decode_samples(d, lik, x, enc(x)["loc"][:, None], **t),
    }
    for name, f in bounds.items():
        inference = f(enc, dec, training=False).numpy()
        for nets in [(InTraining(enc, "loc"), dec), (enc, InTraining(dec, "loc"))]:
            if name == "decode" and nets[1] is dec:
                continue
            np.testing.assert_array_equal(f(*nets, training=False).numpy(), inference, err_msg=name)
            training = f(*nets).numpy()  # the default is training
            assert np.all(np.abs(training - inference) > 1e-3), name
            np.testing.assert_array_equal(f(*nets, training=True).numpy(), training, err_msg=name)

    # the contractive penalty is a training loss: its encoder runs in training mode
    weights = tf.constant(np.random.default_rng(0).normal(size=(D, 4)), tf.float32)
    code = lambda x, training=None: {"code": tf.tanh(tf.reshape(x, [len(x), -1]) @ weights)}  # noqa: E731
    plain, _ = objectives.contractive_penalty(code, x)
    doubled, _ = objectives.contractive_penalty(InTraining(code, "code", 2.0), x)
    np.testing.assert_allclose(doubled.numpy(), 4 * plain.numpy(), rtol=1e-5)
