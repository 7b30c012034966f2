"""FusedAdam: Keras's Adam, one fused kernel per variable, the same numbers."""

import keras
import numpy as np
import tensorflow as tf


def test_fused_adam_matches_keras_adam():
    from tfvae.optim import FusedAdam

    rng = np.random.default_rng(0)
    start = rng.normal(size=(5, 3)).astype(np.float32)
    grads = [rng.normal(size=(5, 3)).astype(np.float32) for _ in range(6)]
    results = []
    for opt in (keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-4), FusedAdam(learning_rate=0.01, epsilon=1e-4)):
        v = keras.Variable(start)
        for g in grads:
            opt.apply_gradients([(tf.constant(g), v)])
        results.append(v.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0], start)
