"""The command line end to end: every model trains; every bad input is one clear line."""

import gzip
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import tfvae
from tfvae.errors import ConfigError
from tfvae.rundir import RunDir

from conftest import ROOT, SMALL_ARGS, closed_port, make_idx_dir, one_error_line, run_cli

MODEL_ARGS = {
    "ae": [],
    "sae": ["--l1", "0.05"],
    "dae": ["--noise", "masking", "--noise-level", "0.3"],
    "cae": ["--contractive", "0.1", "--code-activation", "sigmoid"],
    "vae": ["--beta", "1.0", "--kl-warmup", "1", "--mc-samples", "2"],
    "iwae": ["--iw-samples", "4"],
}


@pytest.mark.parametrize("model", list(MODEL_ARGS))
def test_every_model_trains_from_the_command_line(capsys, tmp_path, bars_npz, model):
    out = tmp_path / model
    code, stdout, err = run_cli(capsys, "fit", "--dataset", bars_npz, "--model", model, "--out", out,
                                *SMALL_ARGS, "--epochs", "3", *MODEL_ARGS[model])
    assert code == 0, err
    assert stdout.strip() == str(out)
    run = RunDir(str(out))
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_loss"]) for r in rows)
    # it learns: the held-out loss (same seeded noise every epoch) falls as the weights train
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 1.0, [r["val_loss"] for r in rows]
    assert os.path.isfile(run.model_path) and os.listdir(run.images_dir)
    code, stdout, _ = run_cli(capsys, "info", out)
    assert code == 0 and f"model                {model}" in stdout and "last epoch (3)" in stdout
    # the config by concern: data, architecture, training, then the family's own options only
    sections = [line.strip() for line in stdout.splitlines() if line.startswith("  ") and not line.startswith("   ")
                and len(line.split()) <= 2 and not line.strip().startswith("model")]
    assert sections[:4] == ["data", "architecture", "training", f"{model} options"]
    assert ("    l1 " in stdout) == (model == "sae") and ("    beta " in stdout) == (model == "vae")


@pytest.mark.parametrize("model,likelihood", [("vae", "gaussian"), ("ae", "bernoulli")])
def test_conv_network_trains(capsys, tmp_path, bars_npz, model, likelihood):
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-m", model, "--network", "conv", "--likelihood",
                           likelihood, "-o", tmp_path / "c", "--hidden", "32", "-z", "4", "-b", "64", "-e", "1", "-q")
    assert code == 0, err
    assert RunDir(str(tmp_path / "c")).last_metrics()["epoch"] == 1


def test_conv_handles_32x32_color_images(capsys, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x_train=x[:160], x_test=x[160:])
    code, _, err = run_cli(capsys, "fit", "-d", f"npz:{tmp_path / 'c.npz'}", "--network", "conv", "-o",
                           tmp_path / "r", "--hidden", "16", "-z", "3", "-b", "32", "-e", "1", "-q")
    assert code == 0, err
    import tfvae

    assert tfvae.load(str(tmp_path / "r")).sample(2).shape == (2, 32, 32, 3)


def test_progress_bar_and_info_json(capsys, tmp_path, bars_npz):
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", tmp_path / "p", "--hidden", "32", "-z", "4",
                           "-b", "64", "-e", "2")
    assert code == 0
    assert "epoch 1/2 [" in err and "epoch 2/2 [" in err and "img/s" in err and "log_px_z" in err and "elbo" not in err
    code, stdout, _ = run_cli(capsys, "info", tmp_path / "p", "--json")
    info = json.loads(stdout)
    assert info["epochs_done"] == 2 and info["config"]["latent_dim"] == 4 and "val_elbo" in info["last_metrics"]


# ------------------------------------------------------------------------------------ bad input
def _idx_dir(tmp_path, corrupt=None):
    d = tmp_path / "idx"
    d.mkdir()
    make_idx_dir(d, n_train=80, n_test=20)
    path = d / "train-images-idx3-ubyte.gz"
    if corrupt == "gzip":
        path.write_bytes(path.read_bytes()[:200])
    elif corrupt == "truncated":
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-64]))
    elif corrupt == "missing":
        os.remove(d / "t10k-images-idx3-ubyte.gz")
    return f"idx:{d}"


def _npz(tmp_path, kind):
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8)).astype(np.float32)
    path = tmp_path / f"{kind}.npz"
    if kind == "nan":
        x[5, 3, 3] = np.inf
        np.savez(path, x_train=x[:30], x_test=x[30:])
    elif kind == "nokey":
        np.savez(path, train=x)
    elif kind == "corrupt":
        np.savez(path, x_train=x[:30], x_test=x[30:])
        path.write_bytes(path.read_bytes()[:300])
    return f"npz:{path}"


def _folder(tmp_path):
    from tfvae.images import write_png

    d = tmp_path / "imgs"
    d.mkdir()
    write_png(str(d / "a.png"), np.zeros((8, 8, 1), np.uint8))
    write_png(str(d / "b.png"), np.zeros((9, 8, 1), np.uint8))
    return f"folder:{d}"


BAD_INPUTS = {
    "unknown dataset": (lambda t: ["-d", "no_such_dataset_xyz", "--data-dir", str(t / "tfds")],
                        "unknown dataset 'no_such_dataset_xyz'"),
    "unknown model": (lambda t: ["-d", "mnist", "--model", "gan"], "Invalid value for '--model'"),
    "unreachable download": (lambda t: ["-d", "mnist", "--data-dir", str(t / "tfds")],
                             "network is unreachable.*idx:DIR"),
    "missing idx": (lambda t: ["-d", f"idx:{t / 'nowhere'}"], "no such directory"),
    "missing idx test file": (lambda t: ["-d", _idx_dir(t, "missing")], "no test images file"),
    "corrupt idx": (lambda t: ["-d", _idx_dir(t, "gzip")], "corrupt or truncated gzip"),
    "truncated idx": (lambda t: ["-d", _idx_dir(t, "truncated")], "is truncated"),
    "npz without arrays": (lambda t: ["-d", _npz(t, "nokey")], "no x_train or x_test array"),
    "corrupt npz": (lambda t: ["-d", _npz(t, "corrupt")], "corrupt or truncated"),
    "NaN in data": (lambda t: ["-d", _npz(t, "nan")], "NaN or infinite"),
    "mismatched sizes": (lambda t: ["-d", _folder(t)], "mismatched sizes"),
    "zero latent dim": (lambda t: ["-d", "mnist", "--latent-dim", "0"], "--latent-dim must be an integer > 0"),
    "zero epochs": (lambda t: ["-d", "mnist", "--epochs", "0"], "--epochs must be an integer > 0"),
    "negative batch": (lambda t: ["-d", "mnist", "--batch-size", "-5"], "--batch-size must be an integer > 0"),
    "bad hidden": (lambda t: ["-d", "mnist", "--hidden", "400,0"], "--hidden must be positive layer sizes"),
    "option of another model": (lambda t: ["-d", "mnist", "--model", "vae", "--l1", "0.1"],
                                "--l1 applies to --model sae"),
    "beta for iwae": (lambda t: ["-d", "mnist", "--model", "iwae", "--beta", "0.5"], "--beta applies to --model vae"),
    "gaussian option for bernoulli": (lambda t: ["-d", "mnist", "--gaussian-scale", "0.2"],
                                      "--gaussian-scale applies to --likelihood gaussian"),
    "learned scale given": (lambda t: ["-d", "mnist", "--likelihood", "gaussian", "--gaussian-scale", "0.2"],
                            "with --gaussian-variance pixel the scale is learned"),
    "unwritable output": (lambda t: ["-d", "mnist", "--out", str(t / "afile" / "run")], "is a file, not a directory"),
    "resume and overwrite": (lambda t: ["--resume", "--overwrite"], "--resume and --overwrite contradict each other"),
    "early stopping, nothing held out": (lambda t: ["-d", "mnist", "--early-stopping", "5", "--validation-split", "0"],
                                         "--early-stopping watches the validation loss"),
    "negative patience": (lambda t: ["-d", "mnist", "--early-stopping", "-1"], "--early-stopping must be an integer >= 0"),
}


NEEDS_OFFLINE = {"unreachable download"}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_writes_nothing(capsys, tmp_path, monkeypatch, case):
    from tfvae.data.tfds_source import network_reachable

    if case in NEEDS_OFFLINE and network_reachable():
        # a machine with internet: route downloads through a proxy port where nothing listens
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    (tmp_path / "afile").write_text("x")
    args, message = BAD_INPUTS[case]
    out = tmp_path / "run"
    argv = ["fit", *args(tmp_path)]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    code, stdout, err = run_cli(capsys, *argv, "-q")
    assert code != 0
    line = one_error_line(err)
    assert re.search(message, line), line
    assert not out.exists(), "nothing may be written for bad input"


def test_existing_run_dir_needs_resume_or_overwrite(capsys, tmp_path, bars_npz):
    out = tmp_path / "r"
    assert run_cli(capsys, "fit", "-d", bars_npz, "-o", out, *SMALL_ARGS)[0] == 0
    before = sorted(os.listdir(out))
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", out, *SMALL_ARGS)
    assert code != 0 and "already exists; pass --resume to continue it or --overwrite" in one_error_line(err)
    assert sorted(os.listdir(out)) == before
    # --resume with another configuration
    code, _, err = run_cli(capsys, "fit", "-o", out, "--resume", "--latent-dim", "6", "-q")
    assert code != 0 and "trained with --latent-dim 4, not 6" in one_error_line(err)
    # ... found before TensorFlow is imported, and the same from Python
    probe = ("import sys\nfrom tfvae.api import run_config\nfrom tfvae.errors import TfvaeError\n"
             f"try:\n    run_config({{'latent_dim': 6}}, out={str(out)!r}, resume=True)\n"
             "except TfvaeError as e:\n    print(e)\nprint('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout.splitlines()[-2:] == [
        f"cannot resume {out}: the run was trained with --latent-dim 4, not 6; drop the option to resume it, "
        "or train a new run with another --out", "False"], proc.stdout + proc.stderr
    with pytest.raises(ConfigError, match="--config starts a new run"):
        tfvae.fit(out=str(out), resume=True, recipe="fmnist-vae")
    # --overwrite replaces it
    code, _, _ = run_cli(capsys, "fit", "-d", bars_npz, "-o", out, *SMALL_ARGS, "--overwrite", "--seed", "5")
    assert code == 0 and RunDir(str(out)).read()[0].seed == 5
    # --resume of a finished run with more epochs continues
    code, _, err = run_cli(capsys, "fit", "-o", out, "--resume", "--epochs", "2", "-q")
    assert code == 0, err
    assert [r["epoch"] for r in RunDir(str(out)).read_metrics()] == [1, 2]


def test_timings_mark_the_first_step_and_each_saved_epoch(capsys, tmp_path, monkeypatch, bars_npz):
    """What bench/train_speed.py reads: start-up milestones, then one mark per saved epoch, in order."""
    monkeypatch.setenv("TFVAE_TIMINGS", "1")
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", tmp_path / "r", *SMALL_ARGS[:-3], "--epochs", "3", "-q")
    assert code == 0, err
    assert re.search(r"timings \(seconds since the process started\):.* first training step done [0-9.]+ s", err)
    marks = re.findall(r"timings: epoch (\d+) saved at ([0-9.]+) s", err)
    assert [int(e) for e, _ in marks] == [1, 2, 3]
    times = [float(t) for _, t in marks]
    assert times == sorted(times) and times[0] > 0


def test_console_entry_point_prints_one_line_for_bad_input(tmp_path):
    """The real process: TensorFlow's start-up chatter must not bury the error line."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    # the console script installed beside this interpreter (pip install -e .), else the module
    exe = os.path.join(os.path.dirname(sys.executable), "tfvae")
    cmd = [exe] if os.path.isfile(exe) else [sys.executable, "-m", "tfvae"]
    proc = subprocess.run([*cmd, "fit", "-d", f"npz:{tmp_path / 'none.npz'}", "-o", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == f"Error: npz:{tmp_path / 'none.npz'}: no such file; give an .npz " \
                                          "holding x_train and x_test arrays"
    from tfvae.data.tfds_source import network_reachable

    if network_reachable():  # a machine with internet: a proxy port where nothing listens
        env["HTTPS_PROXY"] = f"http://127.0.0.1:{closed_port()}"
    proc = subprocess.run([*cmd, "fit", "-d", "mnist", "-o", str(tmp_path / "r"), "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "network is unreachable" in one_error_line(proc.stderr)
    proc = subprocess.run([*cmd, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "fit" in proc.stdout and "info" in proc.stdout


@pytest.mark.parametrize("tf_config,message", [
    ("{not json", "TF_CONFIG is not valid.*must be JSON like"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "TF_CONFIG task index 2 is out of range.*must be 0 to 1"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": -1}}', "index -1 is out of range"),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "ps", "index": 0}}',
     "task type 'ps'.*'chief' and 'worker' tasks only"),
])
def test_a_bad_tf_config_is_one_clear_line(capsys, tmp_path, monkeypatch, bars_npz, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "--strategy", "multiworker", "-o", tmp_path / "r", "-q")
    assert code != 0 and re.search(message, one_error_line(err)), err
    assert not (tmp_path / "r").exists()
