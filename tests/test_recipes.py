"""Recipes: valid configs of registered families, the published settings, command-line overrides, the IWAE schedule."""

import json

import numpy as np
import pytest

from tfvae.config import make_config
from tfvae.recipes import available, load_recipe
from tfvae.rundir import RunDir
from tfvae.training import learning_rate_for

from conftest import run_cli


@pytest.mark.parametrize("name", sorted(available()))
def test_every_shipped_recipe_is_a_valid_config(name):
    config = make_config(load_recipe(name))
    assert config.binarization == "dynamic" and config.likelihood == "bernoulli"
    assert available()[name]


PUBLISHED_SETTINGS = {
    # Burda et al. 2016: 784-200-200-50 tanh, batch 20, Adam eps 1e-4, 3^i epochs at 1e-3 * 10^(-i/7), i = 0..7
    "mnist-iwae-paper": dict(model="iwae", iw_samples=50, hidden=(200, 200), activation="tanh", latent_dim=50,
                             batch_size=20, adam_epsilon=1e-4, learning_rate=1e-3, lr_schedule="iwae",
                             epochs=sum(3**i for i in range(8)), validation_split=0.0),
    "mnist-vae-iwae-paper": dict(model="vae", mc_samples=1, hidden=(200, 200), activation="tanh", latent_dim=50,
                                 batch_size=20, adam_epsilon=1e-4, learning_rate=1e-3, lr_schedule="iwae",
                                 epochs=3280, validation_split=0.0),
    # the VampPrior / Exemplar VAE papers' MLP: gated 300-300, 40 latent dimensions, all training images
    "fmnist-vae": dict(model="vae", hidden=(300, 300), activation="gated", latent_dim=40, validation_split=0.0,
                       dataset="fashion_mnist"),
    # the Exemplar VAE paper's code: 50,000 training images, 10,000 for early stopping (patience 50, <= 2000 epochs)
    "fmnist-vae-paper": dict(model="vae", hidden=(300, 300), activation="gated", latent_dim=40,
                             validation_split=0.16667, early_stopping=50, epochs=2000, kl_warmup=100,
                             dataset="fashion_mnist"),
    "fmnist-iwae": dict(model="iwae", hidden=(300, 300), activation="gated", latent_dim=40, validation_split=0.0,
                        dataset="fashion_mnist"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_SETTINGS))
def test_recipes_follow_the_published_settings(name):
    config = make_config(load_recipe(name))
    for key, value in PUBLISHED_SETTINGS[name].items():
        assert getattr(config, key) == value, (name, key)
    if name == "fmnist-vae-paper":  # 10,000 of Fashion-MNIST's 60,000 training images held out, as in the paper
        from tfvae.data import ImageData, prepare
        images = np.zeros((60000, 28, 28, 1), np.uint8)
        splits = prepare(ImageData(images, None, images[:10], None), binarization="dynamic",
                         validation_split=config.validation_split, seed=0)
        assert (len(splits.train), len(splits.validation)) == (50000, 10000)


def test_command_line_options_override_the_recipe(capsys, tmp_path, bars_npz):
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, "fit", "--config", "fmnist-vae", "--dataset", bars_npz, "--hidden", "16",
                           "--epochs", "1", "--latent-dim", "3", "-o", out, "-q")
    assert code == 0, err
    config, _ = RunDir(str(out)).read()
    assert config.dataset == bars_npz and config.hidden == (16,) and config.latent_dim == 3  # overrides
    assert config.activation == "gated" and config.batch_size == 100 and config.kl_warmup == 100  # recipe
    code, stdout, _ = run_cli(capsys, "recipes", "fmnist-vae")
    assert code == 0 and json.loads(stdout)["activation"] == "gated"
    code, _, err = run_cli(capsys, "fit", "--config", "no-such-recipe", "-o", tmp_path / "x")
    assert code != 0 and "unknown recipe 'no-such-recipe'" in err


def test_iwae_learning_rate_schedule():
    config = make_config({"learning_rate": 1e-3, "lr_schedule": "iwae"})
    stages = [learning_rate_for(config, e) for e in range(3280)]
    boundaries = [0, 1, 4, 13, 40, 121, 364, 1093]  # 3^i epochs per stage
    for i, start in enumerate(boundaries):
        assert stages[start] == pytest.approx(1e-3 * 10 ** (-i / 7))
    assert len(set(stages)) == 8 and learning_rate_for(config, 5000) == pytest.approx(1e-4)
    assert learning_rate_for(make_config({}), 123) == 1e-3
