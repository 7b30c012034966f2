"""Real data: the Fashion-MNIST IDX files of Debian's dataset-fashion-mnist package."""

import numpy as np

import tfvae
from tfvae.data import load_splits
from tfvae.evaluation import bound_metrics

# One epoch of the default MLP VAE (784-400-20, Bernoulli, dynamic binarization, Adam 1e-3,
# batch 128) reaches a test ELBO of about -265 nats here; an untrained one sits near -543.
ONE_EPOCH_TEST_ELBO_BOUND = -275.0


def test_vae_trained_one_epoch_on_fashion_mnist_beats_the_bound(fashion_mnist, tmp_path):
    run = tfvae.fit(f"idx:{fashion_mnist}", out=str(tmp_path / "fmnist"), epochs=1, seed=0, progress=False)
    assert run.metrics["epoch"] == 1
    model = tfvae.load(run.run_dir)
    splits = load_splits(model.config)
    assert splits.test.shape == (10000, 28, 28, 1)
    assert set(np.unique(splits.test)) == {0.0, 1.0}  # binarized once, with the fixed seed
    test = bound_metrics(model.model, splits.test, seed=0)
    assert test["elbo"] > ONE_EPOCH_TEST_ELBO_BOUND, test
    assert abs(test["elbo"] - (test["log_px_z"] - test["kl"])) < 1e-6
    assert 0 < test["kl"] < 60
