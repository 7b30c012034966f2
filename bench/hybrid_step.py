"""The other way to split the MLP VAE's training step: matrix products in TensorFlow's oneDNN
kernels, everything between them (reparameterization, KL, loss, ReLU gradients, Adam) in small
XLA-compiled functions, with the backward pass written out by hand. One epoch (468 steps of 128).

    python bench/hybrid_step.py            # the functions between the products under XLA
    python bench/hybrid_step.py --plain    # the same hand-written step with no XLA at all

On the 2-core machine of the README this took 1.83 s per epoch, slower than tfvae's single fused
XLA step (1.55 s): the six launches of its five XLA functions and of the separate kernels between them
cost more than oneDNN's faster products save. With --plain (ReluGrad, a two-term cross-entropy
and TensorFlow's fused ResourceApplyAdam in place of the XLA functions) it took 1.65-1.74 s.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--plain", action="store_true", help="no XLA: plain TensorFlow kernels between the products")
PLAIN = parser.parse_args().plain

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

B, STEPS, D, H, Z = 128, 468, 784, 400, 20
rng = np.random.default_rng(0)


def var(shape, scale):
    return tf.Variable((rng.normal(size=shape) * scale).astype("float32"))


params = [var((D, H), 0.05), var((H,), 0), var((H, 2 * Z), 0.05), var((2 * Z,), 0),
          var((Z, H), 0.05), var((H,), 0), var((H, D), 0.05), var((D,), 0)]
ms = [tf.Variable(tf.zeros_like(p)) for p in params]
vs = [tf.Variable(tf.zeros_like(p)) for p in params]
t_var = tf.Variable(0.0)
X = tf.constant((rng.random((STEPS * B, D)) > 0.5).astype("float32"))  # binary images
XLA = {} if PLAIN else dict(jit_compile=True)

@tf.function(**XLA)
def cluster_latent(e, eps):
    mu, lv = e[:, :Z], e[:, Z:]
    sigma = tf.exp(0.5 * lv)
    z = mu + sigma * eps
    kl = 0.5 * tf.reduce_sum(tf.square(mu) + tf.exp(lv) - 1.0 - lv, axis=1)
    return z, sigma, kl

@tf.function(**XLA)
def cluster_loss(logits, x):
    if PLAIN:  # fewer kernels than the seven of sigmoid_cross_entropy_with_logits
        rec = tf.reduce_sum(tf.nn.softplus(logits) - x * logits, axis=1)
    else:
        rec = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=1)
    g = (tf.sigmoid(logits) - x) / B
    return rec, g

@tf.function(**XLA)
def cluster_relu_back(g, h):
    g = tf.raw_ops.ReluGrad(gradients=g, features=h) if PLAIN else tf.where(h > 0, g, 0.0)
    return g, tf.reduce_sum(g, axis=0)

@tf.function(**XLA)
def cluster_latent_back(gz, eps, sigma, e):
    mu, lv = e[:, :Z], e[:, Z:]
    g_mu = gz + mu / B
    g_lv = gz * eps * sigma * 0.5 + 0.5 * (tf.exp(lv) - 1.0) / B
    g_e = tf.concat([g_mu, g_lv], axis=1)
    return g_e, tf.reduce_sum(g_e, axis=0)

@tf.function(**XLA)
def adam(grads):
    t_var.assign_add(1.0)
    lr, b1, b2, epsilon = 1e-3, 0.9, 0.999, 1e-7
    a = lr * tf.sqrt(1 - b2 ** t_var) / (1 - b1 ** t_var)
    for p, m, v, g in zip(params, ms, vs, grads):
        m.assign(b1 * m + (1 - b1) * g)
        v.assign(b2 * v + (1 - b2) * g * g)
        p.assign_sub(a * m / (tf.sqrt(v) + epsilon))

def adam_fused_kernels(grads):
    """Adam as TensorFlow's fused kernel, one per variable (Keras's Adam runs several ops each)."""
    t_var.assign_add(1.0)
    b1p, b2p = tf.pow(0.9, t_var), tf.pow(0.999, t_var)
    for p, m, v, g in zip(params, ms, vs, grads):
        tf.raw_ops.ResourceApplyAdam(var=p.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                                     lr=tf.constant(1e-3), beta1=tf.constant(0.9), beta2=tf.constant(0.999),
                                     epsilon=tf.constant(1e-7), grad=g)

def gradients(x, eps):
    """The mean loss's gradients, by hand: products outside XLA, the rest in the functions above
    (XLA-compiled unless --plain)."""
    W1, b1, W2, b2, W3, b3, W4, b4 = params
    h1 = tf.nn.relu(tf.matmul(x, W1) + b1)            # grappler: _FusedMatMul
    e = tf.matmul(h1, W2) + b2
    z, sigma, kl = cluster_latent(e, eps)
    d1 = tf.nn.relu(tf.matmul(z, W3) + b3)
    logits = tf.matmul(d1, W4) + b4
    rec, g = cluster_loss(logits, x)
    gW4, gb4 = tf.matmul(d1, g, transpose_a=True), tf.reduce_sum(g, axis=0)
    g_d1 = tf.matmul(g, W4, transpose_b=True)
    g_a3, gb3 = cluster_relu_back(g_d1, d1)
    gW3 = tf.matmul(z, g_a3, transpose_a=True)
    gz = tf.matmul(g_a3, W3, transpose_b=True)
    g_e, gb2 = cluster_latent_back(gz, eps, sigma, e)
    gW2 = tf.matmul(h1, g_e, transpose_a=True)
    g_h1 = tf.matmul(g_e, W2, transpose_b=True)
    g_a1, gb1 = cluster_relu_back(g_h1, h1)
    gW1 = tf.matmul(x, g_a1, transpose_a=True)
    return [gW1, gb1, gW2, gb2, gW3, gb3, gW4, gb4], tf.reduce_mean(rec + kl)


def step(x, eps):
    grads, loss = gradients(x, eps)
    (adam_fused_kernels if PLAIN else adam)(grads)
    return loss


def autodiff_loss(x, eps):
    W1, b1, W2, b2, W3, b3, W4, b4 = params
    e = tf.nn.relu(x @ W1 + b1) @ W2 + b2
    mu, lv = e[:, :Z], e[:, Z:]
    z = mu + tf.exp(0.5 * lv) * eps
    logits = tf.nn.relu(z @ W3 + b3) @ W4 + b4
    rec = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=1)
    return tf.reduce_mean(rec + 0.5 * tf.reduce_sum(tf.square(mu) + tf.exp(lv) - 1.0 - lv, axis=1))


# the hand-written backward pass is the autodiff one
x0, eps0 = X[:B], tf.random.normal([B, Z], seed=1)
with tf.GradientTape() as tape:
    ref_loss = autodiff_loss(x0, eps0)
ref = tape.gradient(ref_loss, params)
mine, loss0 = gradients(x0, eps0)
assert abs(float(loss0) - float(ref_loss)) < 1e-3 * abs(float(ref_loss))
for a, b in zip(mine, ref):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-5)

@tf.function
def epoch(n):
    loss = tf.constant(0.0)
    for i in tf.range(n):
        x = X[i * B:(i + 1) * B]
        eps = tf.random.normal([B, Z])
        loss = step(x, eps)
    return loss

epoch(tf.constant(3))
for _ in range(3):
    t0 = time.perf_counter()
    loss = epoch(tf.constant(STEPS)).numpy()
    print(f"oneDNN products + {'plain kernels' if PLAIN else 'XLA'} in between: {time.perf_counter() - t0:.2f} s per epoch (loss {loss:.1f})")
