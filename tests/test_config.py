"""The Config split by concern: data, architecture, training, the family's own options; config.json
stays readable both ways between this version and the one that wrote the existing runs."""

import json

import pytest

from tfvae.config import ArchitectureConfig, DataConfig, TrainingConfig, make_config
from tfvae.errors import ConfigError

# Every field the previous version's Config had: a config.json it reads must hold no other key.
PREVIOUS_FIELDS = {
    "dataset", "data_dir", "binarize", "validation_split", "max_train_examples", "classes", "exclude_classes",
    "model", "network", "hidden", "activation", "latent_dim", "likelihood", "gaussian_variance", "gaussian_scale",
    "min_scale", "code_activation", "l1", "noise", "noise_level", "contractive", "beta", "kl_warmup", "free_bits",
    "mc_samples", "iw_samples", "epochs", "batch_size", "learning_rate", "lr_schedule", "adam_epsilon", "seed",
    "strategy", "jit", "mixed_precision", "steps_per_call", "checkpoint_every", "worker_timeout", "image_every",
    "early_stopping",
}
# config.json of an fmnist-vae run written by the previous version (every family's options in it)
PREVIOUS_RUN = json.loads("""{"activation": "gated", "adam_epsilon": 1e-07, "batch_size": 100, "beta": 1.0,
  "binarize": "dynamic", "checkpoint_every": 0, "classes": null, "code_activation": "linear", "contractive": 0.01,
  "data_dir": null, "dataset": "idx:/usr/share/datasets/fashion-mnist", "early_stopping": 0, "epochs": 20,
  "exclude_classes": null, "free_bits": 0.0, "gaussian_scale": 0.1, "gaussian_variance": "pixel",
  "hidden": [300, 300], "image_every": 25, "iw_samples": 5, "jit": "auto", "kl_warmup": 100, "l1": 0.01,
  "latent_dim": 40, "learning_rate": 0.0005, "likelihood": "bernoulli", "lr_schedule": "constant",
  "max_train_examples": null, "mc_samples": 1, "min_scale": 0.001, "mixed_precision": false, "model": "vae",
  "network": "mlp", "noise": "masking", "noise_level": 0.25, "seed": 0, "steps_per_call": 0, "strategy": "auto",
  "validation_split": 0.0, "worker_timeout": 60.0}""")


def test_sections_hold_their_concerns_and_fields_read_as_attributes():
    c = make_config({"model": "vae", "latent_dim": 2, "beta": 4.0, "epochs": 3, "dataset": "npz:x.npz"})
    assert isinstance(c.data, DataConfig) and isinstance(c.architecture, ArchitectureConfig)
    assert isinstance(c.training, TrainingConfig)
    assert (c.data.dataset, c.architecture.latent_dim, c.training.epochs, c.options["beta"]) == ("npz:x.npz", 2, 3, 4.0)
    assert (c.dataset, c.latent_dim, c.epochs, c.beta) == ("npz:x.npz", 2, 3, 4.0)
    assert c.family.name == "vae" and c.binarization == "dynamic"
    with pytest.raises(AttributeError, match="option of --model sae, not of --model vae"):
        c.l1
    assert make_config(c.to_dict()) == c and c.replace(beta=2.0).beta == 2.0


def test_each_family_holds_its_own_options_only():
    assert set(make_config({"model": "sae"}).options) == {"code_activation", "l1"}
    assert set(make_config({"model": "iwae"}).options) == {"gaussian_variance", "gaussian_scale", "min_scale",
                                                            "prior", "prior_components", "prior_init", "iw_samples"}
    assert "free_bits" not in make_config({"model": "hvae"}).options
    assert make_config({}).model == "vae"


def test_a_config_json_of_the_previous_version_is_read_as_it_was_written():
    c = make_config(PREVIOUS_RUN, where="config.json")
    for name, value in PREVIOUS_RUN.items():
        if name in c.to_dict():
            assert c.to_dict()[name] == value, name
    assert (c.kl_warmup, c.hidden, c.activation) == (100, (300, 300), "gated")
    assert "l1" not in c.options  # the sparse AE's option, at its default: not the VAE's


@pytest.mark.parametrize("model", ["ae", "sae", "dae", "cae", "vae", "iwae"])
def test_the_previous_version_can_read_what_this_one_writes(model):
    written = json.loads(make_config({"model": model}).to_json())
    assert set(written) <= PREVIOUS_FIELDS  # it refuses unknown keys and fills the others with defaults


def test_unknown_options_and_bad_values_are_one_clear_error():
    with pytest.raises(ConfigError, match="unknown option lattent_dim in options; known options: .*latent_dim"):
        make_config({"lattent_dim": 3})
    with pytest.raises(ConfigError, match=r"--mc-samples must be an integer > 0, got 0"):
        make_config({"model": "vae", "mc_samples": 0})
    with pytest.raises(ConfigError, match=r"--l1 must be a number >= 0, got -1"):
        make_config({"model": "sae", "l1": -1.0})
    with pytest.raises(ConfigError, match="unknown --gaussian-variance 'huge'"):
        make_config({"gaussian_variance": "huge"})
    assert make_config({"model": "iwae", "iw_samples": 5.0}).iw_samples == 5  # JSON's integral floats


def test_dequantization_is_recorded_and_an_older_config_json_keeps_raw_pixels(tmp_path):
    """A Gaussian run on 8-bit images is dequantized, and config.json says so; a config.json written
    before --dequantize existed (no key) reads as none, so its run computes what it did; a
    Bernoulli run's config.json stays free of the key (earlier versions read it)."""
    import numpy as np

    from tfvae.data import load_splits
    from tfvae.rundir import RunDir

    x = np.random.default_rng(0).integers(0, 256, (40, 4, 4, 1)).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x[:30], x_test=x[30:])
    fresh = make_config({"model": "vae", "likelihood": "gaussian", "dataset": f"npz:{tmp_path / 'd.npz'}"})
    assert fresh.dequantize is None and load_splits(fresh).dequantization == "uniform"
    recorded = fresh.replace(dequantize="uniform")
    assert json.loads(recorded.to_json())["dequantize"] == "uniform"
    assert "dequantize" not in json.loads(make_config({"model": "vae"}).to_json())
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({k: v for k, v in recorded.to_saved_dict().items() if k != "dequantize"}))
    config, _ = RunDir(str(old)).read()
    assert config.dequantization == "none"
    splits = load_splits(config)
    assert splits.dequantization == "none" and np.array_equal(splits.test, x[30:].astype(np.float32) / 255)
    for bad, match in (({"likelihood": "bernoulli"}, "binary pixels"), ({"likelihood": "logistic"}, "already a probability"),
                       ({"likelihood": "gaussian", "binarize": "static"}, "contradict")):
        with pytest.raises(ConfigError, match=match):
            make_config({"model": "vae", "dequantize": "uniform", **bad})
