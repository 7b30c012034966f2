"""Why the MLP training step is not faster: the matrix products alone, compiled by XLA versus
run by TensorFlow's oneDNN kernels, per epoch of the MLP VAE 784-400-20 at batch 128.

    python bench/xla_vs_onednn.py

The training step runs every product of the forward and backward pass: it prints the time of
468 steps (one epoch) of exactly those products, with the same shapes, both ways. On the 2-core
machine of the README, XLA's CPU dot took 1.13 s and oneDNN 0.72 s: the fully fused XLA step is
bound by XLA's dot, and the unfused oneDNN step loses more to ~60 separate elementwise kernels
(2.06 s per epoch measured).
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

B, STEPS = 128, 468
rng = np.random.default_rng(0)
W = [tf.Variable(rng.normal(size=s).astype("float32") * 0.05) for s in ((784, 400), (400, 40), (20, 400), (400, 784))]
x = tf.constant(rng.random((B, 784)).astype("float32"))


def products():
    h = x @ W[0]
    e = h @ W[1]
    z = e[:, :20]
    d = z @ W[2]
    o = d @ W[3]
    dw3, gd = tf.transpose(d) @ o, o @ tf.transpose(W[3])  # the backward pass's products
    dw2, gz = tf.transpose(z) @ gd, gd @ tf.transpose(W[2])
    ge = tf.concat([gz, gz], 1)
    dw1, gh = tf.transpose(h) @ ge, ge @ tf.transpose(W[1])
    dw0 = tf.transpose(x) @ gh
    return sum(tf.reduce_sum(t) for t in (dw0, dw1, dw2, dw3))


for name, jit in (("XLA (jit_compile=True)", True), ("oneDNN (no XLA)", False)):
    step = tf.function(products, jit_compile=jit)

    @tf.function
    def epoch(n):
        total = tf.constant(0.0)
        for _ in tf.range(n):
            total += step()
            W[0].assign_add(tf.fill(W[0].shape, 1e-9))  # the weights change, as in training
        return total

    epoch(tf.constant(5))
    t0 = time.perf_counter()
    epoch(tf.constant(STEPS))
    print(f"{name:<24} {time.perf_counter() - t0:.2f} s per epoch of matrix products")
