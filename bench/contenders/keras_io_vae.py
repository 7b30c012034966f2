"""The Keras contender: `model.fit` with a `train_step` written the way the keras.io VAE example
(https://keras.io/examples/generative/vae/) writes it, on the same MLP VAE and recipe.

A `Sampling` layer, an encoder and a decoder as functional models, a `VAE(keras.Model)` whose
train_step computes the summed binary cross-entropy and the closed-form KL under a GradientTape
and applies Adam 1e-3; batch 128; 60,000 Fashion-MNIST images, binarized dynamically. Prints one
JSON line: seconds per epoch. Run by bench/train_speed.py in its own process.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402


class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def build():
    inputs = keras.Input(shape=(784,))
    h = layers.Dense(400, activation="relu")(inputs)
    z_mean = layers.Dense(20, name="z_mean")(h)
    z_log_var = layers.Dense(20, name="z_log_var")(h)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")
    latent = keras.Input(shape=(20,))
    d = layers.Dense(400, activation="relu")(latent)
    decoder = keras.Model(latent, layers.Dense(784)(d), name="decoder")
    return encoder, decoder


class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        data = ops.cast(keras.random.uniform(ops.shape(data)) < data, "float32")  # dynamic binarization
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            logits = self.decoder(z)
            reconstruction_loss = ops.mean(ops.sum(
                ops.binary_crossentropy(data, logits, from_logits=True), axis=1))
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t0)


def main():
    images, epochs = sys.argv[1], int(sys.argv[2])
    xla = sys.argv[3:] == ["--xla"]  # not the example's way: XLA and 20 steps per call, for reference
    x = np.load(images).reshape(-1, 784)
    keras.utils.set_random_seed(0)
    vae = VAE(*build())
    if xla:
        vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True, steps_per_execution=20)
    else:
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))  # the example's: on a CPU, Keras 3 leaves XLA off
    timer = EpochTimer()
    history = vae.fit(x, epochs=epochs, batch_size=128, verbose=0, callbacks=[timer])
    print(json.dumps({"seconds_per_epoch": timer.times, "final_loss": float(history.history["total_loss"][-1])}))


if __name__ == "__main__":
    main()
