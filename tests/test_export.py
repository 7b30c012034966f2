"""Export: a SavedModel a bare TensorFlow process serves, TFLite decoders, the numpy-only runner."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfvae
from tfvae.errors import TfvaeError

from conftest import run_cli

# Error bounds of each TFLite variant against the Keras decoder's pixel means (pixels in [0, 1]).
# Measured on this test's model (max; mean): none 1.8e-7; 2.4e-8, float16 6.5e-5; 5.3e-6, dynamic 1.1e-3;
# 8.4e-5, int16 2.6e-2; 9.1e-5, int8 2.5e-2; 1.1e-3 (calibrated with the prior draws that hold each
# dimension's extremes: 5.2e-2 without them, a clipped input); each bound is 2-5x that, so a conversion
# that loses more precision than its kind should fails.
ERROR_BOUNDS = {"none": 1e-6, "float16": 3e-4, "dynamic": 5e-3, "int16": 0.06, "int8": 0.07}
MEAN_ERROR_BOUNDS = {"none": 1e-7, "float16": 3e-5, "dynamic": 5e-4, "int16": 5e-4, "int8": 4e-3}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, bars_npz):
    from tfvae.cli.main import main

    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, model in (("vae", "vae"), ("ae", "ae")):
        run = root / f"run-{name}"
        with pytest.raises(SystemExit) as e:
            main(["fit", "-d", bars_npz, "-m", model, "-o", str(run), "--hidden", "32", "-z", "4", "-b", "64",
                  "-e", "2", "-q"])
        assert e.value.code == 0
        with pytest.raises(SystemExit) as e:
            main(["export", str(run), "-o", str(root / f"exp-{name}"), "--name", name])
        assert e.value.code == 0
        out[name] = (run, root / f"exp-{name}")
    return out


BARE = textwrap.dedent("""
    import importlib.abc, json, sys
    import numpy as np

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("tfvae", "tensorflow_probability", "tf_keras"):
                raise ImportError("refused in the bare process: " + name)
            return None

    sys.meta_path.insert(0, Refuse())
    import tensorflow as tf

    path, data = sys.argv[1], np.load(sys.argv[2])
    m = tf.saved_model.load(path)
    out = {"signatures": sorted(m.signatures.keys())}
    images = tf.constant(data["images"])
    out["decode"] = m.signatures["decode"](z=tf.constant(data["z"]))["images"].numpy().tolist()
    enc = m.signatures["encode"](images=images)
    out["encode"] = {k: v.numpy().tolist() for k, v in enc.items()}
    out["serving_default"] = m.signatures["serving_default"](images=images)["reconstructions"].numpy().tolist()
    if "sample" in m.signatures:
        s = m.signatures["sample"](n=tf.constant(5))
        out["sample"] = {"shape": list(s["images"].shape), "z": list(s["z"].shape),
                         "min": float(tf.reduce_min(s["images"])), "max": float(tf.reduce_max(s["images"])),
                         "z_values": s["z"].numpy().tolist(), "image_values": s["images"].numpy().tolist()}
        out["score"] = m.signatures["score"](images=images)["score"].numpy().tolist()
    out["modules"] = sorted({k.split(".")[0] for k in sys.modules})
    print(json.dumps(out))
""")


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_savedmodel_runs_every_signature_in_a_process_that_imports_only_tensorflow(tmp_path, exported, kind):
    run, exp = exported[kind]
    model = tfvae.load(str(run))
    rng = np.random.default_rng(0)
    images = rng.random((3, 28, 28, 1)).astype(np.float32)
    z = rng.standard_normal((4, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", images=images, z=z)
    script = tmp_path / "bare.py"
    script.write_text(BARE)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-I", str(script), str(exp / "saved_model" / kind / "1"),
                           str(tmp_path / "in.npz")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "tfvae" not in out["modules"] and "tensorflow_probability" not in out["modules"]
    expected = ["decode", "encode", "serving_default"] + (["sample", "score"] if kind == "vae" else [])
    assert out["signatures"] == sorted(expected)
    np.testing.assert_allclose(out["decode"], model.decode(z), atol=1e-5)
    np.testing.assert_allclose(out["serving_default"], model.reconstruct(images), atol=1e-5)
    if kind == "vae":
        q = model.posterior(images)
        np.testing.assert_allclose(out["encode"]["loc"], q.mean().numpy(), atol=1e-5)
        np.testing.assert_allclose(out["encode"]["scale"], q.stddev().numpy(), atol=1e-5)
        s = out["sample"]
        assert s["shape"] == [5, 28, 28, 1] and s["z"] == [5, 4] and 0.0 <= s["min"] and s["max"] <= 1.0
        # the sampled images are the decoder's pixel means of the returned z
        np.testing.assert_allclose(s["image_values"], model.decode(np.array(s["z_values"], np.float32)), atol=1e-5)
        # score: minus the one-sample ELBO with the signature's fixed noise, recomputed here
        import tensorflow as tf

        from tfvae.export.savedmodel import SCORE_SEED

        eps = tf.random.stateless_normal([3, 1, 4], SCORE_SEED)
        expected = -model.model.elbo(tf.constant(images), eps)["elbo"].numpy()
        np.testing.assert_allclose(out["score"], expected, rtol=1e-5, atol=1e-3)
    else:
        np.testing.assert_allclose(out["encode"]["code"], model.encode(images), atol=1e-5)


def test_saved_model_cli_lists_the_signatures(exported):
    _, exp = exported["vae"]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--dir", str(exp / "saved_model" / "vae" / "1"), "--all"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for sig, tensors in (("serving_default", ["inputs['images']", "outputs['reconstructions']"]),
                         ("encode", ["outputs['loc']", "outputs['scale']"]),
                         ("decode", ["inputs['z']", "outputs['images']"]),
                         ("sample", ["inputs['n']", "outputs['images']", "outputs['z']"]),
                         ("score", ["outputs['score']"])):
        assert f"signature_def['{sig}']" in proc.stdout
        for t in tensors:
            assert t in proc.stdout


def test_every_tflite_variant_runs_in_litert_within_its_error_bound(exported):
    from tfvae.export.tflite import LiteDecoder

    run, exp = exported["vae"]
    report = json.loads((exp / "report.json").read_text())
    model = tfvae.load(str(run))
    z = model.model.reference_codes(300, 123)
    reference = model.decode(z)
    assert ERROR_BOUNDS["int8"] > ERROR_BOUNDS["int16"] > ERROR_BOUNDS["float16"] > ERROR_BOUNDS["none"]
    for variant, bound in ERROR_BOUNDS.items():
        entry = report["tflite"][variant]
        assert entry["max_abs_error"] < bound and entry["mean_abs_error"] < MEAN_ERROR_BOUNDS[variant], (variant, entry)
        lite = LiteDecoder(path=str(exp / entry["file"]))
        got = np.concatenate([lite(z[:1]), lite(z[1:65]), lite(z[65:])])  # batch 1, 64 and the rest
        assert got.shape == reference.shape
        assert np.abs(got - reference).max() < bound, variant
        assert np.abs(got - reference).mean() < MEAN_ERROR_BOUNDS[variant], variant
        assert entry["bytes"] == os.path.getsize(exp / entry["file"])
        assert entry["us_per_sample_batch1"] > 0 and entry["us_per_sample_batch64"] > 0
        assert entry["mean_abs_error"] <= entry["p999_abs_error"] <= entry["max_abs_error"]
    sizes = {v: report["tflite"][v]["bytes"] for v in ERROR_BOUNDS}
    assert sizes["int8"] < sizes["float16"] < sizes["none"] and sizes["dynamic"] < sizes["float16"]
    assert sizes["int16"] < sizes["none"]
    int8 = report["tflite"]["int8"]["tensors"]
    assert int8["inputs"][0]["dtype"] == "int8" and int8["inputs"][0]["quantization"]["scale"] > 0
    assert int8["outputs"][0]["dtype"] == "int8"
    # int16 activations: more accurate than int8, float32 in and out
    assert report["tflite"]["int16"]["mean_abs_error"] < report["tflite"]["int8"]["mean_abs_error"] / 5
    assert report["tflite"]["int16"]["tensors"]["inputs"][0]["dtype"] == "float32"


def test_the_recommended_decoder_is_the_smallest_within_the_target_and_compare_png_shows_them_all(exported):
    import tensorflow as tf

    from tfvae.export.exporter import ACCURACY_TARGET, COMPARE_SAMPLES, meets_target, recommended_variant

    _, exp = exported["vae"]
    report = json.loads((exp / "report.json").read_text())
    within = [v for v, r in report["tflite"].items() if meets_target(r)]
    assert "none" in within and report["recommended_decoder"] in within
    assert report["tflite"][report["recommended_decoder"]]["bytes"] == min(report["tflite"][v]["bytes"] for v in within)
    assert report["accuracy_target"] == ACCURACY_TARGET
    assert recommended_variant({"a": {"bytes": 5, "mean_abs_error": 0.001, "p999_abs_error": 0.01,
                                      "max_abs_error": 0.07}}) is None
    rows = report["compare_png"]["rows"]
    assert rows[0] == "float (Keras)" and rows[1:] == list(report["tflite"])
    png = tf.io.decode_png((exp / "tflite" / "compare.png").read_bytes()).numpy()
    assert png.shape == (len(rows) * 28 + (len(rows) + 1) * 2, COMPARE_SAMPLES * 28 + (COMPARE_SAMPLES + 1) * 2, 1)
    readme = (exp / "README.md").read_text()
    assert f"`decoder_{report['recommended_decoder']}.tflite`; `edge/tfvae_edge.py` uses it" in readme


def test_sampler_tflite_draws_images_on_the_device(exported):
    from ai_edge_litert.interpreter import Interpreter

    run, exp = exported["vae"]
    sampler = Interpreter(model_path=str(exp / "tflite" / "sampler.tflite")).get_signature_runner()
    out = sampler(n=np.array(2000, np.int32))
    images, z = out["images"], out["z"]
    assert images.shape == (2000, 28, 28, 1) and z.shape == (2000, 4) and images.min() >= 0 and images.max() <= 1
    # the images are the decoder's on the codes it drew, and the codes are N(0, I)'s
    np.testing.assert_allclose(images, tfvae.load(str(run)).decode(z), atol=2e-6)
    assert np.abs(z.mean(axis=0)).max() < 0.1 and np.abs(z.std(axis=0) - 1).max() < 0.06
    again = sampler(n=np.array(2000, np.int32))["z"]
    assert not np.allclose(again, z)  # a new draw each call (the builtin random op is unseeded)


def test_edge_runner_in_a_venv_with_only_numpy_and_litert(tmp_path, exported):
    _, exp = exported["vae"]
    venv = tmp_path / "edge-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                          str(exp / "edge" / "requirements.txt")], capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, "pip could not install numpy and ai-edge-litert: " + pip.stderr[-2000:]
    assert subprocess.run([py, "-c", "import tensorflow"], capture_output=True).returncode != 0
    runner = str(exp / "edge" / "tfvae_edge.py")

    def run(*args):
        proc = subprocess.run([py, runner, *map(str, args)], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    model = exp / "tflite" / "decoder_int8.tflite"
    assert "wrote" in run("--model", model, "-n", 16, "--seed", 5, "-o", tmp_path / "a.png")
    # without --model: the recommended decoder of report.json
    recommended = exp / "tflite" / f"decoder_{json.loads((exp / 'report.json').read_text())['recommended_decoder']}.tflite"
    run("-n", 4, "--seed", 1, "-o", tmp_path / "r1.npy")
    run("--model", recommended, "-n", 4, "--seed", 1, "-o", tmp_path / "r2.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "r1.npy"), np.load(tmp_path / "r2.npy"))
    run("--model", model, "-n", 16, "--seed", 5, "-o", tmp_path / "b.png")
    run("--model", model, "-n", 16, "--seed", 6, "-o", tmp_path / "c.png")
    a, b, c = ((tmp_path / f).read_bytes() for f in ("a.png", "b.png", "c.png"))
    assert a == b and a != c
    import tensorflow as tf

    png = tf.io.decode_png(a).numpy()
    assert png.shape == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2, 1)
    # .npy output equals the interpreter run in-process on the same z (seeded numpy draws)
    run("--model", exp / "tflite" / "decoder_none.tflite", "-n", 3, "--seed", 2, "-o", tmp_path / "x.npy")
    from tfvae.export.tflite import LiteDecoder

    z = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    lite = LiteDecoder(path=str(exp / "tflite" / "decoder_none.tflite"))
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), np.clip(lite(z), 0, 1), atol=1e-6)


@pytest.mark.parametrize("args,message", [
    (["--model", "tflite/sampler.tflite"], "is not a decoder (its input is int32 [], not codes"),
    (["--model", "tflite/decoder_int8.tflite", "--z", "missing.npy"], "cannot read --z missing.npy"),
    (["--model", "tflite/decoder_int8.tflite", "-o", "no-such-dir/s.png"], "cannot write no-such-dir/s.png"),
    (["--model", "tflite/decoder_int8.tflite", "-o", "s.jpg"], "--out must end in .png or .npy"),
    (["--model", "tflite/decoder_int8.tflite", "--prior", "missing.json"], "cannot read the prior missing.json"),
    (["--model", "tflite/decoder_int8.tflite", "--prior", "wide-prior.json"],
     "does not fit the decoder's 4-dimensional codes"),
])
def test_edge_runner_bad_input_is_one_line_and_writes_nothing(exported, args, message):
    _, exp = exported["vae"]
    (exp / "wide-prior.json").write_text(json.dumps({"weights": [1.0], "loc": [[0.0] * 5], "scale": [[1.0] * 5]}))
    proc = subprocess.run([sys.executable, str(exp / "edge" / "tfvae_edge.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=exp)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not list(exp.glob("s.*")) and not list(exp.glob("*.tmp-*"))


def test_reexport_refuses_to_overwrite_and_force_or_a_new_version_works(capsys, exported):
    run, exp = exported["vae"]
    code, _, err = run_cli(capsys, "export", run, "-o", exp, "--name", "vae", "--version", "1", "--quantize", "none")
    assert code != 0 and "saved_model/vae/1 already exists; pass --force" in err
    code, out, err = run_cli(capsys, "export", run, "-o", exp, "--name", "vae", "--quantize", "none")
    assert code == 0, err
    assert (exp / "saved_model" / "vae" / "2" / "saved_model.pb").is_file()  # the next free version
    code, _, err = run_cli(capsys, "export", run, "-o", exp, "--name", "vae", "--version", "1", "--force", "--quantize", "none")
    assert code == 0, err
    assert sorted(os.listdir(exp / "saved_model" / "vae")) == ["1", "2"]
    assert not [d for d in os.listdir(exp) if d.startswith(".")]  # no staging or trash left


def test_a_failed_export_leaves_no_partial_version(tmp_path, exported, monkeypatch):
    from tfvae.export import exporter, tflite

    run, _ = exported["vae"]
    out = tmp_path / "exp"

    def broken(*args, **kwargs):
        raise TfvaeError("conversion failed (injected)")

    monkeypatch.setattr(tflite, "convert_decoder", broken)
    with pytest.raises(TfvaeError, match="injected"):
        exporter.export_run(tfvae.load(str(run)), str(out), name="m")
    assert not (out / "saved_model").exists()  # the SavedModel was written, but only in staging
    assert os.listdir(out) == []


def test_autoencoder_export_has_no_prior_signatures(capsys, exported, tmp_path):
    run, exp = exported["ae"]
    report = json.loads((exp / "report.json").read_text())
    assert report["saved_model"]["signatures"] == ["serving_default", "encode", "decode"]
    assert report["sampler"] is None and not (exp / "tflite" / "sampler.tflite").exists()
    assert sorted(os.listdir(exp / "tflite")) == ["compare.png"] + [f"decoder_{v}.tflite" for v in
                                                                 ("dynamic", "float16", "int16", "int8", "none")]
    code, _, err = run_cli(capsys, "export", run, "-o", tmp_path / "e2", "--quantize", "int8")
    assert code == 0 and "sample` and `score` signatures and sampler.tflite are for vae/iwae/hvae runs only" in err


def test_export_readme_says_how_to_serve_and_run(exported):
    _, exp = exported["vae"]
    text = (exp / "README.md").read_text()
    assert "docker run -p 8501:8501" in text and "target=/models/vae" in text and "MODEL_NAME=vae" in text
    for sig in ("serving_default", "encode", "decode", "sample", "score"):
        assert f"-d @requests/{sig}.json http://localhost:8501/v1/models/vae:predict" in text
        body = json.loads((exp / "requests" / f"{sig}.json").read_text())
        assert body["signature_name"] == sig
    assert "saved_model_cli show --dir saved_model/vae/1 --all" in text
    assert "pip install numpy ai-edge-litert" in text and "Raspberry Pi" in text and "Android" in text


def test_a_prior_an_export_cannot_draw_from_is_one_clear_error_and_leaves_no_version(tmp_path, exported):
    from tfvae.export.exporter import export_run
    from tfvae.probability import Prior, standard_normal_prior

    class Bare(Prior):  # no mixture(): the edge runner could not draw z (found after the SavedModel is staged)
        def distribution(self):
            return standard_normal_prior(self.latent_dim)

        def sample_in_graph(self, n):
            import tensorflow as tf

            return tf.random.normal(tf.stack([n, self.latent_dim]))

    run, _ = exported["vae"]
    trained = tfvae.load(str(run))
    trained.model.prior = Bare(4)
    with pytest.raises(TfvaeError, match="not a mixture of diagonal Gaussians"):
        export_run(trained, str(tmp_path / "exp"), name="bare", quantize=("none",), n_eval=64)
    assert not (tmp_path / "exp" / "saved_model" / "bare").exists()
    assert not [p for p in os.listdir(tmp_path / "exp") if p.startswith(".export-")]


def test_edge_runner_without_a_model_or_a_report_says_what_to_pass(exported, tmp_path):
    import shutil

    _, exp = exported["vae"]
    shutil.copytree(exp / "edge", tmp_path / "edge")  # an edge/ with no report.json beside it
    proc = subprocess.run([sys.executable, str(tmp_path / "edge" / "tfvae_edge.py"), "-n", "2"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no --model given and no recommended decoder found" in proc.stderr.strip().splitlines()[-1]
