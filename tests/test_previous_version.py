"""Runs written by the previous version (tests/data/previous_version) load, compute and resume
with this one exactly as with the version that wrote them."""

import json
import os
import shutil

import numpy as np
import pytest

import tfvae
from tfvae.rundir import RunDir

from conftest import ROOT

DATA = os.path.join(ROOT, "tests", "data", "previous_version")


def _copy(tmp_path, name):
    """The run in a scratch folder, its config.json pointing at the copied data."""
    shutil.copy(os.path.join(DATA, "bars-small.npz"), tmp_path / "bars-small.npz")
    run = tmp_path / f"run-{name}"
    shutil.copytree(os.path.join(DATA, f"run-{name}"), run)
    config = json.loads((run / "config.json").read_text())
    config["dataset"] = f"npz:{tmp_path / 'bars-small.npz'}"
    (run / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return run


@pytest.mark.parametrize("name", ["vae", "dae"])
def test_a_run_of_the_previous_version_loads_and_computes_what_it_did(tmp_path, name):
    run = _copy(tmp_path, name)
    expected = np.load(run / "expected.npz")
    for source in ("model.keras", "checkpoint"):
        if source == "checkpoint":
            os.remove(RunDir(str(run)).model_path)
        trained = tfvae.load(str(run))
        assert trained.config.model == name
        images = expected["images"]
        np.testing.assert_allclose(trained.reconstruct(images), expected["reconstruction"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(trained.encode(images), expected["code"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(trained.score(images), expected["score"], rtol=1e-6)
        if name == "vae":
            np.testing.assert_allclose(trained.sample(3, seed=4), expected["sample"], rtol=1e-6, atol=1e-7)


def test_a_run_of_the_previous_version_resumes_as_that_version_resumed_it(tmp_path):
    run = _copy(tmp_path, "vae")
    tfvae.fit(out=str(run), resume=True, progress=False, epochs=2)
    expected = np.load(os.path.join(DATA, "run-vae", "expected_epoch2.npz"))
    weights = tfvae.load(str(run)).keras_model.weights
    assert len(weights) == len(expected.files)
    # The expected weights were computed on another machine's CPU: the same arithmetic, but a CPU with
    # other vector instructions rounds some sums differently (up to 3e-7 here, an AMD EPYC without
    # AVX-512). A run resumed wrongly (the optimizer's moments, the data order or the noise seeds
    # restarted) is off by the learning rate's order, 1e-3, everywhere.
    for i, w in enumerate(weights):
        np.testing.assert_allclose(w.numpy(), expected[f"w{i}"], rtol=1e-5, atol=2e-6)
    assert [r["epoch"] for r in RunDir(str(run)).read_metrics()] == [1, 2]
