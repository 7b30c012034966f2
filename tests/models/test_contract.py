"""The contract every registered family keeps, tested over the registry: a family added later is
covered the day it is registered. It trains with a finite loss and the metrics it names, saves and
loads, resumes bit-identically, evaluates and exports.

The docs' worked example (docs/examples/capacity_vae.py, a VAE with a controlled KL capacity) is
registered here too, so the example a reader copies is held to the same contract.
"""

import json
import math
import os

import numpy as np
import pytest

import tfvae
from tfvae import models
from tfvae.rundir import RunDir

from conftest import DOCS_EXAMPLE

FAMILIES = models.names() + (DOCS_EXAMPLE,)
# every family, and the learned priors on the families that take a prior: "family+prior"
VARIANTS = FAMILIES + ("vae+vamp", "iwae+mog", "hvae+vamp")
pytestmark = pytest.mark.usefixtures("docs_example")
EXTRA = {"vae+vamp": {"prior": "vamp", "prior_components": 5}, "iwae+mog": {"prior": "mog", "prior_components": 3},
         "hvae+vamp": {"prior": "vamp", "prior_components": 5}}
OPTS = dict(hidden="16", latent_dim=3, batch_size=64, seed=5, validation_split=0.125)  # 448 images: 7 steps


def _fit(bars_npz, variant, out, epochs, **kw):
    return tfvae.fit(bars_npz, model=variant.split("+")[0], out=str(out), epochs=epochs, progress=False, **OPTS,
                     **EXTRA.get(variant, {}), **kw)


def _weights(run_dir):
    return [w.numpy() for w in tfvae.load(str(run_dir)).keras_model.weights]


@pytest.fixture(scope="module", params=VARIANTS)
def family_run(request, bars_npz, tmp_path_factory, docs_example):
    variant = request.param
    root = tmp_path_factory.mktemp(f"contract-{variant.replace('+', '-')}")
    result = _fit(bars_npz, variant, root / "straight", epochs=2)
    return variant, root, result


def test_the_registry_holds_the_course_s_families_and_theregister_docs_example():
    assert FAMILIES[:6] == ("ae", "sae", "dae", "cae", "vae", "iwae") and "vae-capacity" in FAMILIES


def test_it_trains_with_a_finite_loss_and_the_metrics_it_names(family_run):
    name, root, result = family_run
    run = RunDir(result.run_dir)
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    family = models.get(name.split("+")[0])
    model = tfvae.load(result.run_dir).model
    names = set(model.metric_names)
    assert model.metric_names[0] == "loss" and type(model) is family
    schedule = set(model.schedule(0, 7))
    assert set(rows[-1]) == {"epoch", "step", "seconds", "images_per_sec"} | names | {f"val_{m}" for m in names} \
        | schedule
    assert all(math.isfinite(r[m]) and math.isfinite(r[f"val_{m}"]) for r in rows for m in names)
    assert os.path.isfile(run.model_path) and sorted(os.listdir(run.images_dir)) == ["epoch_0001.png", "epoch_0002.png"]


def test_it_saves_and_loads_every_variable(family_run):
    name, root, result = family_run
    trained = tfvae.load(result.run_dir)
    parts = trained.model.parts
    assert {"encoder", "decoder"} <= set(parts)
    held = sum(int(np.prod(v.shape)) for part in parts.values() for v in part.weights)
    assert held == sum(int(np.prod(w.shape)) for w in trained.keras_model.weights)  # one file holds them all
    # the checkpoint holds the same variables: without model.keras, load() restores the same weights
    final = [w.numpy() for w in trained.keras_model.weights]
    copy = root / "copy"
    import shutil

    shutil.copytree(result.run_dir, copy)
    os.remove(RunDir(str(copy)).model_path)
    for a, b in zip(_weights(copy), final):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    assert trained.reconstruct(x).shape == (3, 28, 28, 1)
    if trained.model.variational:
        np.testing.assert_array_equal(trained.sample(4, seed=2), tfvae.load(str(copy)).sample(4, seed=2))


def test_a_resumed_run_is_bit_identical_to_the_uninterrupted_one(family_run, bars_npz):
    name, root, result = family_run
    out = root / "resumed"
    _fit(bars_npz, name, out, epochs=1)
    tfvae.fit(out=str(out), resume=True, progress=False, epochs=2)
    a, b = _weights(result.run_dir), _weights(out)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    drop = ("seconds", "images_per_sec")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(RunDir(str(out)).read_metrics()) == strip(RunDir(result.run_dir).read_metrics())


def test_it_evaluates(family_run):
    from tfvae.evaluation import evaluate

    name, root, result = family_run
    trained = tfvae.load(result.run_dir)
    report = evaluate(trained, k=50, max_test_examples=16)
    assert report["protocol"]["test_images"] == 16 and report["model"] == name.split("+")[0]
    assert all(math.isfinite(v) for v in report["metrics"].values() if isinstance(v, float))
    scores = trained.score(trained.splits().test[:16])
    assert scores.shape == (16,) and np.all(np.isfinite(scores))
    if trained.model.variational:
        m = report["metrics"]
        assert m["log_likelihood"] >= m["elbo"] - 1.0  # importance sampling tightens the bound
        np.testing.assert_allclose(-scores.mean(), m["elbo"], rtol=1e-6)
    else:
        key = "reconstruction_clean" if name.startswith("dae") else "reconstruction"
        np.testing.assert_allclose(scores.mean(), report["metrics"][key], rtol=1e-6)


def test_it_exports(family_run, tmp_path):
    import tensorflow as tf

    from tfvae.export.exporter import export_run
    from tfvae.export.tflite import LiteDecoder

    name, root, result = family_run
    trained = tfvae.load(result.run_dir)
    report = export_run(trained, str(tmp_path / "exp"), name="m", quantize=("none",), n_eval=64)
    assert report["saved_model"]["signatures"] == list(trained.model.export_endpoints())
    saved = tf.saved_model.load(str(tmp_path / "exp" / "saved_model" / "m" / "1"))
    assert sorted(saved.signatures) == sorted(trained.model.export_endpoints())
    z = trained.model.reference_codes(8, 3)
    np.testing.assert_allclose(saved.signatures["decode"](z=tf.constant(z))["images"].numpy(), trained.decode(z),
                               atol=1e-5)
    lite = LiteDecoder(path=str(tmp_path / "exp" / "tflite" / "decoder_none.tflite"))
    np.testing.assert_allclose(lite(z), trained.decode(z), atol=1e-5)
    assert report["tflite"]["none"]["max_abs_error"] < 1e-5
    prior_file = tmp_path / "exp" / "tflite" / "prior.json"
    if trained.model.variational:
        mixture = json.loads(prior_file.read_text())
        for key, value in trained.model.prior.mixture().items():
            np.testing.assert_allclose(mixture[key], value, rtol=1e-6)
        s = saved.signatures["sample"](n=tf.constant(6))
        assert s["images"].shape == (6, 28, 28, 1) and s["z"].shape == (6, 3)
        assert report["sampler"]["bytes"] > 0
    else:
        assert not prior_file.exists() and report["sampler"] is None
