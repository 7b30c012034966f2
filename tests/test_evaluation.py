"""Evaluation: the importance-sampled log p(x) against an exact one, active units, anomaly AUC."""

import json

import numpy as np
import pytest

from tfvae.anomaly import best_threshold, roc_auc
from tfvae.config import make_config
from tfvae.evaluation import JIT_CONV_SAMPLES_PER_STEP, active_units, bound_metrics, log_likelihood, step_shape
from tfvae.models import Autoencoder

from test_probability import D, K_LAT, S, _analytic_elbo, _data, _exact_posterior_encoder, _linear_decoder, _ppca


def _ppca_model(w, b, **q):
    config = make_config(dict(model="vae", likelihood="gaussian", gaussian_variance="fixed", gaussian_scale=S,
                              latent_dim=K_LAT, binarize="none"))
    return Autoencoder(config, (D, 1, 1), encoder=_exact_posterior_encoder(w, b, **q), decoder=_linear_decoder(w, b))


def test_importance_sampled_log_px_matches_the_exact_value_and_bounds_the_elbo():
    w, b = _ppca()
    x, log_px = _data(w, b, n=40)
    model = _ppca_model(w, b, shift=0.5, scale_factor=1.6)  # a mediocre q: the ELBO is visibly loose
    elbo = _analytic_elbo(model.encoder, w, b, x)
    est = log_likelihood(model, x, k=5000, seed=1, batch_size=16, chunk=1000)
    # within 0.05 nats per image of the exact log p(x), on average and per image within 0.3
    assert abs(est.mean() - log_px.mean()) < 0.05
    np.testing.assert_allclose(est, log_px, atol=0.3)
    assert est.mean() > elbo.mean() + 0.3  # no lower than the ELBO, by a clear margin here
    assert np.all(est >= elbo - 0.05)
    # the MC ELBO the report shows agrees with the closed form
    assert abs(bound_metrics(model, x, samples=500)["elbo"] - elbo.mean()) < 0.1


def test_log_px_does_not_depend_on_chunk_or_batch_size_and_is_seeded():
    w, b = _ppca()
    x, _ = _data(w, b, n=23)
    model = _ppca_model(w, b, shift=0.4, scale_factor=1.5)
    ref = log_likelihood(model, x, k=450, seed=3, batch_size=23, chunk=450)
    for batch, chunk in ((5, 100), (7, 200), (23, 50), (1, 1000)):
        np.testing.assert_allclose(log_likelihood(model, x, k=450, seed=3, batch_size=batch, chunk=chunk), ref,
                                   rtol=0, atol=1e-4)
    np.testing.assert_array_equal(log_likelihood(model, x, k=450, seed=3), ref)
    assert not np.allclose(log_likelihood(model, x, k=450, seed=4), ref, atol=1e-4)


def test_xla_conv_steps_are_bounded_and_give_the_same_estimate(monkeypatch):
    # XLA's CPU convolutions hold ~0.5 MB per sample: 100 images x 500 samples ran out of memory
    for batch, chunk in ((100, 500), (1000, 5000), (7, 100_000)):
        images, samples = step_shape("conv", batch, chunk, jit=True)
        assert images * -(-samples // 100) * 100 <= JIT_CONV_SAMPLES_PER_STEP and images >= 1 and samples >= 1
        assert step_shape("conv", batch, chunk, jit=False) == step_shape("mlp", batch, chunk, jit=True) == (batch, chunk)
    assert step_shape("conv", 100, None, jit=False) == (100, 100) and step_shape("mlp", 100, None, None) == (100, 500)
    config = make_config(dict(model="vae", network="conv", hidden="16", latent_dim=3, binarize="none"))
    model = Autoencoder(config, (28, 28, 1))
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    plain = log_likelihood(model, x, k=300, seed=2, batch_size=3, chunk=300, jit=False)
    np.testing.assert_allclose(log_likelihood(model, x, k=300, seed=2, batch_size=3, chunk=300, jit=True), plain,
                               rtol=1e-5, atol=1e-3)
    # the sampler really runs bounded steps: with a 100-sample cap, one image and one block per step
    import tfvae.evaluation as evaluation

    steps, sample_noise = [], evaluation._sample_noise

    def recording(ids, first_block, n_blocks, latent, seed):
        steps.append((int(ids.shape[0]), n_blocks))
        return sample_noise(ids, first_block, n_blocks, latent, seed)

    monkeypatch.setattr(evaluation, "_sample_noise", recording)
    monkeypatch.setattr(evaluation, "JIT_CONV_SAMPLES_PER_STEP", 100)
    capped = log_likelihood(model, x, k=300, seed=2, batch_size=3, chunk=300, jit=True)
    assert steps and set(steps) == {(1, 1)}, steps
    np.testing.assert_allclose(capped, plain, rtol=1e-5, atol=1e-3)


def test_an_unused_latent_dimension_is_inactive():
    w, b = _ppca()
    w = w.copy()
    w[:, 1] = 0.0  # the decoder ignores z_1: its posterior is the prior, its mean never moves
    x, _ = _data(w, b, n=200)
    model = _ppca_model(w, b)
    n_active, variance = active_units(model, x)
    assert n_active == 2
    assert variance[1] < 1e-10 and variance[0] > 0.01 and variance[2] > 0.01
    kl = bound_metrics(model, x)["kl_per_dim"]
    assert kl[1] < 1e-6 and kl[0] > 0.1


def test_roc_auc_and_threshold():
    assert roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert roc_auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert roc_auc([1, 1, 1, 1], [False, True, False, True]) == 0.5
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    t = best_threshold(np.array([1.0, 2.0, 3.0, 10.0, 11.0]), np.array([False, False, False, True, True]))
    assert 3.0 <= t < 10.0


# ------------------------------------------------------------------------------ the commands
from test_cli import one_error_line, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bars_npz):
    from tfvae.cli.main import main

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, args in {"vae2": ["-m", "vae", "-z", "2"], "ae": ["-m", "ae", "-z", "3"],
                       "dae": ["-m", "dae", "-z", "3"], "vae1": ["-m", "vae", "-z", "1"],
                       "vae5": ["-m", "vae", "-z", "5"],
                       "vae2-noval": ["-m", "vae", "-z", "2", "--validation-split", "0"]}.items():
        with pytest.raises(SystemExit) as e:
            main(["fit", "-d", bars_npz, "-o", str(root / name), "--hidden", "32", "-b", "64", "-e", "2", "-q", *args])
        assert e.value.code == 0
        out[name] = root / name
    return out


def _png_size(path):
    import tensorflow as tf

    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return tuple(tf.io.decode_png(data).shape)


@pytest.mark.parametrize("run,args,shape", [
    ("vae2", ["sample", "-n", "16"], (4 * 28 + 5 * 2, 4 * 28 + 5 * 2, 1)),
    ("vae2", ["sample", "-n", "6", "--mean"], (2 * 28 + 3 * 2, 3 * 28 + 4 * 2, 1)),
    ("vae2", ["reconstruct", "-n", "5"], (2 * 28 + 3 * 2, 5 * 28 + 6 * 2, 1)),
    ("dae", ["reconstruct", "-n", "5"], (3 * 28 + 4 * 2, 5 * 28 + 6 * 2, 1)),  # + corrupted inputs
    ("vae2", ["manifold", "--grid", "5"], (5 * 28, 5 * 28, 1)),
    ("vae5", ["manifold", "--grid", "4"], (4 * 28, 4 * 28, 1)),
    ("ae", ["interpolate", "--from", "0", "--to", "3", "--steps", "6"], (2 * 28 + 3 * 2, 6 * 28 + 7 * 2, 1)),
    ("vae2", ["latents"], None),
    ("vae5", ["latents"], None),
    ("ae", ["latents"], None),
    ("vae2", ["curves"], None),
    ("ae", ["curves"], None),
])
def test_picture_commands_write_pngs_of_the_expected_size(capsys, tmp_path, runs, run, args, shape):
    out = tmp_path / "pic.png"
    code, stdout, err = run_cli(capsys, args[0], runs[run], *args[1:], "-o", out)
    assert code == 0, err
    assert f"wrote {out}" in stdout
    size = _png_size(out)
    if shape is not None:
        assert size == shape
    else:  # matplotlib figures: RGB, a sensible size
        assert size[2] == 3 and size[0] > 200 and size[1] > 200


@pytest.mark.parametrize("run,args,message", [
    ("ae", ["manifold"], "manifold needs a vae or iwae run"),
    ("vae1", ["manifold"], "manifold needs at least 2 latent dimensions"),
    ("vae1", ["latents"], "latents needs at least 2 latent dimensions"),
    ("ae", ["sample"], "sample needs a vae or iwae run"),
    ("ae", ["interpolate", "--from", "0", "--to", "9999"], "--to 9999 is out of range"),
    ("ae", ["sample", "-o", "x.jpg"], "must end in .png"),
])
def test_picture_commands_refuse_what_they_cannot_draw(capsys, tmp_path, runs, run, args, message):
    argv = [args[0], runs[run], *args[1:]]
    if "-o" not in argv:
        argv += ["-o", tmp_path / "pic.png"]
    code, _, err = run_cli(capsys, *argv)
    assert code != 0 and message in one_error_line(err)
    assert not (tmp_path / "pic.png").exists()


def test_an_output_under_a_file_is_refused_before_the_run_is_read(capsys, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "notarun").mkdir()  # were the run read first, this would be the error
    code, _, err = run_cli(capsys, "sample", tmp_path / "notarun", "-o", tmp_path / "afile" / "pics" / "s.png")
    assert code != 0
    assert f"{tmp_path / 'afile'} is a file, not a directory; choose another output path" in one_error_line(err)


def test_evaluate_command_reports_the_protocol_and_json(capsys, tmp_path, runs):
    js = tmp_path / "r.json"
    code, stdout, err = run_cli(capsys, "evaluate", runs["vae2"], "-k", "200", "--max-test-examples", "50",
                                "--json", js)
    assert code == 0, err
    assert "protocol: 50 test images, binarized once (seed" in stdout and "k = 200 importance samples" in stdout
    report = json.loads(js.read_text())
    m = report["metrics"]
    assert report["protocol"]["test_images"] == 50 and report["protocol"]["k"] == 200
    assert m["log_likelihood"] >= m["elbo"] - 0.5  # the IS estimate sits above the ELBO
    assert m["nll"] == pytest.approx(-m["log_likelihood"]) and 0 <= m["active_units"] <= 2
    assert len(report["kl_per_dim"]) == 2
    assert m["elbo"] == pytest.approx(m["log_px_z"] - m["kl"], abs=1e-3)
    # with k = 1 the importance-sampled estimate is a one-sample ELBO; 200 samples tighten it
    js1 = tmp_path / "r1.json"
    code, _, err = run_cli(capsys, "evaluate", runs["vae2"], "-k", "1", "--max-test-examples", "50", "--json", js1)
    assert code == 0, err
    m1 = json.loads(js1.read_text())["metrics"]
    assert m["log_likelihood"] > m1["log_likelihood"] + 5.0, (m1["log_likelihood"], m["log_likelihood"])
    code, stdout, _ = run_cli(capsys, "evaluate", runs["ae"], "--max-test-examples", "20")
    assert code == 0 and "reconstruction loss" in stdout and "log p(x)" not in stdout


def test_score_command_writes_one_score_per_image(capsys, tmp_path, runs):
    out = tmp_path / "s.csv"
    code, stdout, err = run_cli(capsys, "score", runs["vae2"], "-o", out, "--normal-class", "0,1,2,3")
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == "index,label,score,anomaly,flagged" and len(lines) == 1 + 128
    assert "ROC AUC (test)" in stdout


def test_score_without_a_validation_split_gives_the_auc_and_no_threshold(capsys, tmp_path, runs):
    out = tmp_path / "s.csv"
    code, stdout, err = run_cli(capsys, "score", runs["vae2-noval"], "-o", out, "--normal-class", "0,1,2,3",
                                "--json", tmp_path / "s.json")
    assert code == 0, err
    assert "ROC AUC (test)" in stdout and "threshold: none, the run has no validation split" in stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "index,label,score,anomaly" and len(lines) == 1 + 128
    sep = json.loads((tmp_path / "s.json").read_text())["separation"]
    assert "threshold" not in sep
    # the AUC of the CSV's own scores and labels, counted pair by pair: P(anomaly scores above normal)
    rows = [line.split(",") for line in lines[1:]]
    pos = np.array([float(r[2]) for r in rows if r[3] == "1"])
    neg = np.array([float(r[2]) for r in rows if r[3] == "0"])
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert len(pos) and len(neg) and sep["roc_auc"] == pytest.approx(pairs.mean())


def test_python_score_matches_the_command_and_classes_resolve(capsys, tmp_path, runs):
    import tfvae
    from tfvae.anomaly import anomaly_classes
    from tfvae.data import load_splits
    from tfvae.errors import TfvaeError

    out = tmp_path / "s.csv"
    code, _, err = run_cli(capsys, "score", runs["vae2"], "-o", out, "--anomaly-class", "4,5")
    assert code == 0, err
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    trained = tfvae.load(runs["vae2"])
    test = load_splits(trained.config, class_filter=False).test
    np.testing.assert_allclose(trained.score(test), [float(r[2]) for r in rows], rtol=0, atol=2e-6)
    assert [r[3] for r in rows] == [str(int(r[1] in ("4", "5"))) for r in rows]
    labels = np.array([3, 0, 7, 3, 5])
    assert anomaly_classes(labels, normal=[0, 3]) == [5, 7]
    assert anomaly_classes(labels, anomalous=[7, 5, 7]) == [5, 7]
    for kwargs, message in ((dict(normal=[0, 9]), r"class\(es\) \[9\] do not occur; the labels are 0, 3, 5, 7"),
                            (dict(), "either the normal classes or the anomaly classes"),
                            (dict(normal=[0], anomalous=[3]), "not both")):
        with pytest.raises(TfvaeError, match=message):
            anomaly_classes(labels, **kwargs)


def test_score_refuses_a_split_without_both_kinds(capsys, tmp_path, runs):
    code, _, err = run_cli(capsys, "score", runs["vae2"], "-o", tmp_path / "s.csv", "--normal-class", "0,1,2,3,4,5,6,7")
    assert code != 0 and "has no anomalous images" in one_error_line(err)
    code, _, err = run_cli(capsys, "score", runs["vae2"], "-o", tmp_path / "s.csv", "--normal-class", "x")
    assert code != 0 and "--normal-class must be integers" in one_error_line(err)


def test_score_separates_a_held_out_class_of_real_fashion_mnist(capsys, tmp_path, fashion_mnist):
    from test_realdata import HELD_OUT_AUC_BOUND, HELD_OUT_CLASS, score_held_out

    auc = score_held_out(capsys, tmp_path, fashion_mnist)
    assert auc > HELD_OUT_AUC_BOUND, f"class {HELD_OUT_CLASS} held out: AUC {auc:.3f}"


def test_evaluation_reads_8_bit_images_as_pixels_in_0_1(runs):
    import tfvae
    from tfvae.evaluation import active_units, log_likelihood, per_image_terms

    model = tfvae.load(str(runs["vae2"])).model
    x8 = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
    xf = x8.astype(np.float32) / 255.0
    a, b = per_image_terms(model, x8, seed=1), per_image_terms(model, xf, seed=1)
    np.testing.assert_allclose(a["elbo"], b["elbo"], rtol=1e-6)
    np.testing.assert_allclose(log_likelihood(model, x8, k=10), log_likelihood(model, xf, k=10), rtol=1e-6)
    np.testing.assert_allclose(active_units(model, x8)[1], active_units(model, xf)[1], rtol=1e-6)
