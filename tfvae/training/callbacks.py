"""What the loop does at the end of an epoch, as small callbacks: TensorBoard, the epoch picture,
metrics.csv, early stopping with its best weights, and the epoch's checkpoint, in that order.
Each gets the loop (`trainer`) it serves.

    on_train_begin(trainer, rows)   rows: the metrics rows of the epochs already trained
    on_epoch_begin(trainer, epoch)  -> True to stop before training epoch `epoch` + 1
    on_epoch_end(trainer, epoch, row, rows)  after the epoch's row, before its checkpoint
    should_stop(trainer, epoch)     -> True to stop after epoch `epoch` (its checkpoint saved)
    on_train_end(trainer)           before model.keras is written

Only the chief of a multi-worker job writes files; the callbacks that write check `trainer.is_chief`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys

import numpy as np
import tensorflow as tf

from tfvae.rundir import atomic_write_bytes, atomic_write_text

GRID_RECONSTRUCTIONS = 16


class Callback:
    def on_train_begin(self, trainer, rows: list) -> None:
        pass

    def on_epoch_begin(self, trainer, epoch: int) -> bool:
        return False

    def on_epoch_end(self, trainer, epoch: int, row: dict, rows: list) -> None:
        pass

    def should_stop(self, trainer, epoch: int) -> bool:
        return False

    def on_train_end(self, trainer) -> None:
        pass


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar, written with core TensorFlow (no tensorboard package needed)."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)


class TensorBoard(Callback):
    """train/<metric> and validation/<metric> scalars per epoch in RUN/tb."""

    def __init__(self):
        self._writer = None

    def on_epoch_end(self, trainer, epoch, row, rows):
        if not trainer.is_chief:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(trainer.run.tensorboard_dir)
        with self._writer.as_default(step=epoch):
            for k in trainer.metric_names:
                write_scalar(f"train/{k}", row[k], epoch)
            for k in trainer.metric_names:
                if f"val_{k}" in row:
                    write_scalar(f"validation/{k}", row[f"val_{k}"], epoch)

    def on_train_end(self, trainer):
        if self._writer is not None:
            self._writer.flush()


class EpochImages(Callback):
    """The family's epoch picture (prior samples, or images above their reconstructions) as
    RUN/images/epoch_NNNN.png, every --image-every epochs and after the last."""

    def __init__(self, every: int, last: int):
        self.every, self.last = every, last

    def on_epoch_end(self, trainer, epoch, row, rows):
        if trainer.is_chief and (epoch % self.every == 0 or epoch == self.last):
            self.write(trainer, epoch)

    @staticmethod
    def image(trainer) -> np.ndarray:
        splits = trainer.splits
        # the images as the source holds them (not binarized), as `tfvae reconstruct` shows them
        held_out = len(splits.validation) > 0
        source = splits.validation_originals if held_out else splits.test_originals
        labels = splits.validation_labels if held_out else splits.test_labels
        model = trainer.model
        labels = labels[:GRID_RECONSTRUCTIONS] if model.conditional else None
        return model.epoch_image(np.asarray(source[:GRID_RECONSTRUCTIONS], np.float32), trainer.seeds["images"],
                                 labels=labels)

    def write(self, trainer, epoch: int) -> str:
        from tfvae import images as img

        os.makedirs(trainer.run.images_dir, exist_ok=True)  # a run directory that lost it gets it back
        path = os.path.join(trainer.run.images_dir, f"epoch_{epoch:04d}.png")
        img.write_png(path, self.image(trainer))
        return path


class MetricsCSV(Callback):
    """metrics.csv: cut back to the checkpoint's epoch when training (re)starts, rewritten after
    each epoch BEFORE its checkpoint, so a crash in between repeats the epoch, never skips it."""

    def on_train_begin(self, trainer, rows):
        if trainer.is_chief:
            trainer.run.write_metrics(rows)

    def on_epoch_end(self, trainer, epoch, row, rows):
        if trainer.is_chief:
            trainer.run.write_metrics(rows)


class Checkpoint(Callback):
    """The epoch's checkpoint (every part of the model, the optimizer, step, epoch), written after
    metrics.csv and best.json: a crash in between repeats the epoch, never skips it. Mid-epoch
    checkpoints (--checkpoint-every, signals) are the loop's."""

    def on_epoch_end(self, trainer, epoch, row, rows):
        from tfvae.runtime import report_epoch_end

        trainer.save_checkpoint()
        report_epoch_end(epoch)


class EarlyStoppingState:
    """Stops when the validation loss has not improved for `patience` epochs, the epochs of KL
    warm-up not counted (the loss is still falling by design then). The state follows from the
    metrics rows, so a resumed run decides as the uninterrupted one would."""

    def __init__(self, patience: int, warmup: int, rows: list, held_epoch: int = 0, held_loss=None):
        """rows: the metrics of the epochs trained so far; held_epoch, held_loss: the epoch whose
        weights best.weights.h5 holds (0: none) and its exact validation loss (best.json)."""
        self.patience, self.warmup = patience, warmup
        self.best_epoch, self.best_loss, self.since = 0, math.inf, 0
        for row in rows:
            self.update(int(row["epoch"]), row.get("val_loss"))
        trained = int(rows[-1]["epoch"]) if rows else 0
        if 0 < held_epoch <= trained:
            # metrics.csv rounds the losses, so two epochs may tie there: the held epoch is the
            # best if its rounded loss is the lowest, and its exact loss comes from best.json.
            row = next((r for r in rows if int(r["epoch"]) == held_epoch), {})
            if row.get("val_loss") == self.best_loss:
                self.best_epoch = held_epoch
                self.best_loss = float(held_loss) if held_loss is not None else self.best_loss
                return
        if self.best_epoch != held_epoch and held_epoch <= trained:
            # The best epoch's weights were not kept (the run trained without --early-stopping
            # until now): start watching from here.
            self.best_epoch, self.best_loss, self.since = 0, math.inf, trained
        # held_epoch > trained: a crash after best.json was written and before the checkpoint;
        # the repeated epochs reach the same best again and rewrite it.

    def update(self, epoch: int, loss) -> bool:
        """Records an epoch's validation loss; True when it is the best so far."""
        if loss is None or not math.isfinite(loss) or loss >= self.best_loss:
            return False
        self.best_epoch, self.best_loss = epoch, float(loss)
        return True

    def should_stop(self, epoch: int) -> bool:
        return epoch - max(self.best_epoch, self.warmup, self.since) >= self.patience

    def explain(self, epoch: int) -> str:
        waited = epoch - max(self.best_epoch, self.warmup, self.since)
        return (f"early stopping after epoch {epoch}: no better validation loss in {waited} "
                f"epoch{'s' if waited != 1 else ''}; resume with a larger --early-stopping to train on")


class EarlyStopping(Callback):
    """--early-stopping N: watches the validation loss, keeps the best epoch's weights in
    best.weights.h5 (with best.json: its epoch, exact loss and the file's SHA-256, written first),
    stops after N epochs without a better one, and leaves the best weights in the model."""

    def __init__(self, patience: int, warmup: int):
        self.patience, self.warmup = patience, warmup
        self.state = None

    def on_train_begin(self, trainer, rows):
        held = best_info(trainer.run)
        trained = int(rows[-1]["epoch"]) if rows else 0
        if os.path.exists(trainer.run.best_info_path) and not held["intact"] and held["epoch"] <= trained:
            # damaged, not trusted (a crash between best.json and the weights leaves held epoch > trained)
            what = ("best.json is unreadable" if not held["epoch"] else
                    "best.weights.h5 is not the file best.json names (its SHA-256 differs)")
            print(f"note: {what} in {trainer.run.path}: those weights are not trusted and will not be loaded",
                  file=sys.stderr, flush=True)
        self.state = EarlyStoppingState(self.patience, self.warmup, rows, held["epoch"], held["val_loss"])

    def on_epoch_begin(self, trainer, epoch):
        if self.state.should_stop(epoch):  # a resumed run that had stopped
            trainer.progress.message(self.state.explain(epoch))
            return True
        return False

    def on_epoch_end(self, trainer, epoch, row, rows):
        if self.state.update(epoch, row.get("val_loss")):
            save_best_weights(trainer, epoch, self.state.best_loss)

    def should_stop(self, trainer, epoch):
        if self.state.should_stop(epoch):
            trainer.progress.message(self.state.explain(epoch))
            return True
        return False

    def on_train_end(self, trainer):
        state, last = self.state, int(trainer.epoch.numpy())
        held = best_info(trainer.run)
        trainer.result_extras["best_epoch"] = state.best_epoch
        if state.best_epoch and state.best_epoch == held["epoch"] and held["intact"]:
            trainer.model.keras_model.load_weights(trainer.run.best_weights_path)  # model.keras: the best epoch
            trainer.progress.message(f"model.keras holds epoch {state.best_epoch}'s weights, the best "
                                     f"validation loss ({state.best_loss:.2f})")
        elif last:
            trainer.progress.message(f"model.keras holds the last epoch's weights (epoch {last}): "
                                     + ("no epoch had a finite validation loss" if not state.best_epoch else
                                        f"best.weights.h5 does not hold epoch {state.best_epoch}'s; "
                                        "resume with a larger --epochs to train it again"))


def save_best_weights(trainer, epoch: int, loss: float) -> None:
    """The current weights as the best so far. best.json (epoch, exact loss, the weights' SHA-256)
    is written first, then best.weights.h5, each atomically: after a crash between the two,
    best.json names an epoch later than the checkpoint's (the resumed run repeats it) and the
    digest shows that the weights file is not that epoch's."""
    run = trainer.run
    path = run.best_weights_path
    tmp = os.path.join(os.path.dirname(path), f".best-{os.getpid()}.weights.h5")
    try:
        trainer.model.keras_model.save_weights(tmp)
        with open(tmp, "rb") as f:
            data = f.read()
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_text(run.best_info_path, json.dumps({"epoch": epoch, "val_loss": loss, "sha256": digest}) + "\n")
    atomic_write_bytes(path, data)


def best_info(run) -> dict:
    """best.json: the epoch (0: none), its exact validation loss, and whether best.weights.h5
    is intact (its SHA-256 is the one best.json names)."""
    try:
        with open(run.best_info_path, encoding="utf-8") as f:
            info = json.load(f)
        epoch, loss = int(info["epoch"]), float(info["val_loss"])
        with open(run.best_weights_path, "rb") as f:
            data = f.read()
    except (OSError, ValueError, KeyError, TypeError):
        return {"epoch": 0, "val_loss": None, "intact": False}
    intact = "sha256" not in info or hashlib.sha256(data).hexdigest() == info["sha256"]
    return {"epoch": epoch, "val_loss": loss, "intact": intact}
