"""Shared fixtures: small generated datasets, the real Fashion-MNIST files, quiet TensorFlow."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def make_bars(n, size=28, seed=0, channels=1):
    """Images of one bright bar on a dark background; label = orientation*size//4 + position bucket.

    Structured enough for an autoencoder to learn something in one epoch, and labelled.
    """
    rng = np.random.default_rng(seed)
    x = np.zeros((n, size, size, channels), np.uint8)
    y = np.zeros(n, np.int64)
    for i in range(n):
        vertical = rng.integers(2)
        pos = rng.integers(2, size - 4)
        width = rng.integers(2, 4)
        if vertical:
            x[i, :, pos:pos + width] = 255
        else:
            x[i, pos:pos + width, :] = 255
        y[i] = vertical * 4 + min(3, pos * 4 // size)
    noise = rng.integers(0, 30, size=x.shape, dtype=np.uint8)
    return np.maximum(x, noise), y


@pytest.fixture(scope="session")
def bars_npz(tmp_path_factory):
    """npz:FILE source of 28x28 bar images: 512 train, 128 test, with labels."""
    path = tmp_path_factory.mktemp("data") / "bars.npz"
    x, y = make_bars(640, seed=1)
    np.savez(path, x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    return f"npz:{path}"


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST IDX files from Debian's dataset-fashion-mnist package."""
    if not os.path.isfile(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"{FASHION_MNIST} is missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    return FASHION_MNIST


SMALL = dict(hidden="32", latent_dim=4, batch_size=64, epochs=1, validation_split=0.1)
