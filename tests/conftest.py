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


@pytest.fixture(scope="session")
def runs(tmp_path_factory, bars_npz):
    """Small runs of 2 epochs on the bars, trained once for the evaluation, picture and score tests."""
    from tfvae.cli.main import main

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, args in {"vae2": ["-m", "vae", "-z", "2"], "ae": ["-m", "ae", "-z", "3"],
                       "dae": ["-m", "dae", "-z", "3"], "vae1": ["-m", "vae", "-z", "1"],
                       "vae5": ["-m", "vae", "-z", "5"],
                       "vae2-noval": ["-m", "vae", "-z", "2", "--validation-split", "0"],
                       "hvae2": ["-m", "hvae", "-z", "2", "--prior", "vamp", "--prior-components", "5"]}.items():
        with pytest.raises(SystemExit) as e:
            main(["fit", "-d", bars_npz, "-o", str(root / name), "--hidden", "32", "-b", "64", "-e", "2", "-q", *args])
        assert e.value.code == 0
        out[name] = root / name
    return out


SMALL = dict(hidden="32", latent_dim=4, batch_size=64, epochs=1, validation_split=0.1)
SMALL_ARGS = ["--hidden", "32", "--latent-dim", "4", "--batch-size", "64", "--epochs", "1", "-q"]


# ------------------------------------------------------------------------------------ the command line
def run_cli(capsys, *args):
    """Runs `tfvae ARGS` in this process: (exit status, stdout, stderr)."""
    from tfvae.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(map(str, args)))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("Error: ") and "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------------ data files
def write_idx(path, array, compress=False):
    import gzip

    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    if compress:
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)


def make_idx_dir(root, n_train=20, n_test=10, compress=True, labels=True):
    rng = np.random.default_rng(0)
    ext = ".gz" if compress else ""
    x_train = rng.integers(0, 256, (n_train, 8, 8))
    x_test = rng.integers(0, 256, (n_test, 8, 8))
    write_idx(os.path.join(root, f"train-images-idx3-ubyte{ext}"), x_train, compress)
    write_idx(os.path.join(root, f"t10k-images-idx3-ubyte{ext}"), x_test, compress)
    if labels:
        write_idx(os.path.join(root, f"train-labels-idx1-ubyte{ext}"), rng.integers(0, 10, n_train), compress)
        write_idx(os.path.join(root, f"t10k-labels-idx1-ubyte{ext}"), rng.integers(0, 10, n_test), compress)
    return x_train, x_test


def closed_port():
    """A local port where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------ exact models
# Probabilistic PCA (tfvae.exact.LinearGaussian): p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I), log
# p(x) exact; W's columns orthogonal, so a diagonal q(z|x) can equal the true posterior. These
# helpers take (w, b): the default model's (ppca()), or a changed copy.
D, K_LAT, S = 6, 3, 0.5


def _exact(w=None, b=None):
    from tfvae.exact import LinearGaussian

    m = LinearGaussian(D, K_LAT, S)
    if w is not None:
        m.w, m.b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    return m


def ppca():
    m = _exact()
    return m.w, m.b


def linear_decoder(w, b):
    return _exact(w, b).decoder()


def exact_posterior_encoder(w, b, shift=0.0, scale_factor=1.0):
    """q(z|x) = the exact posterior (shift=0, scale_factor=1), or a deliberately worse one."""
    return _exact(w, b).encoder(shift, scale_factor)


def ppca_data(w, b, n=64):
    """(x, exact log p(x)) of n draws from the PPCA model."""
    return _exact(w, b).data(n)


def analytic_elbo(encoder, w, b, x):
    """E_q[log p(x|z)] - KL in closed form for the linear-Gaussian decoder."""
    return _exact(w, b).analytic_elbo(encoder, x)


def ppca_model(w, b, **q):
    """A vae of tfvae.models whose networks are the PPCA's exact (or a worse) posterior and decoder."""
    return _exact(w, b).model(**q)


def family_model(**options):
    """A small model of any family (tfvae.models.build), its weights seeded."""
    import keras

    from tfvae import models
    from tfvae.config import make_config

    config = make_config({"hidden": "8", "latent_dim": 3, **options})
    keras.utils.set_random_seed(0)
    return models.build(config, FAMILY_SHAPE)


FAMILY_SHAPE = (6, 6, 1)


def family_images(n=5, seed=0, binary=False):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *FAMILY_SHAPE)).astype(np.float32)
    return (x > 0.5).astype(np.float32) if binary else x


def bce(x, logits):
    """The course's summed cross-entropy, in float64."""
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))


DOCS_EXAMPLE = "vae-capacity"


@pytest.fixture(scope="module")
def docs_example():
    """The family of docs/examples/capacity_vae.py, registered for the tests of one module and
    unregistered after them, so that the other modules see the package's families only."""
    yield register_docs_example()
    from tfvae import models

    models.FAMILIES.pop(DOCS_EXAMPLE, None)
    sys.modules.pop("capacity_vae", None)


def register_docs_example():
    """Imports docs/examples/capacity_vae.py (once), which registers its family `vae-capacity`."""
    import importlib.util

    if "capacity_vae" not in sys.modules:
        spec = importlib.util.spec_from_file_location("capacity_vae",
                                                      os.path.join(ROOT, "docs", "examples", "capacity_vae.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["capacity_vae"] = module
        spec.loader.exec_module(module)
    return sys.modules["capacity_vae"]
