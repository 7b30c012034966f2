"""dae: the corrupted input goes in, the loss compares with the clean one; its checks and picture."""

import numpy as np
import pytest
import tensorflow as tf

from tfvae.config import make_config
from tfvae.errors import ConfigError

from conftest import bce, family_images, family_model


@pytest.mark.parametrize("noise", ["masking", "gaussian"])
def test_dae_corrupts_the_input_and_compares_with_the_clean_one(noise):
    m = family_model(model="dae", noise=noise, noise_level=0.4, binarize="none")
    x = family_images(n=64)
    noise_t = m.draw_noise(len(x), [3, 4])
    loss, _ = m.loss(tf.constant(x), noise_t)
    raw = noise_t["corrupt"].numpy().reshape(x.shape)
    if noise == "masking":
        x_tilde = x * (raw >= 0.4)
        dropped = 1 - (raw >= 0.4).mean()
        assert 0.3 < dropped < 0.5  # each input is zeroed with probability nu
    else:
        x_tilde = x + 0.4 * raw
    logits = m.decoder(m.encoder(x_tilde)["code"])["logits"].numpy()
    np.testing.assert_allclose(loss.numpy(), bce(x, logits), rtol=1e-5)  # against CLEAN x
    corrupt_target = bce(np.clip(x_tilde, 0, 1), logits)
    assert not np.allclose(loss.numpy(), corrupt_target)
    # outside training there is no corruption: reconstruct is deterministic and uses clean x
    r1, r2 = m.reconstruct(x).numpy(), m.reconstruct(x).numpy()
    np.testing.assert_array_equal(r1, r2)
    clean = 1 / (1 + np.exp(-m.decoder(m.encoder(x)["code"])["logits"].numpy()))
    np.testing.assert_allclose(r1, clean, rtol=1e-5, atol=1e-6)


def test_the_reconstruction_picture_shows_the_corrupted_inputs():
    m = family_model(model="dae", noise="masking", noise_level=0.5, binarize="none")
    x = family_images(n=4)
    rows = m.reconstruction_rows(x, seed=1)
    assert len(rows) == 3
    np.testing.assert_array_equal(rows[0], x)
    assert (rows[1] == 0).mean() > 0.3 and np.all((rows[1] == 0) | (rows[1] == x))  # masked inputs
    np.testing.assert_allclose(rows[2], m.reconstruct(rows[1]).numpy())


@pytest.mark.parametrize("options,message", [
    (dict(noise="masking", noise_level=1.0), "must be below 1"),
    (dict(noise="gaussian", noise_level=0.0), "needs --noise-level > 0"),
    (dict(noise="salt"), "unknown --noise 'salt'"),
])
def test_noise_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        make_config(dict(model="dae", **options))


def test_each_metric_says_which_input_it_was_computed_on(runs, capsys):
    """metrics.csv, the curves and evaluate name the reconstruction of the corrupted input (the
    training loss) and of the clean one (the score) apart, never one name for both."""
    import tfvae
    from tfvae.evaluation import per_image_terms
    from tfvae.rundir import RunDir

    from conftest import run_cli

    rows = RunDir(str(runs["dae"])).read_metrics()
    assert "reconstruction_corrupted" in rows[0] and "val_reconstruction_corrupted" in rows[0]
    assert "reconstruction" not in rows[0] and "reconstruction_clean" not in rows[0]
    trained = tfvae.load(str(runs["dae"]))
    x = trained.splits().test[:64]
    terms = per_image_terms(trained.model, x, seed=5)
    # the clean input's loss, recomputed from the networks: the score
    logits = trained.model.decoder(trained.model.encoder(x)["code"])["logits"].numpy()
    np.testing.assert_allclose(terms["reconstruction_clean"], bce(x, logits), rtol=1e-5)
    np.testing.assert_allclose(terms["score"], terms["reconstruction_clean"])
    # the corrupted input's: masking noise of probability nu, against the clean input
    noise = trained.model.draw_noise(len(x), tf.constant([5, 0], tf.int64))["corrupt"].numpy().reshape(x.shape)
    x_tilde = x * (noise >= trained.config.noise_level)
    logits = trained.model.decoder(trained.model.encoder(x_tilde)["code"])["logits"].numpy()
    np.testing.assert_allclose(terms["reconstruction_corrupted"], bce(x, logits), rtol=1e-5)
    assert terms["reconstruction_corrupted"].mean() > terms["reconstruction_clean"].mean()
    code, out, _ = run_cli(capsys, "evaluate", runs["dae"], "--max-test-examples", "64")
    assert code == 0 and "reconstruction loss, clean input (the score)" in out
    assert "reconstruction loss, corrupted input (the training loss)" in out
