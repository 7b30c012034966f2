"""The training loop: epochs of chunks of steps, checkpoints, signals, NaN, lost workers, callbacks.

The `Trainer` is given the model, optimizer and strategy (tfvae.training.build makes them from a
config) and knows no model family: it runs `TrainStep` chunks, sums the metrics the family names,
evaluates the validation images with fixed noise, checkpoints every --checkpoint-every steps and
when stopped by a signal, and hands each epoch's row to the callbacks (the last of which writes
the epoch's checkpoint).

The order of examples in an epoch and every random number are functions of (seed, epoch, step),
and the checkpoint holds the optimizer's state and the epoch's partial metric sums, so a run
resumed from a checkpoint, mid-epoch or not, ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from tfvae.errors import Interrupted, RunDirError, TrainingError
from tfvae.progress import Progress, format_metrics
from tfvae.rundir import RunDir, checkpoint_number
from tfvae.runtime import report_startup
from tfvae.strategy import WorkerInfo
from tfvae.training.step import TrainStep, seeds_for

EVAL_BATCH = 500
SHOWN = ("loss", "log_px_z", "reconstruction", "reconstruction_corrupted", "kl", "kl_mc", "elbo", "iwae_bound")


def shown_metrics(means: dict, prefix: str = "") -> dict:
    """What the progress bar shows of a step's means: the loss, the reconstruction term, the KL,
    and the ELBO only where it is not the loss with its sign changed (a KL weight below 1)."""
    shown = {prefix + k: means[k] for k in SHOWN if k in means}
    loss, elbo = shown.get(prefix + "loss"), shown.get(prefix + "elbo")
    if loss is not None and elbo is not None and abs(loss + elbo) <= 1e-6 * max(1.0, abs(loss)):
        del shown[prefix + "elbo"]
    return shown
DISTRIBUTED_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                      tf.errors.CancelledError, tf.errors.InternalError)


def learning_rate_for(config, epoch: int) -> float:
    """The learning rate of an epoch: constant, or Burda et al.'s schedule (IWAE paper): 3^i epochs
    at lr * 10^(-i/7) for i = 0..7 (3280 epochs), the last rate after that."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    stage, end = 0, 1
    while epoch >= end and stage < 7:
        stage += 1
        end += 3 ** stage
    return config.learning_rate * 10 ** (-stage / 7)


def weights_digest(variables) -> str:
    """sha256 of the weights' bytes: equal digests mean bit-identical weights (e.g. across workers)."""
    h = hashlib.sha256()
    for v in variables:
        h.update(np.ascontiguousarray(v.numpy()).tobytes())
    return h.hexdigest()


def restore_newest_intact(checkpoint, directory: str, match: str = "existing",
                          doing: str = "resuming from") -> Optional[str]:
    """Restores the newest checkpoint in `directory` that reads back whole into `checkpoint`
    (a tf.train.Checkpoint) and returns its path; None when there is none. A damaged one (a
    truncated data file, a lost index, a failed checksum) is passed over with a one-line note on
    stderr; when every one is damaged, a one-line RunDirError that names --overwrite.
    match: "existing" (every object of `checkpoint` is in the file) or "partial" (loading a model
    without its optimizer)."""
    state = tf.train.get_checkpoint_state(directory)
    paths = list(state.all_model_checkpoint_paths) if state else []
    latest = tf.train.latest_checkpoint(directory)
    if latest and latest not in paths:
        paths.append(latest)
    if not paths:
        return None
    damaged = []
    for path in sorted(paths, key=checkpoint_number, reverse=True):  # newest first
        try:
            status = checkpoint.restore(path)
            status.assert_existing_objects_matched() if match == "existing" else status.expect_partial()
            if match != "existing":  # expect_partial defers reading: read the values now
                status.assert_nontrivial_match()
        except Exception as e:  # DataLossError, IndexError ("Read less bytes"), NotFoundError, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            damaged.append(f"{os.path.basename(path)} ({type(e).__name__}: {first})")
            continue
        if damaged:  # said even with --quiet: the run goes on from an earlier step
            print(f"note: checkpoint {'; '.join(damaged)} is damaged; {doing} the one before it, "
                  f"{os.path.basename(path)}", file=sys.stderr, flush=True)
        return path
    raise RunDirError(f"every checkpoint in {directory} is damaged: {'; '.join(damaged)}; the run cannot "
                      "be resumed: start it again with --overwrite")


class _StopOnSignals:
    """SIGINT/SIGTERM set a flag that the training loop reads at the next step; a second SIGINT
    interrupts at once."""

    def __init__(self, flag: tf.Variable):
        self.flag = flag
        self.signal_name = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal_name == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.flag.assign(1.0)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class Trainer:
    """Trains a model on `Splits` into a run directory.

    Args:
      config: the run's Config (the training section: epochs, checkpoints, learning rate).
      splits: the data (`tfvae.data.Splits`).
      run: the RunDir checkpoints, metrics and images go to.
      model: a model family instance, made under `strategy.scope()`.
      optimizer: its optimizer, built over `model.trainable_variables`.
      strategy: the tf.distribute strategy.
      worker: where this process sits in a multi-worker job.
      jit: whether the step is compiled with XLA.
      callbacks: the per-epoch outputs (tfvae.training.callbacks).
      progress: a Progress bar (stderr) or None for silence.
    """

    def __init__(self, config, splits, run: RunDir, *, model, optimizer, strategy, worker: WorkerInfo = WorkerInfo(),
                 jit: bool, callbacks=(), progress: Optional[Progress] = None, policy: str = "float32"):
        self.config = config
        self.splits = splits
        self.run = run
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.worker = worker
        self.is_chief = worker.is_chief
        self.jit = jit
        self.policy = policy
        self.callbacks = list(callbacks)
        self.progress = progress or Progress(enabled=False)
        self.replicas = strategy.num_replicas_in_sync
        self.global_batch = config.batch_size
        self.steps_per_epoch = len(splits.train) // self.global_batch
        self.seeds = seeds_for(config.seed)
        self.metric_names = tuple(model.metric_names)
        self.result_extras = {}
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Partial sums of the current epoch's metrics, so a mid-epoch resume reports the same row.
        self.epoch_sums = tf.Variable(tf.zeros([len(self.metric_names)], tf.float64), trainable=False,
                                      name="epoch_sums")
        self.epoch_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch_seconds")
        self.checkpoint = tf.train.Checkpoint(
            **model.parts, optimizer=optimizer, step=self.step, epoch=self.epoch, epoch_sums=self.epoch_sums,
            epoch_seconds=self.epoch_seconds,
        )
        # Every worker saves (saving is collective); only the chief's copy is kept, in the run directory.
        self._scratch = None if self.is_chief else tempfile.mkdtemp(prefix=f"tfvae-worker{worker.index}-")
        self._manager = None
        from tfvae.strategy import has_gpu

        device = "/GPU:0" if (has_gpu() and self.replicas == 1) else "/CPU:0"
        with tf.device(device):  # 8-bit images stay 8-bit here; a batch is converted when gathered
            train_x = tf.identity(tf.convert_to_tensor(splits.train))
            # a conditional model's labels, gathered with the images
            train_y = tf.identity(tf.convert_to_tensor(splits.train_labels, tf.int32)) if model.conditional else None
        self.val_x = tf.convert_to_tensor(splits.validation, tf.float32)
        self.val_y = tf.convert_to_tensor(splits.validation_labels, tf.int32) if model.conditional else None
        self.train_step = TrainStep(model, optimizer, strategy, train_x, self.global_batch, self.steps_per_epoch,
                                    self.step, self.seeds["step_noise"], jit, train_y=train_y)
        self._eval_fn = tf.function(self._eval_batch, reduce_retracing=True)

    # ------------------------------------------------------------------ held-out metrics
    def _eval_batch(self, x, seed, y=None):
        noise = self.model.draw_noise(tf.shape(x)[0], seed)
        noise.pop("binarize", None)  # evaluation sets are binarized or dequantized once, with a fixed seed
        noise.pop("dequantize", None)
        _, metrics = self.model.given(y).loss(x, noise, self.model.eval_schedule())
        return {k: tf.reduce_sum(metrics[k]) for k in self.metric_names}

    def evaluate(self, x, y=None) -> dict:
        """Mean metrics over images `x` (labels `y` for a conditional model) with fixed noise
        (deterministic from epoch to epoch)."""
        n = int(x.shape[0])
        if n == 0:
            return {}
        totals = {k: 0.0 for k in self.metric_names}
        for i, start in enumerate(range(0, n, EVAL_BATCH)):
            seed = tf.random.experimental.stateless_fold_in(self.seeds["validation"], i)
            sums = self._eval_fn(x[start:start + EVAL_BATCH], seed,
                                 None if y is None else y[start:start + EVAL_BATCH])
            for k in totals:
                totals[k] += float(sums[k])
        return {k: v / n for k, v in totals.items()}

    def gradients(self, x, seed, y=None):
        """(loss, gradients) of one global batch (labels y for a conditional model), summed over the
        replicas; nothing is updated."""
        return self.train_step.gradients(x, seed, y)

    # ------------------------------------------------------------------ checkpoints
    def order_for_epoch(self, epoch: int):
        seed = tf.random.experimental.stateless_fold_in(self.seeds["data_order"], epoch)
        return tf.argsort(tf.random.stateless_uniform([len(self.splits.train)], seed))

    def restore(self, directory: Optional[str] = None) -> bool:
        """Restores the latest intact checkpoint of the run (every worker reads the chief's);
        False when there is none."""
        return restore_newest_intact(self.checkpoint, directory or self.run.checkpoint_dir, match="existing") is not None

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """Created at first use, once the run directory exists (with --overwrite: the new one)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self._scratch or self.run.checkpoint_dir, max_to_keep=2, step_counter=self.step,
                checkpoint_name="ckpt")
        return self._manager

    def save_checkpoint(self) -> str:
        """Saves a checkpoint; a full disk or a filesystem that refuses the write is one line (the
        checkpoints before it stay intact: TensorFlow writes the index last)."""
        try:
            return self.manager.save(checkpoint_number=self.step)
        except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.FailedPreconditionError,
                tf.errors.UnavailableError, OSError) as e:
            from tfvae.errors import failure_reason

            what = "the disk is full" if isinstance(e, tf.errors.ResourceExhaustedError) else failure_reason(e)
            raise RunDirError(f"cannot save a checkpoint at step {int(self.step.numpy())} in "
                              f"{self.manager.directory}: {what}; the earlier checkpoints are intact: free "
                              f"space (or fix the folder), then continue with: tfvae fit --out {self.run.path} "
                              "--resume") from None

    def cleanup(self) -> None:
        """Removes a non-chief worker's scratch checkpoints."""
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def steps_per_call(self) -> int:
        if self.config.steps_per_call:
            return self.config.steps_per_call
        return max(1, min(100, math.ceil(self.steps_per_epoch / 20)))

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict:
        """Trains up to config.epochs; returns the last metrics row (and the weights' digest).

        SIGINT/SIGTERM save a checkpoint at the next step and raise Interrupted; a checkpoint is
        also saved every --checkpoint-every steps and at the end of each epoch.
        """
        try:
            with _StopOnSignals(self.train_step.stop_flag) as signals:
                return self._train(signals)
        except DISTRIBUTED_ERRORS as e:
            if self.config.strategy != "multiworker":
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise TrainingError(
                f"worker {self.worker.index} of {self.worker.count} lost the other workers "
                f"({type(e).__name__}: {first[:160]}); the job stops. The last checkpoint is in "
                f"{self.run.checkpoint_dir}: restart every worker with --resume"
            ) from None
        finally:
            self.cleanup()

    def _train(self, signals) -> dict:
        cfg = self.config
        rows = [r for r in self.run.read_metrics() if r.get("epoch", 0) <= int(self.epoch.numpy())]
        for callback in self.callbacks:
            callback.on_train_begin(self, rows)
        chunk = self.steps_per_call()
        every = cfg.checkpoint_every
        first_call = True
        while int(self.epoch.numpy()) < cfg.epochs:
            epoch = int(self.epoch.numpy())
            if any([callback.on_epoch_begin(self, epoch) for callback in self.callbacks]):
                break
            self.optimizer.learning_rate.assign(learning_rate_for(cfg, epoch))
            order = self.order_for_epoch(epoch)
            s = int(self.step.numpy()) - epoch * self.steps_per_epoch  # > 0 when resuming mid-epoch
            sums = dict(zip(self.metric_names, self.epoch_sums.numpy().tolist()))
            seconds = float(self.epoch_seconds.numpy())
            self.progress.start(f"epoch {epoch + 1}/{cfg.epochs}", self.steps_per_epoch)
            while s < self.steps_per_epoch:
                count = min(chunk, self.steps_per_epoch - s)
                if every:
                    count = min(count, every - int(self.step.numpy()) % every)
                t0 = time.perf_counter()
                chunk_sums, done, finite, stopped = self.train_step.chunk(order, tf.constant(s), tf.constant(count))
                done = int(done)
                if first_call:
                    first_call = False
                    report_startup()
                seconds += time.perf_counter() - t0
                for k, v in zip(self.metric_names, chunk_sums.numpy().tolist()):
                    sums[k] += v
                s += done
                if not bool(finite):
                    self._stop_non_finite(epoch, s + 1)
                self._show(s, sums, seconds)
                if signals.signal_name and cfg.strategy != "multiworker":
                    stopped = True  # one process: stop now; workers agree on a step through the all-reduce
                at_checkpoint = every and int(self.step.numpy()) % every == 0 and s < self.steps_per_epoch
                if bool(stopped) or at_checkpoint:
                    self.epoch_sums.assign(list(sums.values()))
                    self.epoch_seconds.assign(seconds)
                    path = self.save_checkpoint()
                    if bool(stopped):
                        self._interrupted(signals, epoch, s, path)
            self.epoch.assign(epoch + 1)
            row = self._finish_epoch(epoch + 1, sums, seconds)
            rows.append(row)
            self.epoch_sums.assign(tf.zeros_like(self.epoch_sums))
            self.epoch_seconds.assign(0.0)
            for callback in self.callbacks:  # metrics.csv, ..., then the epoch's checkpoint
                callback.on_epoch_end(self, epoch + 1, row, rows)
            if any([callback.should_stop(self, epoch + 1) for callback in self.callbacks]):
                break
        for callback in self.callbacks:
            callback.on_train_end(self)
        if self.is_chief:
            self.model.save(self.run.model_path)
        result = dict(rows[-1]) if rows else {}
        result.update(self.result_extras)
        result["weights_sha256"] = weights_digest(self.model.keras_model.weights)
        return result

    def _interrupted(self, signals, epoch, step_in_epoch, path):
        self.progress.message("")
        where = self.run.path if self.is_chief else "the chief's run directory"
        raise Interrupted(
            f"stopped by {signals.signal_name or 'a stop request from another worker'} at epoch {epoch + 1}, "
            f"step {step_in_epoch} of {self.steps_per_epoch}; checkpoint {os.path.basename(path)} saved in "
            f"{where}; continue with: tfvae fit --out {self.run.path} --resume"
        )

    def _means(self, sums, steps):
        n = max(1, steps * self.global_batch)
        return {k: v / n for k, v in sums.items()}

    def _show(self, steps, sums, seconds):
        means = self._means(sums, steps)
        rate = steps * self.global_batch / seconds if seconds > 0 else 0.0
        shown = shown_metrics(means)
        self.progress.update(steps, format_metrics(shown), f"{rate:,.0f} img/s")

    def _stop_non_finite(self, epoch, step):
        last = self.manager.latest_checkpoint
        kept = (f"the last good checkpoint ({os.path.basename(last)}, epoch {self._checkpoint_epoch(last)}) is kept"
                if last else "no checkpoint had been written yet")
        raise TrainingError(
            f"training stopped: the loss became NaN or infinite at epoch {epoch + 1}, step {step}; {kept} "
            f"in {self.run.checkpoint_dir}; lower --learning-rate (now {self.config.learning_rate:g}) and "
            "--resume, or check the data"
        )

    @staticmethod
    def _checkpoint_epoch(path):
        reader = tf.train.load_checkpoint(path)
        return int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))

    def _finish_epoch(self, epoch: int, sums: dict, seconds: float) -> dict:
        """The epoch's metrics row: train means, validation means (chief), the schedule's values."""
        steps = self.steps_per_epoch
        train = self._means(sums, steps)
        val = self.evaluate(self.val_x, self.val_y) if self.is_chief else {}
        rate = steps * self.global_batch / seconds if seconds > 0 else 0.0
        row = {"epoch": epoch, "step": int(self.step.numpy()), "seconds": round(seconds, 3),
               "images_per_sec": round(rate, 1)}
        row.update(train)
        row.update({f"val_{k}": v for k, v in val.items()})
        row.update({k: float(v) for k, v in self.model.schedule(self.step - 1, self.steps_per_epoch).items()})
        shown = shown_metrics(train)
        if val:
            shown.update(shown_metrics({k: v for k, v in val.items() if k in ("loss", "elbo")}, "val_"))
        self.progress.finish(steps, format_metrics(shown), f"{rate:,.0f} img/s")
        return row
