"""--early-stopping: stops after PATIENCE epochs without a better validation loss, keeps the best
epoch's weights in model.keras, and a resumed run decides as the uninterrupted one."""

import hashlib
import json
import math

import numpy as np
import pytest

import tfvae
from tfvae.errors import ConfigError
from tfvae.rundir import RunDir
from tfvae.training.callbacks import EarlyStoppingState as EarlyStopping

# A wide network on 256 training images overfits within a few dozen epochs.
OVERFIT = dict(hidden="256", latent_dim=16, batch_size=16, validation_split=0.5, learning_rate=0.01,
               early_stopping=3, epochs=40)
FLUCTUATING = [300, 250, 240, 245, 238, 239, 241, 244, 237, 250]  # validation losses of epochs 1..10


def _rows(losses):
    return [{"epoch": i + 1, "val_loss": v} for i, v in enumerate(losses)]


def _stop_epoch(stopper, losses):
    for i, v in enumerate(losses):
        stopper.update(i + 1, v)
        if stopper.should_stop(i + 1):
            return i + 1
    return None


def test_stops_after_patience_epochs_without_a_better_loss():
    stopper = EarlyStopping(3, 0, [])
    assert _stop_epoch(stopper, FLUCTUATING) == 8  # best 238 at epoch 5; 6, 7, 8 are worse
    assert (stopper.best_epoch, stopper.best_loss) == (5, 238)
    assert _stop_epoch(EarlyStopping(4, 0, []), FLUCTUATING) is None  # epoch 9 improves in time
    assert _stop_epoch(EarlyStopping(1, 0, []), [300, math.nan, 290, 291]) == 2  # NaN is no improvement


def test_warm_up_epochs_are_not_counted():
    rising = [200, 210, 220, 230, 240, 250, 260]
    assert _stop_epoch(EarlyStopping(2, 0, []), rising) == 3
    assert _stop_epoch(EarlyStopping(2, 4, []), rising) == 6  # patience counts from the end of warm-up


def test_the_state_follows_from_the_metrics_rows_and_the_kept_weights():
    stopper = EarlyStopping(3, 0, _rows(FLUCTUATING[:6]), held_epoch=5)
    assert (stopper.best_epoch, stopper.best_loss) == (5, 238)
    assert _stop_epoch_from(stopper, FLUCTUATING, 7) == 8
    # The run trained without --early-stopping so far: no weights kept, watch from epoch 6 on.
    fresh = EarlyStopping(3, 0, _rows(FLUCTUATING[:6]), held_epoch=0)
    assert (fresh.best_epoch, fresh.since) == (0, 6)
    assert not fresh.should_stop(6)
    # A crash after best.weights.h5 was written, before the checkpoint: the repeated epoch rewrites it.
    replay = EarlyStopping(3, 0, _rows(FLUCTUATING[:4]), held_epoch=5)
    assert replay.best_epoch == 3 and replay.since == 0


def _stop_epoch_from(stopper, losses, first):
    for epoch in range(first, len(losses) + 1):
        stopper.update(epoch, losses[epoch - 1])
        if stopper.should_stop(epoch):
            return epoch
    return None


def _weights(path):
    return [w.numpy() for w in tfvae.load(path).keras_model.weights]


def _trajectory(run_dir):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_sec")}
            for r in RunDir(run_dir).read_metrics()]


def test_a_fit_stops_early_and_keeps_the_best_epoch(bars_npz, tmp_path):
    out = str(tmp_path / "run")
    result = tfvae.fit(bars_npz, out=out, progress=False, **OVERFIT)
    run = RunDir(out)
    rows = run.read_metrics()
    losses = [r["val_loss"] for r in rows]
    best = int(np.argmin(losses)) + 1
    assert len(rows) < OVERFIT["epochs"], "the settings are meant to overfit; early stopping never came"
    assert len(rows) - best == OVERFIT["early_stopping"]
    assert result.metrics["best_epoch"] == best
    with open(run.best_info_path) as f:
        info = json.load(f)
    with open(run.best_weights_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert info == {"epoch": best, "val_loss": pytest.approx(losses[best - 1]), "sha256": digest}
    assert tfvae.load(out).config.early_stopping == 3
    # model.keras holds the best epoch's weights: those of a run trained for `best` epochs only
    # (training does not depend on the validation images), and not the last epoch's
    at_best, at_last = str(tmp_path / "at-best"), str(tmp_path / "at-last")
    tfvae.fit(bars_npz, out=at_best, progress=False, **{**OVERFIT, "early_stopping": 0, "epochs": best})
    tfvae.fit(bars_npz, out=at_last, progress=False, **{**OVERFIT, "early_stopping": 0, "epochs": len(rows)})
    for a, b in zip(_weights(out), _weights(at_best)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(out), _weights(at_last)))

    # best.weights.h5 that is not the file best.json describes (a crash between the two writes)
    # is not loaded: resuming, which trains nothing, leaves the last epoch's weights in model.keras.
    other = tfvae.load(at_best).keras_model
    for w in other.weights:
        w.assign(w + 1.0)
    other.save_weights(run.best_weights_path)  # a valid weights file, not the one best.json names
    tfvae.fit(out=out, resume=True, progress=False, epochs=OVERFIT["epochs"])
    assert len(run.read_metrics()) == len(rows)
    for a, b in zip(_weights(out), _weights(at_last)):
        np.testing.assert_array_equal(a, b)


def test_rounded_losses_in_metrics_csv_do_not_change_the_decision(tmp_path):
    """metrics.csv keeps 6 significant digits, so epochs 2 and 3 tie there; best.json is exact."""
    losses = [300, 266.67440, 266.67420, 270, 271, 272]
    whole = EarlyStopping(3, 0, [])
    assert _stop_epoch(whole, losses) == 6 and whole.best_epoch == 3
    run = RunDir(str(tmp_path))
    run.write_metrics(_rows(losses[:3]))
    rows = run.read_metrics()
    assert rows[1]["val_loss"] == rows[2]["val_loss"], "the CSV is expected to round these two alike"
    resumed = EarlyStopping(3, 0, rows, held_epoch=3, held_loss=losses[2])
    assert (resumed.best_epoch, resumed.best_loss, resumed.since) == (3, losses[2], 0)
    assert _stop_epoch_from(resumed, losses, 4) == 6


def test_a_resumed_run_stops_where_the_uninterrupted_one_did(bars_npz, tmp_path):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    tfvae.fit(bars_npz, out=whole, progress=False, **OVERFIT)
    stopped_at = len(RunDir(whole).read_metrics())
    tfvae.fit(bars_npz, out=parts, progress=False, **{**OVERFIT, "epochs": stopped_at - 2})
    tfvae.fit(out=parts, resume=True, progress=False, epochs=OVERFIT["epochs"])
    assert _trajectory(parts) == _trajectory(whole)
    for a, b in zip(_weights(parts), _weights(whole)):
        np.testing.assert_array_equal(a, b)
    # resuming a run that stopped trains no further; a larger patience trains on
    tfvae.fit(out=parts, resume=True, progress=False, epochs=OVERFIT["epochs"])
    assert len(RunDir(parts).read_metrics()) == stopped_at
    tfvae.fit(out=parts, resume=True, progress=False, epochs=stopped_at + 2, early_stopping=50)
    assert len(RunDir(parts).read_metrics()) == stopped_at + 2


def test_resuming_a_run_without_validation_images_with_early_stopping_says_to_start_anew(bars_npz, tmp_path):
    out = str(tmp_path / "r")
    tfvae.fit(bars_npz, out=out, progress=False, epochs=1, validation_split=0.0, hidden="32", latent_dim=2)
    with pytest.raises(ConfigError, match="was trained with --validation-split 0, so --early-stopping has no "
                                          "validation loss to watch; start a new run"):
        tfvae.fit(out=out, resume=True, progress=False, epochs=2, early_stopping=2)
    assert len(RunDir(out).read_metrics()) == 1
