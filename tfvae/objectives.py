"""The course's formulas, one function each, in nats per example; the families (tfvae.models) use them.

Autoencoders (loss to minimise):
  L(x, g(f(x)))                              the likelihood's reconstruction loss
  + lambda * ||h||_1                         sparse code (`sparsity_penalty`)
  L(x, g(f(x~))),  x~ = corrupt(x)           denoising, compared with the CLEAN x (`corrupt`)
  + lambda * ||dh/dx||_F^2                   contractive, exact Jacobian (`contractive_penalty`)

Variational autoencoders (bounds to maximise), the prior an argument:
  ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)),  z = loc + scale * eps, L samples of eps  (`elbo`)
  its gradient by the score function (REINFORCE), z held fixed     (`score_function_surrogate`)
  log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)   (Burda et al., 2016)  (`iwae_bound`)

Randomness comes in as tensors, so every function here is deterministic given its inputs: a step
is reproducible from (seed, step), and N replicas that each take a slice of one global batch see
exactly the noise one device would.
"""

from __future__ import annotations

from tfvae.lazy import tf
from tfvae.probability import flatten
from tfvae.probability.posteriors import DiagonalGaussianPosterior

POSTERIOR = DiagonalGaussianPosterior


# --------------------------------------------------------------------------- noise on the data
def binarize(x, uniforms):
    """Dynamic binarization: pixel = 1 with probability equal to its intensity."""
    return tf.reshape(tf.cast(flatten(uniforms) < flatten(x), x.dtype), tf.shape(x))


def dequantize(x, uniforms):
    """Uniform dequantization of 8-bit pixels x = k / 255: (k + u) / 256, u ~ U(0, 1), a density on
    [0, 1] whose log, minus D log 256, bounds the log-probability of the levels k (Theis et al., 2016)."""
    levels = tf.round(flatten(x) * 255.0)
    return tf.reshape((levels + flatten(uniforms)) / 256.0, tf.shape(x))


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


# --------------------------------------------------------------------------- variational
def decode_samples(decoder, likelihood, x, z, training=True):
    """log p(x|z) for z of shape (batch, samples, latent): shape (batch, samples)."""
    flat = tf.reshape(z, [-1, z.shape[-1]])
    return likelihood.log_prob_samples(decoder(flat, training=training), x, tf.shape(z)[1])


def elbo(encoder, decoder, likelihood, prior, x, eps, training=True, posterior=POSTERIOR):
    """The evidence lower bound and its terms, per example:

        ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)),

    the expectation estimated with the L samples of `eps` (shape (batch, L, latent)) through
    z = loc + scale * eps; the KL from the prior (`Prior.kl`): closed form where it has one, else
    the Monte Carlo estimate over the same z. Returns {log_px_z, kl, elbo, kl_per_dim (when the
    prior has a per-dimension closed form)}.
    """
    enc = encoder(x, training=training)
    q = posterior.distribution(enc)  # q(z|x)
    z = posterior.reparameterize(enc, eps)  # z = loc + scale * eps
    log_px_z = tf.reduce_mean(decode_samples(decoder, likelihood, x, z, training), axis=1)  # E_q[log p(x|z)]
    kl = prior.kl(q, z)  # KL(q(z|x) || p(z))
    terms = {"log_px_z": log_px_z, "kl": kl, "elbo": log_px_z - kl}
    per_dim = prior.kl_per_dimension(q)
    if per_dim is not None:
        terms["kl_per_dim"] = per_dim
    return terms


def score_function_surrogate(encoder, decoder, likelihood, prior, x, eps, kl_weight=1.0, training=True,
                             posterior=POSTERIOR):
    """The ELBO's terms, as `elbo` gives them, and a surrogate whose gradient is the score-function
    (REINFORCE) estimator of the ELBO's gradient instead of the reparameterized one:

        grad_phi E_q[f(z)] = E_q[(f(z) - b) grad_phi log q(z|x)],   z ~ q(z|x) held fixed,

    with f(z) = log p(x|z) (the KL in closed form keeps its exact gradient) or, for a prior without
    a closed-form KL, f(z) = log p(x|z) - kl_weight * (log q(z|x) - log p(z)). The baseline b is
    the leave-one-out mean of f: over the image's other L - 1 samples when L >= 2, else over the
    batch's other images (it does not depend on z_i, so the estimator stays unbiased). The
    decoder's gradient is the usual one (z is fixed either way).

    Returns (terms, surrogate): `surrogate` per example equals 0 in value and carries the
    encoder's score-function gradient; add it to the loss -(log p(x|z) - w KL).
    """
    enc = encoder(x, training=training)
    q = posterior.distribution(enc)
    z = tf.stop_gradient(posterior.reparameterize(enc, eps))  # a draw of q, no path back to phi
    per_sample = decode_samples(decoder, likelihood, x, z, training)  # (batch, L)
    log_q = posterior.distribution({k: v[:, None, :] for k, v in enc.items()}).log_prob(z)  # (batch, L)
    kl = prior.kl(q, z)
    f = per_sample
    if not prior.closed_form_kl:
        f = per_sample - kl_weight * (log_q - prior.log_prob(z))
    f = tf.stop_gradient(f)
    samples, batch = tf.shape(f)[1], tf.shape(f)[0]
    if f.shape[1] is not None and f.shape[1] >= 2:
        b = (tf.reduce_sum(f, axis=1, keepdims=True) - f) / tf.cast(samples - 1, f.dtype)
    else:
        n = tf.cast(tf.maximum(batch - 1, 1), f.dtype)
        b = (tf.reduce_sum(f, axis=0, keepdims=True) - f) / n
    score = tf.reduce_mean((f - b) * log_q, axis=1)
    log_px_z = tf.reduce_mean(per_sample, axis=1)
    terms = {"log_px_z": log_px_z, "kl": kl, "elbo": log_px_z - kl}
    per_dim = prior.kl_per_dimension(q)
    if per_dim is not None:
        terms["kl_per_dim"] = per_dim
    return terms, -(score - tf.stop_gradient(score))


def log_importance_weights(encoder, decoder, likelihood, prior, x, eps, training=True, posterior=POSTERIOR):
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for z_i = loc + scale * eps_i.

    Returns (log_w of shape (batch, k), log p(x|z_i), posterior q).
    """
    enc = encoder(x, training=training)
    z = posterior.reparameterize(enc, eps)
    q_per_sample = posterior.distribution({k: v[:, None, :] for k, v in enc.items()})
    log_px_z = decode_samples(decoder, likelihood, x, z, training)
    log_w = log_px_z + prior.log_prob(z) - q_per_sample.log_prob(z)
    return log_w, log_px_z, posterior.distribution(enc)


def iwae_bound(log_w):
    """log (1/k) sum_i w_i, computed with log-sum-exp over the last axis."""
    k = tf.cast(tf.shape(log_w)[-1], log_w.dtype)
    return tf.reduce_logsumexp(log_w, axis=-1) - tf.math.log(k)

