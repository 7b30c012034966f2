"""The training loop: the run directory it writes, resume equals uninterrupted, NaN stops cleanly."""

import os

import numpy as np
import pytest

import tfvae
from tfvae.errors import TrainingError
from tfvae.rundir import RunDir

from conftest import SMALL


def _weights(run_dir):
    model = tfvae.load(run_dir)
    return [w.numpy() for w in model.keras_model.weights]


def test_run_directory_contents(bars_npz, tmp_path):
    out = tmp_path / "run"
    result = tfvae.fit(bars_npz, out=str(out), progress=False, **{**SMALL, "epochs": 2})
    run = RunDir(str(out))
    config, meta = run.read()
    assert config.epochs == 2 and meta["image_shape"] == [28, 28, 1]
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("loss", "log_px_z", "kl", "elbo", "val_elbo", "images_per_sec"):
        assert key in rows[-1]
    assert os.path.isfile(run.model_path)
    assert sorted(os.listdir(run.images_dir)) == ["epoch_0001.png", "epoch_0002.png"]
    with open(os.path.join(run.images_dir, "epoch_0002.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    import tensorflow as tf

    ckpt = tf.train.latest_checkpoint(run.checkpoint_dir)
    names = [n for n, _ in tf.train.list_variables(ckpt)]
    for part in ("optimizer", "step", "epoch"):
        assert any(n.startswith(part) for n in names), part
    # the checkpoint holds the model: without model.keras, load() restores it to the same weights
    final = _weights(str(out))
    os.remove(run.model_path)
    for a, b in zip(_weights(str(out)), final):
        np.testing.assert_array_equal(a, b)
    events = [e for f in os.listdir(run.tensorboard_dir)
              for e in tf.compat.v1.train.summary_iterator(os.path.join(run.tensorboard_dir, f))]
    tags = {v.tag for e in events for v in e.summary.value}
    assert {"train/elbo", "validation/elbo"} <= tags
    assert result.metrics["epoch"] == 2


def test_beta_and_kl_warmup_shape_the_training_loss(bars_npz, tmp_path):
    # 512 bars, 10% held out, batch 64: 7 steps an epoch; --kl-warmup 2 ramps beta over 14 steps
    tfvae.fit(bars_npz, out=str(tmp_path / "w"), progress=False, **{**SMALL, "epochs": 3}, beta=2.0, kl_warmup=2)
    rows = RunDir(str(tmp_path / "w")).read_metrics()
    assert [r["kl_weight"] for r in rows] == pytest.approx([1.0, 2.0, 2.0])  # the weight at each epoch's last step
    # the weights the steps used: epoch 1 ramps 2/14 .. 14/14, so its mean loss lies strictly between
    # those weights' losses; epoch 3 is all at beta = 2
    first, last = rows[0], rows[2]
    assert -(first["log_px_z"] - first["kl"] / 7) < first["loss"] < -(first["log_px_z"] - 1.0 * first["kl"])
    assert last["loss"] == pytest.approx(-(last["log_px_z"] - 2.0 * last["kl"]), rel=1e-4)
    # without warm-up every step's loss is -(E_q[log p(x|z)] - beta KL), so the epoch means obey it too
    tfvae.fit(bars_npz, out=str(tmp_path / "b"), progress=False, **{**SMALL, "epochs": 1}, beta=2.0)
    row = RunDir(str(tmp_path / "b")).read_metrics()[0]
    assert row["kl_weight"] == pytest.approx(2.0)
    assert row["loss"] == pytest.approx(-(row["log_px_z"] - 2.0 * row["kl"]), rel=1e-4)
    assert row["loss"] > -row["elbo"] + 0.5 * row["kl"]  # beta = 2 weighs the KL twice, not once


def test_resumed_run_ends_with_the_same_weights(bars_npz, tmp_path):
    opts = dict(SMALL, model="vae", epochs=3, seed=11)
    tfvae.fit(bars_npz, out=str(tmp_path / "straight"), progress=False, **opts)
    tfvae.fit(bars_npz, out=str(tmp_path / "resumed"), progress=False, **{**opts, "epochs": 1})
    tfvae.fit(out=str(tmp_path / "resumed"), resume=True, progress=False, epochs=3)
    a, b = _weights(str(tmp_path / "straight")), _weights(str(tmp_path / "resumed"))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    rows = RunDir(str(tmp_path / "resumed")).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    straight = RunDir(str(tmp_path / "straight")).read_metrics()
    assert rows[-1]["loss"] == pytest.approx(straight[-1]["loss"], rel=1e-6)


def test_nan_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(bars_npz, tmp_path):
    import tensorflow as tf

    out = str(tmp_path / "nan")
    tfvae.fit(bars_npz, out=out, progress=False, **SMALL)
    run = RunDir(out)
    good = tf.train.latest_checkpoint(run.checkpoint_dir)
    with pytest.raises(TrainingError, match=r"NaN or infinite at epoch 2, step \d+; the last good checkpoint "
                                            r"\(ckpt-\d+, epoch 1\) is kept"):
        tfvae.fit(out=out, resume=True, progress=False, epochs=2, learning_rate=1e30)
    assert tf.train.latest_checkpoint(run.checkpoint_dir) == good
    assert [r["epoch"] for r in run.read_metrics()] == [1]


def test_nan_before_any_checkpoint_of_an_overwritten_run_is_a_clear_error(bars_npz, tmp_path):
    out = str(tmp_path / "over")
    tfvae.fit(bars_npz, out=out, progress=False, **SMALL)
    with pytest.raises(TrainingError, match="no checkpoint had been written yet"):
        tfvae.fit(bars_npz, out=out, overwrite=True, progress=False, **{**SMALL, "learning_rate": 1e30})
    assert RunDir(out).read()[0].learning_rate == 1e30 and RunDir(out).read_metrics() == []
