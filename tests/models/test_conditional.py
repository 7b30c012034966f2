"""Conditional models (--condition label): the label reaches both networks, and every command and
export that has a meaning for it takes it.

The bars (conftest.make_bars) carry their class in their pixels: label = orientation * 4 +
position bucket. `bar_class` reads it back from an image with no learned part, an oracle that is
independent of the model and of tfvae's fidelity classifier.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_bars, one_error_line, run_cli

CLASSES = 8


def bar_class(image) -> int:
    """The bars' label read from the pixels: a vertical bar lifts some column means, a horizontal
    one some row means; the position is where the profile first rises above half its peak."""
    a = np.asarray(image, np.float64)[..., 0]
    rows, cols = a.mean(axis=1), a.mean(axis=0)
    vertical = int(cols.max() - np.median(cols) > rows.max() - np.median(rows))
    profile = cols if vertical else rows
    pos = int(np.flatnonzero(profile > 0.5 * (profile.max() + np.median(profile)))[0])
    return vertical * 4 + min(3, pos * 4 // a.shape[1])


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    path = tmp_path_factory.mktemp("cdata") / "bars.npz"
    x, y = make_bars(3600, seed=11)
    np.savez(path, x_train=x[:3000], y_train=y[:3000], x_test=x[3000:], y_test=y[3000:])
    return f"npz:{path}", x[3000:], y[3000:]


@pytest.fixture(scope="module")
def cvae(tmp_path_factory, labelled):
    """A conditional VAE with the per-class prior, 8 epochs on 3,000 bars (z = 2)."""
    import tfvae

    out = tmp_path_factory.mktemp("cruns") / "cvae"
    tfvae.fit(labelled[0], out=str(out), condition="label", prior="class", latent_dim=2, hidden="64", epochs=8,
              batch_size=64, progress=False)
    return tfvae.load(str(out))


@pytest.fixture(scope="module")
def cvamp(tmp_path_factory, labelled):
    """A conditional VAE with a VampPrior per class (2 pseudo-inputs of each of the 8 classes),
    8 epochs on 3,000 bars (z = 2)."""
    import tfvae

    out = tmp_path_factory.mktemp("cruns") / "cvamp"
    tfvae.fit(labelled[0], out=str(out), condition="label", prior="vamp", prior_components=2 * CLASSES, latent_dim=2,
              hidden="64", epochs=8, batch_size=64, progress=False)
    return tfvae.load(str(out))


@pytest.fixture(scope="module")
def cexpost(tmp_path_factory, cvamp):
    """cvamp with its prior replaced by the ex-post prior: 40 training images' posteriors of each class."""
    import tfvae

    out = tmp_path_factory.mktemp("cruns") / "cexpost"
    tfvae.fit_prior(cvamp.run_dir, out=str(out), components=40 * CLASSES, progress=False)
    return tfvae.load(str(out))


def test_bar_class_reads_the_label_of_real_images(labelled):
    _, x, y = labelled
    assert np.mean([bar_class(i / 255.0) == label for i, label in zip(x, y)]) == 1.0


def test_the_decoder_uses_the_label(cvae):
    """The same z decoded with two labels: different images, each of the class asked for."""
    z = np.zeros((CLASSES, 2), np.float32)
    decoded = cvae.decode(z, label=np.arange(CLASSES))
    assert np.abs(decoded[0] - decoded[4]).mean() > 0.05  # a horizontal and a vertical bar
    assert [bar_class(d) for d in decoded] == list(range(CLASSES))
    for label in range(CLASSES):  # samples of z ~ p(z|y), decoded with y
        samples = cvae.sample(40, seed=label, label=label)
        assert np.mean([bar_class(s) == label for s in samples]) >= 0.7, label


def test_conditional_encoder_and_api(cvae, labelled):
    _, x, y = labelled
    mean_right = cvae.encode(x[:50], label=y[:50])
    mean_wrong = cvae.encode(x[:50], label=(y[:50] + 4) % CLASSES)
    assert mean_right.shape == (50, 2) and np.abs(mean_right - mean_wrong).max() > 1e-3  # q(z|x, y) depends on y
    recon = cvae.reconstruct(x[:20], label=y[:20])
    assert np.mean([bar_class(r) == label for r, label in zip(recon, y[:20])]) >= 0.9
    assert cvae.sample(16, label=3).shape == (16, 28, 28, 1)
    np.testing.assert_array_equal(cvae.sample(4, seed=2, label=3), cvae.sample(4, seed=2, label="3"))
    assert cvae.classes == list(range(CLASSES))
    from tfvae.errors import ConfigError

    for bad, words in ((None, "conditioned on the label"), (12, "label 12 is not one"), ("boots", "unknown class")):
        with pytest.raises(ConfigError, match=words):
            cvae.sample(2, label=bad)
    with pytest.raises(ConfigError, match="one class or 3 integer labels"):
        cvae.decode(np.zeros((3, 2)), label=[1, 2])


def test_per_class_prior_is_learned_and_the_bound_holds(cvae, labelled):
    """p(z|y) is learned, one Gaussian per class; the ELBO is below the importance-sampled log p(x|y); the label fidelity of the run's classifier is high."""
    from tfvae.evaluation import evaluate, log_likelihood, per_image_terms

    _, loc, scale = cvae.model.prior.components()
    assert np.abs(scale.numpy() - 1.001).max() > 0.05  # the scales start at 1 (+ the floor); trained, they moved
    assert len({tuple(np.round(row, 3)) for row in loc.numpy()}) == CLASSES  # a Gaussian per class
    splits = cvae.splits()
    x, y = splits.test[:100], splits.test_labels[:100].astype(np.int32)
    elbo = per_image_terms(cvae.model, x, labels=y, samples=50)["elbo"]  # E_q over 50 draws, KL in closed form
    ll = log_likelihood(cvae.model, x, k=200, labels=y)
    assert elbo.mean() < ll.mean() and np.mean(elbo <= ll) >= 0.9
    wrong = log_likelihood(cvae.model, x, k=200, labels=(y + 4) % CLASSES)
    assert ll.mean() > wrong.mean() + 10  # the right label explains the image better, by many nats
    report = evaluate(cvae, k=50, max_test_examples=200, fidelity_samples=400)
    m = report["metrics"]
    assert report["protocol"]["conditioned_on"] == "label"
    assert m["classifier_test_accuracy"] >= 0.95 and m["label_fidelity"] >= 0.8
    assert os.path.isfile(os.path.join(cvae.run_dir, "classifier.keras"))
    again = evaluate(cvae, k=50, max_test_examples=200, fidelity_samples=400)  # the kept classifier
    assert again["metrics"]["label_fidelity"] == m["label_fidelity"]
    with open(os.path.join(cvae.run_dir, "classifier.keras"), "r+b") as f:  # damaged: never trusted
        f.truncate(100)
    import io

    from tfvae.fidelity import run_classifier
    from tfvae.progress import Progress

    said = io.StringIO()
    _, info = run_classifier(cvae, splits, progress=Progress(stream=said))
    assert "is damaged; training the fidelity classifier again" in said.getvalue()
    assert info["test_accuracy"] == pytest.approx(m["classifier_test_accuracy"], abs=0.02)  # seeded, again


def test_the_per_class_vampprior_learns_each_class_and_the_bound_holds(cvamp, labelled):
    """--prior vamp with --condition label: the pseudo-inputs of class y encode (with label y) to
    where class y's images do; its samples are of the class asked for; the Monte Carlo ELBO is
    below the importance-sampled log p(x|y), which the right label raises."""
    from tfvae.evaluation import log_likelihood, per_image_terms

    prior = cvamp.model.prior
    assert type(prior).__name__ == "ClassVampPrior" and cvamp.model.kl_metric == "kl_mc"
    u = np.clip(prior.layer["pseudo_inputs"].numpy(), 0, 1)
    assert [bar_class(img) for img in u] == list(prior.component_class)  # each pseudo-input still draws its class
    for label in range(CLASSES):
        samples = cvamp.sample(40, seed=label, label=label)
        assert np.mean([bar_class(s) == label for s in samples]) >= 0.7, label
    splits = cvamp.splits()
    x, y = splits.test[:100], splits.test_labels[:100].astype(np.int32)
    elbo = per_image_terms(cvamp.model, x, labels=y, samples=50)["elbo"]
    ll = log_likelihood(cvamp.model, x, k=200, labels=y)
    assert elbo.mean() < ll.mean() and np.mean(elbo <= ll) >= 0.9
    assert ll.mean() > log_likelihood(cvamp.model, x, k=200, labels=(y + 4) % CLASSES).mean() + 10
    header = open(os.path.join(cvamp.run_dir, "metrics.csv")).readline()
    assert "kl_mc" in header.split(",")


def _digests(folder):
    import hashlib

    return {os.path.relpath(os.path.join(d, f), folder): hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for d, _, files in os.walk(folder) for f in files}


def test_fit_prior_stores_the_training_images_posteriors_and_leaves_the_run_as_it_was(labelled, tmp_path, capsys):
    """fit-prior --kind posteriors on a run trained without binarization (its posteriors are then deterministic):
    every component is the posterior q(z | x, y) of a distinct training image of its class, the
    networks are the run's, the run's files are unchanged; its log p(x|y), info and seed."""
    import tfvae
    from tfvae.evaluation import log_likelihood, per_image_terms

    source = tmp_path / "grey"
    tfvae.fit(labelled[0], out=str(source), condition="label", latent_dim=2, hidden="32", epochs=3, batch_size=100,
              max_train_examples=1600, binarize="none", progress=False)
    before = _digests(source)
    code, out, err = run_cli(capsys, "fit-prior", source, "-o", tmp_path / "post", "--components", 8 * 12, "--kind", "posteriors")
    assert code == 0, err
    assert out.strip().endswith("post") and "12 Gaussians for each of 8 classes" in err and "N(0, I)" in err
    assert "the posteriors of 96 training images" in err
    assert _digests(source) == before
    run, fitted = tfvae.load(str(source)), tfvae.load(str(tmp_path / "post"))
    for name in ("encoder", "decoder"):
        for u, v in zip(run.model.parts[name].weights, fitted.model.parts[name].weights):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
    splits = run.splits()
    q = run.posterior(splits.train, label=splits.train_labels.astype(np.int32))
    train_loc, train_scale = q.mean().numpy(), q.stddev().numpy()
    _, loc, scale = fitted.model.prior.components()
    gap = np.abs(loc.numpy()[:, None, :] - train_loc[None]).max(axis=-1)  # (K, N)
    nearest = gap.argmin(axis=1)
    assert gap.min(axis=1).max() < 1e-5 and len(set(nearest)) == 8 * 12  # distinct training images
    np.testing.assert_array_equal(splits.train_labels[nearest], np.repeat(np.arange(8), 12))  # of their class
    np.testing.assert_allclose(scale.numpy(), train_scale[nearest], rtol=1e-5)
    config = json.load(open(tmp_path / "post" / "config.json"))
    assert (config["prior"], config["prior_components"]) == ("expost", 96)
    assert config["prior_of"] == {"run": str(source), "prior": "normal", "kind": "posteriors", "components": 96,
                                  "seed": 0, "images": 96}
    x, y = splits.test[:60], splits.test_labels[:60].astype(np.int32)
    ll = log_likelihood(fitted.model, x, k=300, labels=y)
    elbo = per_image_terms(fitted.model, x, labels=y, samples=50)["elbo"]
    assert np.all(np.isfinite(ll)) and elbo.mean() < ll.mean()
    code, out, _ = run_cli(capsys, "info", tmp_path / "post")
    assert code == 0 and f"fitted after training to {source}" in out
    code, _, _ = run_cli(capsys, "fit-prior", source, "-o", tmp_path / "post2", "--components", 8 * 12, "--seed", 1, "-q",
                         "--kind", "posteriors")
    other = tfvae.load(str(tmp_path / "post2")).model.prior.components()[1].numpy()
    assert code == 0 and not np.array_equal(other, loc.numpy())  # the seed picks other images


def test_the_ex_post_prior_of_the_vampprior_run(cvamp, cexpost):
    """fit-prior (EM, the default) on the binarized cvamp run: each class's mixture is the one
    fitted to that class's posterior draws (their mean log-density, recomputed, is the one the
    fit recorded, and EM raised it above the run's VampPrior's); the samples are of the class
    asked for; the bound holds."""
    from tfvae.evaluation import evaluate
    from tfvae.expost import aggregate_draws

    assert type(cexpost.model.prior).__name__ == "ClassExPostPrior" and cexpost.model.kl_metric == "kl_mc"
    of = json.load(open(os.path.join(cexpost.run_dir, "config.json")))["prior_of"]
    assert (of["kind"], of["components"], of["draws"], of["iterations"]) == ("gmm", 320, 4, 100)
    labels = cexpost.splits().train_labels
    for c in (0, 5):
        z = aggregate_draws(cexpost, np.flatnonzero(labels == c), c, 4, 0).astype(np.float32)
        y = np.full(len(z), c, np.int32)
        fitted = cexpost.model.prior.given(y).log_prob(z).numpy().mean()
        assert fitted == pytest.approx(of["mean_log_density_of_the_draws"][str(c)], abs=1e-3)
        assert fitted > cvamp.model.prior.given(y).log_prob(z).numpy().mean()
    for label in range(CLASSES):
        samples = cexpost.sample(40, seed=label, label=label)
        assert np.mean([bar_class(s) == label for s in samples]) >= 0.7, label
    report = evaluate(cexpost, k=200, max_test_examples=100, fidelity_samples=400)
    m = report["metrics"]
    assert m["elbo"] < m["log_likelihood"] and m["label_fidelity"] >= 0.8
    assert report["prior"] == ("an ex-post mixture per class, 40 Gaussians for each of 8 classes, fitted to its "
                               "aggregate posterior")


def test_fit_prior_errors_are_one_line(capsys, tmp_path, cvamp, cexpost, runs, labelled):
    cases = [
        (["fit-prior", str(runs["ae"]), "-o", str(tmp_path / "a")], "an autoencoder: it has no prior"),
        (["fit-prior", str(runs["hvae2"]), "-o", str(tmp_path / "a")], "more than one stochastic layer"),
        (["fit-prior", cvamp.run_dir, "-o", str(tmp_path / "a"), "--components", "12"], "a multiple of 8"),
        (["fit-prior", cvamp.run_dir, "-o", str(tmp_path / "a"), "--components", str(8 * 1000), "--kind", "posteriors"],
         "or fewer"),
        (["fit-prior", cvamp.run_dir, "-o", str(tmp_path / "a"), "--components", str(8 * 1000)], "give fewer --components"),
        (["fit-prior", cvamp.run_dir, "-o", cexpost.run_dir], "already exists; pass --overwrite"),
        (["fit-prior", cvamp.run_dir, "-o", cvamp.run_dir], "give another --out"),
        (["fit", "-o", cexpost.run_dir, "--resume"], "has no training to continue"),
        (["fit", "-d", labelled[0], "-o", str(tmp_path / "a"), "--prior", "expost"], "tfvae fit-prior"),
    ]
    for args, words in cases:
        code, _, err = run_cli(capsys, *args)
        assert code != 0 and words in one_error_line(err), (args, err)
    assert not os.path.exists(tmp_path / "a")


def test_fit_prior_of_an_unconditional_run(runs, tmp_path):
    import tfvae
    from tfvae.evaluation import log_likelihood

    tfvae.fit_prior(str(runs["vae2"]), out=str(tmp_path / "post"), components=20, progress=False)
    fitted = tfvae.load(str(tmp_path / "post"))
    assert type(fitted.model.prior).__name__ == "ExPostPrior" and fitted.sample(5).shape == (5, 28, 28, 1)
    x = fitted.splits().test[:20]
    assert np.all(np.isfinite(log_likelihood(fitted.model, x, k=100)))


def read_png(path):
    import tensorflow as tf

    return tf.io.decode_png(open(path, "rb").read()).numpy()


def test_pictures_of_a_conditional_run(cvae, capsys, tmp_path):
    code, out, _ = run_cli(capsys, "sample", cvae.run_dir, "-o", tmp_path / "grid.png")
    assert code == 0 and "a row of 10 samples for each of 8 classes" in out
    code, out, _ = run_cli(capsys, "sample", cvae.run_dir, "--label", 5, "-n", 9, "-o", tmp_path / "five.png")
    assert code == 0 and "of class 5" in out
    five = read_png(tmp_path / "five.png")
    assert five.shape[:2] == (3 * 28 + 4 * 2, 3 * 28 + 4 * 2)
    code, out, _ = run_cli(capsys, "analogies", cvae.run_dir, "-n", 4, "-o", tmp_path / "an.png")
    assert code == 0 and "4 test images, each decoded with 8 labels" in out
    code, out, _ = run_cli(capsys, "manifold", cvae.run_dir, "--label", 2, "--grid", 4, "-o", tmp_path / "m.png")
    assert code == 0 and "label 2" in out
    code, out, _ = run_cli(capsys, "interpolate", cvae.run_dir, "--from", 0, "--to", 1, "-o", tmp_path / "i.png")
    assert code == 0 and "decoded with the first image's label" in out
    for name in ("grid", "an", "m", "i"):
        assert read_png(tmp_path / f"{name}.png").std() > 10  # not blank
    code, out, _ = run_cli(capsys, "info", cvae.run_dir)
    assert code == 0 and "condition          label" in out and "label_classes      8" in out
    code, out, err = run_cli(capsys, "score", cvae.run_dir, "-o", tmp_path / "scores.csv")
    assert code == 0, err  # each test image scored given its own label: -ELBO(x | y)
    from tfvae.anomaly import scores

    splits = cvae.splits(class_filter=False)
    given = scores(cvae.model, splits.test[:5], labels=splits.test_labels[:5].astype(np.int32))
    rows = (tmp_path / "scores.csv").read_text().splitlines()[1:6]
    np.testing.assert_allclose([float(r.split(",")[2]) for r in rows], given, rtol=1e-5)


def test_analogies_keep_the_style_and_change_the_class(cvae, labelled):
    """The z of a test image decoded with every label: each column has its label's class."""
    _, x, y = labelled
    z = cvae.encode(x[:4] / 255.0, label=y[:4])
    for i in range(4):
        decoded = cvae.decode(np.repeat(z[i:i + 1], CLASSES, axis=0), label=np.arange(CLASSES))
        assert np.mean([bar_class(d) == c for c, d in enumerate(decoded)]) >= 0.75


def test_errors_are_one_line(capsys, tmp_path, labelled, cvae, runs):
    x, _ = make_bars(200, seed=2)
    np.savez(tmp_path / "unlabelled.npz", x_train=x[:150], x_test=x[150:])
    cases = [
        (["fit", "-d", f"npz:{tmp_path / 'unlabelled.npz'}", "--condition", "label"], "needs labels"),
        (["fit", "-d", labelled[0], "--condition", "label", "--classes", "3"], "leaves one (3)"),
        (["fit", "-d", labelled[0], "--prior", "class"], "needs --condition label"),
        (["fit", "-d", labelled[0], "--prior", "vamp", "--condition", "label", "--prior-components", "12"],
         "give --prior-components a multiple of 8"),
        (["fit", "-d", labelled[0], "-m", "hvae", "--condition", "label"], "not available for --model hvae"),
        (["sample", str(runs["vae2"]), "--label", "3"], "trained without --condition label"),
        (["analogies", str(runs["vae2"])], "needs a conditional run"),
        (["sample", cvae.run_dir, "--label", "9"], "label 9 is not one the model was trained on"),
    ]
    for args, words in cases:
        fit = args[0] == "fit"
        code, _, err = run_cli(capsys, *args, "-o", tmp_path / ("out" if fit else "out.png"),
                               *(["-e", "1", "-q"] if fit else []))
        assert code != 0 and words in one_error_line(err), (args, err)
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.png")


@pytest.mark.parametrize("prior", ["class", "vamp"])
def test_resumed_conditional_run_is_bit_identical(tmp_path, labelled, prior):
    import tfvae

    small = dict(condition="label", prior=prior, latent_dim=2, hidden="16", batch_size=100, max_train_examples=600,
                 progress=False, **({"prior_components": CLASSES} if prior == "vamp" else {}))
    tfvae.fit(labelled[0], out=str(tmp_path / "once"), epochs=2, **small)
    tfvae.fit(labelled[0], out=str(tmp_path / "twice"), epochs=1, **small)
    tfvae.fit(out=str(tmp_path / "twice"), resume=True, epochs=2, progress=False)
    a, b = tfvae.load(str(tmp_path / "once")), tfvae.load(str(tmp_path / "twice"))
    for u, v in zip(a.keras_model.weights, b.keras_model.weights):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    config = json.load(open(tmp_path / "once" / "config.json"))
    assert config["condition"] == "label" and config["label_classes"] == CLASSES


def test_early_stopping_and_conv_networks(tmp_path, labelled):
    import tfvae

    run = tfvae.fit(labelled[0], out=str(tmp_path / "conv"), condition="label", network="conv", hidden="32",
                    latent_dim=2, epochs=2, batch_size=100, max_train_examples=600, early_stopping=1,
                    progress=False)
    trained = tfvae.load(run.run_dir)
    assert trained.conditional and os.path.isfile(tmp_path / "conv" / "best.json")
    assert trained.sample(3, label=6).shape == (3, 28, 28, 1)
    ae = tfvae.fit(labelled[0], out=str(tmp_path / "dae"), model="dae", condition="label", hidden="32", latent_dim=2,
                   epochs=1, batch_size=100, max_train_examples=600, progress=False)
    dae = tfvae.load(ae.run_dir)
    x = dae.splits().test[:5]
    assert dae.reconstruct(x, label=dae.splits().test_labels[:5]).shape == x.shape


EXPORTED = """
import json, sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
z = np.load(sys.argv[2])
labels = np.arange(len(z), dtype=np.int32) % 8
images = m.signatures["decode"](z=tf.constant(z), label=tf.constant(labels))["images"].numpy()
drawn = m.signatures["sample"](label=tf.constant(labels))
print(json.dumps({"images": images.tolist(), "sample_shape": list(drawn["images"].shape),
                  "signature": sorted(m.signatures["decode"].structured_input_signature[1])}))
"""


@pytest.mark.parametrize("name", ["cvae", "cvamp", "cexpost"])
def test_exports_take_the_label(name, request, tmp_path, capsys):
    """The SavedModel (in a fresh process) and the TFLite decoders give the Keras model's images for
    the same (z, label); the sampler and the edge runner draw from p(z|y) (a Gaussian per class,
    or a VampPrior per class) and decode the class asked for."""
    cvae = request.getfixturevalue(name)
    from tfvae.export.exporter import ACCURACY_TARGET
    from tfvae.export.tflite import LiteDecoder, draw_prior

    out = tmp_path / "export"
    code, _, err = run_cli(capsys, "export", cvae.run_dir, "-o", out, "--quantize", "int8", "--quantize", "none")
    assert code == 0, err
    z = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    labels = np.arange(16, dtype=np.int32) % CLASSES
    keras_images = cvae.decode(z, label=labels)
    np.save(tmp_path / "z.npy", z)
    report = json.load(open(out / "report.json"))
    proc = subprocess.run([sys.executable, "-c", EXPORTED, str(out / report["saved_model"]["path"]),
                           str(tmp_path / "z.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["signature"] == ["label", "z"] and served["sample_shape"] == [16, 28, 28, 1]
    np.testing.assert_allclose(np.array(served["images"]), keras_images, atol=1e-5)
    exact = LiteDecoder(path=str(out / "tflite" / "decoder_none.tflite"))
    assert exact.conditional
    np.testing.assert_allclose(exact(z, labels), keras_images, atol=1e-5)
    int8 = LiteDecoder(path=str(out / "tflite" / "decoder_int8.tflite"))(z, labels)
    assert np.abs(int8 - keras_images).max() <= 4 * ACCURACY_TARGET["max_abs_error"]
    assert [bar_class(i) for i in int8[:CLASSES]] == [bar_class(i) for i in keras_images[:CLASSES]]
    request = json.load(open(out / "requests" / "decode.json"))
    assert "label" in request["inputs"] and "label" in open(out / "README.md").read()
    edge = subprocess.run([sys.executable, str(out / "edge" / "tfvae_edge.py"), "--model",
                           str(out / "tflite" / "decoder_none.tflite"), "-n", "6", "--seed", "3", "--label", "6",
                           "-o", str(tmp_path / "edge.npy")], capture_output=True, text=True, timeout=120)
    assert edge.returncode == 0, edge.stderr
    prior = json.load(open(out / "tflite" / "prior.json"))
    drawn = draw_prior(prior, 6, 3, np.full(6, 6))
    np.testing.assert_allclose(np.load(tmp_path / "edge.npy"), np.clip(cvae.decode(drawn, label=6), 0, 1), atol=1e-5)
    missing = subprocess.run([sys.executable, str(out / "edge" / "tfvae_edge.py"), "--model",
                              str(out / "tflite" / "decoder_none.tflite"), "-o", str(tmp_path / "e.png")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "pass --label N" in missing.stderr
    assert ("component_class" in prior) == (name in ("cvamp", "cexpost"))
    from ai_edge_litert.interpreter import Interpreter

    sampler = Interpreter(model_path=str(out / "tflite" / "sampler.tflite")).get_signature_runner()
    asked = np.repeat(np.arange(CLASSES, dtype=np.int32), 20)
    drawn = sampler(label=asked)
    np.testing.assert_allclose(drawn["images"], cvae.decode(drawn["z"], label=asked), atol=2e-6)
    assert np.mean([bar_class(i) == c for i, c in zip(drawn["images"], asked)]) >= 0.7
