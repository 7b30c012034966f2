"""The objectives of the course, one function each, in nats per example.

Autoencoders (loss to minimise):
  ae    L(x, g(f(x)))                              reconstruction loss from the likelihood
  sae   L(x, g(f(x))) + lambda * ||h||_1           sparse code
  dae   L(x, g(f(x~)))   x~ = corrupt(x)           compared with the CLEAN x
  cae   L(x, g(f(x))) + lambda * ||dh/dx||_F^2     exact Jacobian of the encoder

Variational autoencoders (bound to maximise; the loss is its negative):
  vae   ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)),   z = loc + scale * eps,  L samples of eps
  iwae  log (1/k) sum_i p(x, z_i) / q(z_i|x),          z_i ~ q(z|x)   (Burda et al., 2016)

Randomness comes in as tensors (`draw_noise`), so every function here is deterministic given
its inputs: a step is reproducible from (seed, step), and N replicas that each take a slice of
one global batch see exactly the noise one device would.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tfvae.probability import flatten, diagonal_gaussian, kl_divergence, kl_per_dimension, standard_normal_prior


# --------------------------------------------------------------------------- randomness
def draw_noise(config, batch_size: int, image_shape, seed):
    """All random numbers one training step needs for a batch, batch axis first.

    Keys: `binarize` (uniforms, dynamic binarization), `corrupt` (uniforms for masking noise,
    standard normals for Gaussian noise), `eps` (standard normals of shape (batch, samples,
    latent_dim) for the reparameterization).
    """
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    shape = [batch_size, math.prod(image_shape)]  # flat: elementwise work on (batch, pixels) is fastest
    noise = {}
    if config.binarization == "dynamic":
        noise["binarize"] = tf.random.stateless_uniform(shape, seeds[0])
    if config.model == "dae":
        if config.noise == "masking":
            noise["corrupt"] = tf.random.stateless_uniform(shape, seeds[1])
        else:
            noise["corrupt"] = tf.random.stateless_normal(shape, seeds[1])
    if config.variational:
        samples = config.iw_samples if config.model == "iwae" else config.mc_samples
        noise["eps"] = tf.random.stateless_normal([batch_size, samples, config.latent_dim], seeds[2])
    return noise


def binarize(x, uniforms):
    """Dynamic binarization: pixel = 1 with probability equal to its intensity."""
    return tf.reshape(tf.cast(flatten(uniforms) < flatten(x), x.dtype), tf.shape(x))


def corrupt(x, kind: str, level: float, noise):
    """The denoising autoencoder's corruption of x.

    masking: each input set to 0 with probability `level` (nu); gaussian: x + level * N(0, 1).
    """
    flat, noise = flatten(x), flatten(noise)
    if kind == "masking":
        out = flat * tf.cast(noise >= level, x.dtype)
    else:
        out = flat + level * noise
    return tf.reshape(out, tf.shape(x))


# --------------------------------------------------------------------------- autoencoders
def reconstruction_loss(decoder, likelihood, code, x):
    return likelihood.reconstruction_loss(decoder(code), x)


def sparsity_penalty(code):
    """||h||_1 per example."""
    return tf.reduce_sum(tf.abs(code), axis=-1)


def contractive_penalty(encoder, x):
    """||dh/dx||_F^2 per example, from the exact Jacobian of the encoder. Returns (penalty, h)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = encoder(x, training=True)["code"]
    jacobian = tape.batch_jacobian(h, x)  # (batch, code, height, width, channels)
    return tf.reduce_sum(tf.square(jacobian), axis=tf.range(1, tf.rank(jacobian))), h


def autoencoder_objective(config, encoder, decoder, likelihood, x, noise):
    """(loss, metrics) per example for ae, sae, dae and cae."""
    metrics = {}
    if config.model == "dae":
        x_in = corrupt(x, config.noise, config.noise_level, noise["corrupt"])
        code = encoder(x_in, training=True)["code"]
        recon = reconstruction_loss(decoder, likelihood, code, x)  # against the clean input
        loss = recon
    elif config.model == "cae":
        penalty, code = contractive_penalty(encoder, x)
        recon = reconstruction_loss(decoder, likelihood, code, x)
        loss = recon + config.contractive * penalty
        metrics["penalty"] = penalty
    else:
        code = encoder(x, training=True)["code"]
        recon = reconstruction_loss(decoder, likelihood, code, x)
        loss = recon
        if config.model == "sae":
            penalty = sparsity_penalty(code)
            loss = recon + config.l1 * penalty
            metrics["penalty"] = penalty
    return loss, {"loss": loss, "reconstruction": recon, **metrics}


# --------------------------------------------------------------------------- variational
def _decode_samples(decoder, likelihood, x, z):
    """log p(x|z) for z of shape (batch, samples, latent): shape (batch, samples)."""
    flat = tf.reshape(z, [-1, z.shape[-1]])
    return likelihood.log_prob_samples(decoder(flat, training=True), x, tf.shape(z)[1])


def elbo(encoder, decoder, likelihood, x, eps):
    """The evidence lower bound and its terms, per example.

    ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)), the expectation estimated with the L samples of
    `eps` (shape (batch, L, latent)) through z = loc + scale * eps, the KL in closed form.
    """
    enc = encoder(x, training=True)
    q = diagonal_gaussian(enc["loc"], enc["scale"])
    prior = standard_normal_prior(eps.shape[-1])
    z = enc["loc"][:, None, :] + enc["scale"][:, None, :] * eps  # reparameterization
    log_px_z = tf.reduce_mean(_decode_samples(decoder, likelihood, x, z), axis=1)  # E_q[log p(x|z)]
    kl = kl_divergence(q, prior)  # KL(q || p), closed form
    return {
        "log_px_z": log_px_z,
        "kl": kl,
        "elbo": log_px_z - kl,
        "kl_per_dim": kl_per_dimension(q, prior),
    }


def vae_objective(config, encoder, decoder, likelihood, x, noise, kl_weight):
    """(loss, metrics): loss = -(E_q[log p(x|z)] - kl_weight * KL), KL floored by free bits.

    kl_weight is beta times the warm-up ramp. The reported ELBO is always the true bound.
    """
    terms = elbo(encoder, decoder, likelihood, x, noise["eps"])
    kl = terms["kl"]
    if config.free_bits > 0:  # each example's KL in each dimension counts at least free_bits nats
        kl = tf.reduce_sum(tf.maximum(terms["kl_per_dim"], config.free_bits), axis=-1)
    loss = -(terms["log_px_z"] - kl_weight * kl)
    return loss, {"loss": loss, "log_px_z": terms["log_px_z"], "kl": terms["kl"], "elbo": terms["elbo"]}


def log_importance_weights(encoder, decoder, likelihood, x, eps, training=True):
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for z_i = loc + scale * eps_i.

    Returns (log_w of shape (batch, k), log p(x|z_i), posterior q).
    """
    enc = encoder(x, training=training)
    loc, scale = enc["loc"][:, None, :], enc["scale"][:, None, :]
    z = loc + scale * eps
    q = diagonal_gaussian(loc, scale)
    prior = standard_normal_prior(eps.shape[-1])
    log_px_z = _decode_samples(decoder, likelihood, x, z)
    log_w = log_px_z + prior.log_prob(z) - q.log_prob(z)
    return log_w, log_px_z, diagonal_gaussian(enc["loc"], enc["scale"])


def iwae_bound_from_log_weights(log_w):
    """log (1/k) sum_i w_i, computed with log-sum-exp."""
    k = tf.cast(tf.shape(log_w)[-1], log_w.dtype)
    return tf.reduce_logsumexp(log_w, axis=-1) - tf.math.log(k)


def iwae_objective(config, encoder, decoder, likelihood, x, noise):
    """(loss, metrics): the loss is minus the k-sample importance-weighted bound."""
    log_w, log_px_z, q = log_importance_weights(encoder, decoder, likelihood, x, noise["eps"])
    bound = iwae_bound_from_log_weights(log_w)
    kl = kl_divergence(q, standard_normal_prior(noise["eps"].shape[-1]))
    mean_log_px_z = tf.reduce_mean(log_px_z, axis=1)
    return -bound, {
        "loss": -bound,
        "log_px_z": mean_log_px_z,
        "kl": kl,
        "elbo": mean_log_px_z - kl,
        "iwae_bound": bound,
    }


def metric_names(config) -> tuple:
    if config.model == "iwae":
        return ("loss", "log_px_z", "kl", "elbo", "iwae_bound")
    if config.variational:
        return ("loss", "log_px_z", "kl", "elbo")
    if config.model in ("sae", "cae"):
        return ("loss", "reconstruction", "penalty")
    return ("loss", "reconstruction")

