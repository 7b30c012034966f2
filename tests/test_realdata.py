"""Real data: the Fashion-MNIST IDX files of Debian's dataset-fashion-mnist package."""

import numpy as np

import tfvae
from tfvae.data import load_splits
from tfvae.evaluation import bound_metrics


def independent_pixels(train, test):
    """log p(x) per test image under the best model with independent pixels: Bernoulli(p_j), p_j the
    training images' mean intensity (numpy; -385 nats on binarized Fashion-MNIST). A VAE whose
    decoder ignored z would be this model at best."""
    from tfvae.data import as_float

    p = np.clip(as_float(train).reshape(len(train), -1).astype(np.float64).mean(axis=0), 1e-6, 1 - 1e-6)
    x = test.reshape(len(test), -1).astype(np.float64)
    return x @ np.log(p) + (1 - x) @ np.log1p(-p)


def test_vae_trained_one_epoch_on_fashion_mnist_beats_independent_pixels(fashion_mnist, tmp_path):
    """One epoch of the default MLP VAE: its test ELBO, a lower bound on its log p(x), is above the
    exact log-likelihood of the independent-pixel model (-385 nats; the VAE reaches about -265, and
    an untrained one sits near -543)."""
    run = tfvae.fit(f"idx:{fashion_mnist}", out=str(tmp_path / "fmnist"), epochs=1, seed=0, progress=False)
    assert run.metrics["epoch"] == 1
    model = tfvae.load(run.run_dir)
    splits = load_splits(model.config)
    assert splits.test.shape == (10000, 28, 28, 1)
    assert set(np.unique(splits.test)) == {0.0, 1.0}  # binarized once, with the fixed seed
    test = bound_metrics(model.model, splits.test, seed=0)
    assert test["elbo"] > independent_pixels(splits.train, splits.test).mean(), test
    assert 0 < test["kl"] < 60


# Anomaly scoring: a VAE trained without pullovers (class 2) gives them a higher negative ELBO
# than the classes it saw: AUC 0.795 after 2 epochs, above the 0.751 of the independent-pixel
# model's -log p(x) fitted to the same training images. (Classes that are simpler to
# draw than the training classes, such as trousers or sandals, score LOWER when held out: AUC
# 0.21-0.40, the known limit of likelihood-based anomaly scores.)
HELD_OUT_CLASS = 2


def independent_pixels_auc(fashion_mnist):
    """The ROC AUC of the independent-pixel model's -log p(x) (trained without HELD_OUT_CLASS) for
    telling HELD_OUT_CLASS from the rest of the binarized test set: the score to beat."""
    from tfvae.anomaly import roc_auc
    from tfvae.data import load_source, prepare

    data = load_source(f"idx:{fashion_mnist}")
    splits = prepare(data, binarization="dynamic", validation_split=0.1, seed=0, exclude_classes=[HELD_OUT_CLASS])
    return roc_auc(-independent_pixels(splits.train, splits.test), splits.test_labels == HELD_OUT_CLASS)


def score_held_out(capsys, tmp_path, fashion_mnist):
    """Trains without HELD_OUT_CLASS through the command line, scores the test set; the AUC."""
    from conftest import run_cli

    run = tmp_path / "held-out"
    code, _, err = run_cli(capsys, "fit", "-d", f"idx:{fashion_mnist}", "--exclude-classes", HELD_OUT_CLASS,
                           "-e", "2", "-o", run, "-q")
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "score", run, "--anomaly-class", HELD_OUT_CLASS, "-o", tmp_path / "s.csv")
    assert code == 0, err
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 10001 and rows[0] == "index,label,score,anomaly,flagged"
    auc_line = [line for line in stdout.splitlines() if line.startswith("ROC AUC (test)")][0]
    return float(auc_line.split()[-1])
