"""What a newcomer sees first: pictures that look like what the model learned, datasets found
from plain paths, one model per export folder, a quiet Python API, help that fits the terminal,
and messages that say what happened."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tfvae
from conftest import make_bars, make_idx_dir, one_error_line, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL, PAD = 28, 2


def _png(path):
    import tensorflow as tf

    return tf.io.decode_png(open(path, "rb").read()).numpy()


def _cells(image, rows, columns):
    """The (rows, columns) 28x28 cells of a padded grid, as uint8 arrays."""
    return [[image[PAD + r * (CELL + PAD):PAD + r * (CELL + PAD) + CELL,
                   PAD + c * (CELL + PAD):PAD + c * (CELL + PAD) + CELL] for c in range(columns)]
            for r in range(rows)]


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory):
    """A VAE trained (1 epoch) on grey bars: pixels 0 and 150, so binarized images differ from them."""
    root = tmp_path_factory.mktemp("grey")
    x, y = make_bars(640, seed=3)
    x = (x.astype(np.float32) * (150 / 255)).round().astype(np.uint8)
    np.savez(root / "grey.npz", x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    run = root / "run"
    from tfvae.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["fit", "-d", str(root / "grey.npz"), "-o", str(run), "--hidden", "32", "-z", "2", "-b", "64",
              "-e", "1", "-q"])
    assert e.value.code == 0
    return run, x[512:]


# ------------------------------------------------------------------------------------ pictures
def test_the_default_sample_grid_shows_pixel_means_as_the_api_and_the_epoch_images_do(capsys, tmp_path, grey_run):
    run, _ = grey_run
    code, out, err = run_cli(capsys, "sample", run, "-n", "16", "--seed", "3", "-o", tmp_path / "s.png")
    assert code == 0, err
    assert "pixel means" in out
    image = _png(tmp_path / "s.png")
    levels = np.unique(np.concatenate([c.ravel() for row in _cells(image, 4, 4) for c in row]))
    assert len(levels) > 20  # grey levels, not 0/255 speckle
    from tfvae import images as img

    model = tfvae.load(str(run))
    np.testing.assert_array_equal(image, img.grid(model.sample(16, seed=3)))  # the API's default
    epoch = _png(next(iter(sorted((run / "images").glob("epoch_*.png")))))
    assert len(np.unique(epoch)) > 20  # the epoch images are pixel means too
    code, _, err = run_cli(capsys, "sample", run, "-n", "16", "--sampled-pixels", "-o", tmp_path / "b.png")
    assert code == 0, err
    cells = _cells(_png(tmp_path / "b.png"), 4, 4)
    assert set(np.unique(np.concatenate([c.ravel() for row in cells for c in row]))) <= {0, 255}


def test_interpolate_has_no_blank_cell_and_shows_the_original_images(capsys, tmp_path, grey_run):
    run, test = grey_run
    code, _, err = run_cli(capsys, "interpolate", run, "--from", "0", "--to", "5", "--steps", "8",
                           "-o", tmp_path / "i.png")
    assert code == 0, err
    top, bottom = _cells(_png(tmp_path / "i.png"), 2, 8)
    for cell in top + bottom:
        assert cell.min() < 200, "a blank (white) cell"
    np.testing.assert_array_equal(top[0], test[0])  # the originals as the source holds them, grey
    np.testing.assert_array_equal(top[-1], test[5])
    assert len(np.unique(top[3])) > 2  # a blend of the two between them


def test_reconstruct_shows_the_test_images_not_their_binarized_copies(capsys, tmp_path, grey_run):
    run, test = grey_run
    code, _, err = run_cli(capsys, "reconstruct", run, "-n", "4", "-o", tmp_path / "r.png")
    assert code == 0, err
    top, _ = _cells(_png(tmp_path / "r.png"), 2, 4)
    for i in range(4):
        np.testing.assert_array_equal(top[i], test[i])  # 0 and 150, never 255


def test_the_manifold_has_its_z_values_on_axes_and_the_latent_map_sizes_dots_to_the_set(capsys, tmp_path, grey_run):
    run, _ = grey_run
    code, _, err = run_cli(capsys, "manifold", run, "--grid", "6", "-o", tmp_path / "m.png")
    assert code == 0, err
    figure = _png(tmp_path / "m.png")
    assert figure.shape[2] == 3 and figure.shape[0] > 6 * 28 + 40  # the grid plus tick labels and a title
    from tfvae.pictures import dot_size

    assert dot_size(100) > dot_size(5000) >= 3 and dot_size(10) <= 40


def test_class_names_of_idx_folders(tmp_path):
    from tfvae.data import load_source
    from tfvae.data.idx import FASHION_MNIST_CLASSES

    fashion = tmp_path / "fashion-mnist"
    fashion.mkdir()
    make_idx_dir(fashion)
    assert load_source(f"idx:{fashion}").class_names == FASHION_MNIST_CLASSES
    plain = tmp_path / "digits"
    plain.mkdir()
    make_idx_dir(plain)
    assert load_source(f"idx:{plain}").class_names is None
    (plain / "classes.txt").write_text("\n".join(f"class {i}" for i in range(10)) + "\n")
    assert load_source(f"idx:{plain}").class_names[3] == "class 3"


# ------------------------------------------------------------------------------------ data sources
def test_plain_paths_are_recognised_and_near_miss_names_get_a_suggestion(tmp_path, monkeypatch):
    from tfvae.data import canonical_spec, load_source
    from tfvae.errors import DataError, NetworkError

    idx = tmp_path / "fm"
    idx.mkdir()
    make_idx_dir(idx)
    assert canonical_spec(str(idx)) == f"idx:{idx}"
    x, y = make_bars(20, seed=0)
    np.savez(tmp_path / "d.npz", x_train=x[:16], x_test=x[16:])
    assert canonical_spec(str(tmp_path / "d.npz")) == f"npz:{tmp_path / 'd.npz'}"
    (tmp_path / "pics").mkdir()
    assert canonical_spec(str(tmp_path / "pics")) == f"folder:{tmp_path / 'pics'}"
    assert canonical_spec("mnist") == "mnist" and canonical_spec("idx:/x") == "idx:/x"
    assert load_source(str(idx)).x_train.shape[0] == 20
    with pytest.raises(DataError, match="no such file or directory"):
        canonical_spec(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="did you mean fashion_mnist"):
        load_source("fashion-mnist", data_dir=str(tmp_path / "tfds"))
    from tfvae.data import tfds_source

    monkeypatch.setattr(tfds_source, "network_reachable", lambda timeout=3.0: False)
    with pytest.raises(NetworkError) as e:
        load_source("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    assert "apt-get install dataset-fashion-mnist" in str(e.value) and "idx:/usr/share/datasets/fashion-mnist" in str(e.value)


def test_fit_takes_a_plain_folder_and_names_the_run_after_its_last_part(capsys, tmp_path, monkeypatch):
    idx = tmp_path / "fashion-mnist"
    idx.mkdir()
    make_idx_dir(idx, n_train=64, n_test=16)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "fit", "-d", idx, "--hidden", "16", "-z", "2", "-b", "32", "-e", "1")
    assert code == 0, err
    (run,) = [d for d in os.listdir(tmp_path / "runs") if not d.startswith(".")]  # beside it: its .lock
    assert run.startswith("fashion-mnist-vae-")
    assert "created folder runs" in err and "(1 epoch)" in err
    config = json.loads((tmp_path / "runs" / run / "config.json").read_text())
    assert config["dataset"] == f"idx:{idx}"


# ------------------------------------------------------------------------------------ export folders
def test_one_export_folder_holds_one_model_and_keeps_every_versions_files(capsys, tmp_path, runs):
    exp = tmp_path / "exp"
    code, _, err = run_cli(capsys, "export", runs["vae2"], "-o", exp, "--quantize", "none")
    assert code == 0, err
    assert "A `vae` over" in (exp / "README.md").read_text()
    before = sorted(p.relative_to(exp).as_posix() for p in exp.rglob("*"))
    # another model: refused in one line, the folder untouched
    code, _, err = run_cli(capsys, "export", runs["ae"], "-o", exp, "--quantize", "none")
    line = one_error_line(err)
    assert code != 0 and "one export folder holds one model" in line and "vae2" in line
    code, _, err = run_cli(capsys, "export", runs["vae2"], "-o", exp, "--name", "other", "--quantize", "none")
    assert code != 0 and "holds the model 'vae2'" in one_error_line(err)
    assert sorted(p.relative_to(exp).as_posix() for p in exp.rglob("*")) == before
    # the same model again: version 2 beside version 1, version 1's TFLite files kept
    first = (exp / "tflite" / "decoder_none.tflite").read_bytes()
    code, _, err = run_cli(capsys, "export", runs["vae2"], "-o", exp, "--quantize", "none", "--quantize", "float16")
    assert code == 0, err
    assert "moved to" in err
    assert sorted(os.listdir(exp / "saved_model" / "vae2")) == ["1", "2"]
    assert (exp / "history" / "1" / "tflite" / "decoder_none.tflite").read_bytes() == first
    assert json.loads((exp / "history" / "1" / "report.json").read_text())["saved_model"]["version"] == 1
    assert json.loads((exp / "report.json").read_text())["saved_model"]["version"] == 2
    assert (exp / "tflite" / "decoder_float16.tflite").is_file()
    code, _, err = run_cli(capsys, "export", runs["ae"], "-o", tmp_path / "ae-exp", "--quantize", "none")
    assert code == 0 and "An `ae` over" in (tmp_path / "ae-exp" / "README.md").read_text()


# ------------------------------------------------------------------------------------ quiet API
def test_the_python_api_is_as_quiet_as_the_command_line(tmp_path, bars_npz):
    script = f"""
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
import tfvae
logging.getLogger("mine").info("my own line")
run = tfvae.fit({bars_npz!r}, epochs=1, hidden="16", latent_dim=2, out={str(tmp_path / 'run')!r}, progress=False)
print(tfvae.load(run.run_dir).sample(2).shape)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFVAE_VERBOSE")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(2, 28, 28, 1)"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["INFO:mine:my own line"], proc.stderr  # the user's logging, and nothing of TensorFlow's


# ------------------------------------------------------------------------------------ info, help, messages
def test_info_shows_only_what_the_run_uses_and_a_checkpoint_mid_epoch(capsys, tmp_path, runs):
    code, out, _ = run_cli(capsys, "info", runs["vae2"])
    assert code == 0
    for unused in ("gaussian_scale", "gaussian_variance", "prior_components", "prior_init", "l1", "noise"):
        assert f" {unused} " not in out
    assert "binarize           dynamic (the default for a bernoulli likelihood)" in out
    run = tmp_path / "run"
    shutil.copytree(runs["vae2"], run)
    last = json.loads(json.dumps(tfvae.api.RunDir(str(run)).read_metrics()[-1]))
    (run / "checkpoints" / f"ckpt-{int(last['step']) + 3}.index").write_bytes(b"")
    _, out, _ = run_cli(capsys, "info", run)
    assert "and 3 steps into epoch 3 (checkpointed" in out


def test_help_fits_80_columns_and_every_option_says_what_it_does(capsys):
    import click

    from tfvae.cli.main import cli

    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    commands = out.split("Commands:")[1]
    assert "..." not in commands and all(name in commands for name in cli.commands)
    for name, command in cli.commands.items():
        _, text, _ = run_cli(capsys, name, "--help")
        assert all(len(line) <= 80 for line in text.splitlines()), (name, max(text.splitlines(), key=len))
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{name} {param.opts[0]} has no help"
    _, text, _ = run_cli(capsys, "fit", "--help")
    flat = " ".join(text.split())
    assert "Adam's epsilon. [default: 1e-07]" in flat and "(0: automatic). [default: 0]" in flat


def test_the_progress_bar_shows_the_reconstruction_term_and_not_the_elbo_twice():
    from tfvae.training.loop import shown_metrics

    means = {"loss": 100.0, "log_px_z": -90.0, "kl": 10.0, "elbo": -100.0, "penalty_x": 1.0}
    assert list(shown_metrics(means)) == ["loss", "log_px_z", "kl"]
    warm = {"loss": 95.0, "log_px_z": -90.0, "kl": 10.0, "elbo": -100.0}  # a KL weight of 0.5
    assert list(shown_metrics(warm, "val_")) == ["val_loss", "val_log_px_z", "val_kl", "val_elbo"]


def test_a_recipe_cut_short_says_its_warm_up_has_barely_begun(capsys, tmp_path, bars_npz):
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", tmp_path / "r", "--hidden", "16", "-z", "2",
                           "-b", "64", "-e", "1", "--kl-warmup", "100")
    assert code == 0, err
    assert "reaches only 1% of it after these 1" in " ".join(err.split())


def test_a_dataset_smaller_than_the_batch_trains_with_the_batch_clipped(capsys, tmp_path):
    x, y = make_bars(30, seed=2)
    np.savez(tmp_path / "few.npz", x_train=x[:20], x_test=x[20:])
    code, _, err = run_cli(capsys, "fit", "-d", f"npz:{tmp_path / 'few.npz'}", "-o", tmp_path / "r",
                           "--hidden", "16", "-z", "2", "-e", "2")
    assert code == 0, err
    assert "note: 18 training images, fewer than --batch-size 128: the batch is clipped to 18" in err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["batch_size"] == 18
    code, _, err = run_cli(capsys, "fit", "-o", tmp_path / "r", "--resume", "-e", "3")
    assert code == 0, err


def test_picture_outputs_say_when_they_create_a_folder_and_curves_name_their_units(capsys, tmp_path, runs):
    from tfvae.pictures import CURVE_LABELS, CURVE_PANELS

    code, _, err = run_cli(capsys, "curves", runs["vae2"], "-o", tmp_path / "new" / "deeper" / "c.png")
    assert code == 0, err
    from tfvae.rundir import shown_path

    assert f"created folder {shown_path(str(tmp_path / 'new' / 'deeper'))}" in err
    # a picture command that fails leaves no folder behind
    (tmp_path / "not-a-run").mkdir()
    code, _, err = run_cli(capsys, "curves", tmp_path / "not-a-run", "-o", tmp_path / "other" / "deeper" / "c.png")
    assert code != 0 and not (tmp_path / "other").exists()
    for _, _, keys in CURVE_PANELS:  # every plotted metric is named with its unit, not as a column name
        for key in keys:
            if key not in ("loss", "penalty", "reconstruction", "reconstruction_corrupted"):  # nats or squared error
                assert "(" in CURVE_LABELS[key] and "nats" in CURVE_LABELS[key], key
