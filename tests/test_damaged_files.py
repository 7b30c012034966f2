"""Damaged files are detected, not trusted: every file of a run directory that tfvae reads
(config.json, metrics.csv, model.keras, the checkpoints, early stopping's best.json and
best.weights.h5) is checked; a damaged one gives a one-line error naming it and what to do, or a
one-line note and a recovery that ends where an undamaged run would."""

import os
import shutil

import numpy as np
import pytest

import tfvae
from conftest import one_error_line, run_cli

ARGS = ["--hidden", "32", "-z", "2", "-b", "32", "--seed", "5", "-q"]


@pytest.fixture(scope="module")
def trained(bars_npz, tmp_path_factory):
    """A finished 3-epoch VAE run with early stopping (so best.json and best.weights.h5 exist)."""
    from tfvae.cli.main import main

    out = tmp_path_factory.mktemp("damaged") / "run"
    with pytest.raises(SystemExit) as e:
        main(["fit", "-d", bars_npz, "-o", str(out), "-e", "3", "--early-stopping", "5", *ARGS])
    assert e.value.code == 0
    for name in ("config.json", "metrics.csv", "model.keras", "best.json", "best.weights.h5"):
        assert (out / name).is_file(), name
    return out


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def weights(run_dir):
    return [w.numpy() for w in tfvae.load(str(run_dir)).keras_model.weights]


def truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def flip_a_byte(path, at=0.5):
    with open(path, "r+b") as f:
        f.seek(int(os.path.getsize(path) * at))
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("damage", ["truncated", "not an object", "binary"])
def test_a_damaged_config_is_one_line_naming_it_for_every_reader(capsys, run, damage):
    path = run / "config.json"
    if damage == "truncated":
        truncate(path)
    elif damage == "not an object":
        path.write_text("[1, 2]\n")
    else:
        path.write_bytes(b"\xff\xfe\x00garbage")
    for args in (["info", run], ["sample", run, "-o", run.parent / "s.png"], ["fit", "-o", run, "--resume"]):
        code, _, err = run_cli(capsys, *args)
        line = one_error_line(err)
        assert code != 0 and "config.json is damaged" in line and "--overwrite" in line, (args, line)
    assert not (run.parent / "s.png").exists()


@pytest.mark.parametrize("damage", ["truncated mid-row", "garbage row", "a missing epoch"])
def test_a_damaged_metrics_file_is_one_line_and_moving_it_aside_resumes(capsys, run, damage):
    path = run / "metrics.csv"
    text = path.read_text()
    if damage == "truncated mid-row":
        path.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])
    elif damage == "garbage row":
        path.write_text(text + "\x00\x00\x01,zz\n")
    else:
        lines = text.splitlines()
        path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # epoch 2 gone
    for args in (["info", run], ["curves", run, "-o", run.parent / "c.png"], ["fit", "-o", run, "--resume", "-e", 4]):
        code, _, err = run_cli(capsys, *args)
        line = one_error_line(err)
        assert code != 0 and "metrics.csv is damaged" in line and "move it aside" in line, (args, line)
    assert not (run.parent / "c.png").exists()
    os.replace(path, run.parent / "metrics.csv.damaged")  # what the message says to do
    code, _, err = run_cli(capsys, "fit", "-o", run, "--resume", "-e", 4)
    assert code == 0, err
    rows = tfvae.rundir.RunDir(str(run)).read_metrics()
    assert [r["epoch"] for r in rows] == [4]  # the later epochs' rows only
    code, out, err = run_cli(capsys, "info", run)
    assert code == 0 and "trained    4 of 4 epochs" in out, (out, err)


@pytest.mark.parametrize("damage", ["truncated", "a flipped byte"])
def test_a_damaged_model_file_is_one_line_and_resume_writes_it_again_bit_identical(capsys, run, trained, damage):
    before = weights(trained)
    if damage == "truncated":
        truncate(run / "model.keras")
    else:
        flip_a_byte(run / "model.keras", at=0.6)
    for args in (["sample", run, "-o", run.parent / "s.png"], ["export", run, "-o", run.parent / "export"],
                 ["evaluate", run, "-k", 2, "--max-test-examples", 4]):
        code, _, err = run_cli(capsys, *args)
        line = one_error_line(err)
        assert code != 0 and "model.keras is damaged" in line and f"tfvae fit --out {run} --resume" in line, (args, line)
    assert not (run.parent / "s.png").exists() and not (run.parent / "export").exists()
    code, _, err = run_cli(capsys, "fit", "-o", run, "--resume")  # what the message says to do
    assert code == 0, err
    for a, b in zip(weights(run), before, strict=True):  # early stopping's best epoch, as before
        np.testing.assert_array_equal(a, b)


def test_a_run_without_its_model_file_loads_the_newest_intact_checkpoint(capsys, run):
    os.remove(run / "model.keras")
    steps = tfvae.rundir.RunDir(str(run)).checkpoint_steps()
    assert len(steps) == 2
    newest = run / "checkpoints" / f"ckpt-{steps[-1]}.data-00000-of-00001"
    truncate(newest)
    code, _, err = run_cli(capsys, "sample", run, "-o", run.parent / "s.png", "-n", 4)
    assert code == 0, err
    notes = [line for line in err.splitlines() if "is damaged" in line]
    assert len(notes) == 1 and f"ckpt-{steps[-1]}" in notes[0] and f"loading the one before it, ckpt-{steps[0]}" in notes[0]
    assert (run.parent / "s.png").is_file()
    truncate(run / "checkpoints" / f"ckpt-{steps[0]}.data-00000-of-00001", keep=0.01)
    code, _, err = run_cli(capsys, "sample", run, "-o", run.parent / "t.png", "-n", 4)
    line = one_error_line(err)
    assert "every checkpoint in" in line and "--overwrite" in line
    assert not (run.parent / "t.png").exists()


@pytest.mark.parametrize("damage", ["weights", "best.json"])
def test_damaged_early_stopping_files_are_not_trusted(capsys, run, bars_npz, tmp_path, damage):
    if damage == "weights":
        flip_a_byte(run / "best.weights.h5", at=0.7)
    else:
        (run / "best.json").write_text("{\"epoch\": 2, \"val_lo")
    code, _, err = run_cli(capsys, "fit", "-o", run, "--resume", "-e", 4)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note:") and "best" in line]
    assert len(notes) == 1 and "not trusted" in notes[0], err
    # the damaged weights were never loaded: model.keras holds epoch 4's (the last epoch, whether
    # or not it is the best), as a run of 4 epochs trained at once does
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", tmp_path / "four", "-e", 4, "--early-stopping", 5,
                           *ARGS)
    assert code == 0, err
    for a, b in zip(weights(run), weights(tmp_path / "four"), strict=True):
        np.testing.assert_array_equal(a, b)
