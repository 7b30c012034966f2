"""The training loop: a custom step under tf.function and tf.distribute, checkpointed and resumable.

One training step (`_replica_step`) is a small pure function of (global batch, seed, KL weight):
every replica draws the same noise for the whole global batch from the step's seed and takes its
own slice of batch and noise, computes the loss scaled by the GLOBAL batch size, and the
optimizer sums the replicas' gradients. So N replicas compute exactly the gradients of one.

Steps run in chunks inside one tf.function (a tf.range loop), the gradient computation compiled
with XLA where that helps, with the training images held in memory. The order of examples in an
epoch and every random number are functions of (seed, epoch, step), so a run resumed from a
checkpoint, mid-epoch or not, ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfvae import images as img
from tfvae.errors import ConfigError, Interrupted, TrainingError
from tfvae.models import Autoencoder
from tfvae.optim import FusedAdam
from tfvae.progress import Progress, format_metrics
from tfvae.rundir import RunDir, atomic_write_bytes, atomic_write_text
from tfvae.runtime import report_epoch_end, report_startup
from tfvae.strategy import WorkerInfo, has_gpu, make_strategy, worker_info

EVAL_BATCH = 500
GRID_SAMPLES = 64
GRID_RECONSTRUCTIONS = 16
SHOWN = {"loss", "kl", "elbo", "reconstruction", "iwae_bound"}


def resolve_jit(config) -> bool:
    """XLA for the training step: on for MLPs; for convolutions only on GPUs (on CPUs XLA made
    the conv step many times slower); off for the contractive AE, whose Jacobian XLA spends
    minutes constant-folding."""
    if config.jit != "auto":
        return config.jit == "on"
    if config.model == "cae":
        return False
    return config.network == "mlp" or has_gpu()


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar, written with core TensorFlow (no tensorboard package needed)."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)


def set_precision(config) -> str:
    """The Keras dtype policy for the run: mixed_float16 on GPUs, mixed_bfloat16 elsewhere (with
    --mixed-precision), float32 otherwise. Variables and the distribution heads stay float32."""
    policy = "float32"
    if config.mixed_precision:
        policy = "mixed_float16" if has_gpu() else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


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


DISTRIBUTED_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                      tf.errors.CancelledError, tf.errors.InternalError)


def seeds_for(seed: int) -> dict:
    """Independent stateless seeds for each use of randomness in a run."""
    return {name: tf.constant([seed, i], tf.int64) for i, name in
            enumerate(("data_order", "step_noise", "validation", "images"), start=1)}


class EarlyStopping:
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


class Trainer:
    """Trains an `Autoencoder` on `Splits` into a run directory.

    Args:
      config: the run's Config.
      splits: the data (`tfvae.data.Splits`).
      run: the RunDir checkpoints, metrics and images go to.
      strategy: a tf.distribute strategy; from `config.strategy` when None.
      progress: a Progress bar (stderr) or None for silence.
    """

    def __init__(self, config, splits, run: RunDir, strategy=None, progress: Optional[Progress] = None):
        self.config = config
        self.splits = splits
        self.run = run
        self.progress = progress or Progress(enabled=False)
        self.policy = set_precision(config)
        self.strategy = strategy or make_strategy(config.strategy, config.worker_timeout)
        self.worker = worker_info() if config.strategy == "multiworker" else WorkerInfo()
        self.is_chief = self.worker.is_chief
        self.replicas = self.strategy.num_replicas_in_sync
        self.global_batch = config.batch_size
        n = len(splits.train)
        if self.global_batch % self.replicas:
            raise ConfigError(
                f"--batch-size {self.global_batch} does not split evenly over {self.replicas} replicas; "
                f"use a multiple of {self.replicas}"
            )
        if n < self.global_batch:
            raise ConfigError(
                f"--batch-size {self.global_batch} is larger than the {n} training images; "
                f"use --batch-size {n} or less"
            )
        self.steps_per_epoch = n // self.global_batch
        self.jit = resolve_jit(config)
        self.seeds = seeds_for(config.seed)
        self.metric_names = None

        keras.utils.set_random_seed(config.seed)  # the initial weights follow from the seed
        with self.strategy.scope():
            self.model = Autoencoder(config, splits.image_shape)
            self.optimizer = FusedAdam(learning_rate=learning_rate_for(config, 0), epsilon=config.adam_epsilon)
            if self.policy == "mixed_float16":  # float16 gradients need loss scaling; bfloat16 does not
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.metric_names = self.model.metric_names
        # Partial sums of the current epoch's metrics, so a mid-epoch resume reports the same row.
        self.epoch_sums = tf.Variable(tf.zeros([len(self.metric_names)], tf.float64), trainable=False,
                                      name="epoch_sums")
        self.epoch_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch_seconds")
        self.stop_flag = tf.Variable(0.0, trainable=False, name="stop_requested")  # set by SIGINT/SIGTERM
        self.checkpoint = tf.train.Checkpoint(
            encoder=self.model.encoder, decoder=self.model.decoder, optimizer=self.optimizer,
            step=self.step, epoch=self.epoch, epoch_sums=self.epoch_sums, epoch_seconds=self.epoch_seconds,
        )
        # Every worker saves (saving is collective); only the chief's copy is kept, in the run directory.
        self._scratch = None if self.is_chief else tempfile.mkdtemp(prefix=f"tfvae-worker{self.worker.index}-")
        self._manager = None
        device = "/GPU:0" if (has_gpu() and self.replicas == 1) else "/CPU:0"
        with tf.device(device):  # 8-bit images stay 8-bit here; a batch is converted when gathered
            self.train_x = tf.identity(tf.convert_to_tensor(splits.train))
        self.val_x = tf.convert_to_tensor(splits.validation, tf.float32)
        self._grads_fn = tf.function(self._grads, jit_compile=self.jit)
        self._update_fn = tf.function(self._fused_update, jit_compile=self.jit)
        self._train_chunk = tf.function(self._train_chunk_py)
        self._eval_fn = tf.function(self._eval_batch, reduce_retracing=True)
        self._writer = None

    # ------------------------------------------------------------------ the step
    def kl_weight(self, step):
        """beta, ramped up linearly over --kl-warmup epochs (VAE only)."""
        cfg = self.config
        if cfg.model != "vae":
            return tf.constant(1.0)
        if cfg.kl_warmup == 0:
            return tf.constant(cfg.beta, tf.float32)
        ramp_steps = float(cfg.kl_warmup * self.steps_per_epoch)
        progress = tf.cast(step + 1, tf.float32) / ramp_steps
        return cfg.beta * tf.minimum(1.0, progress)

    def _grads(self, x, noise, kl_weight):
        """Gradients of the loss scaled by the GLOBAL batch, and the metric sums (a vector)."""
        with tf.GradientTape() as tape:
            loss, metrics = self.model.objective(x, noise, kl_weight)
            scaled = tf.nn.compute_average_loss(loss, global_batch_size=self.global_batch)
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                scaled = self.optimizer.scale_loss(scaled)  # apply_gradients unscales
        grads = tape.gradient(scaled, self.model.trainable_variables)
        return grads, tf.stack([tf.reduce_sum(metrics[k]) for k in self.metric_names])

    def _my_slice(self, tensors):
        """This replica's slice (along the batch axis) of tensors made for the whole global batch."""
        if self.replicas == 1:
            return tensors
        per = self.global_batch // self.replicas
        start = tf.distribute.get_replica_context().replica_id_in_sync_group * per
        return tf.nest.map_structure(lambda t: t[start:start + per], tensors)

    @staticmethod
    def _gather(images, idx):
        """A batch of images as float32 in [0, 1] (the training set may be held as uint8)."""
        x = tf.gather(images, idx)
        if x.dtype == tf.uint8:
            return tf.cast(x, tf.float32) * (1.0 / 255.0)
        return x

    def _fused_update(self, images, idx, noise, kl_weight):
        """One device: gather the batch, gradients and the Adam update in one compiled launch."""
        grads, sums = self._grads(self._gather(images, idx), noise, kl_weight)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return sums

    def _replica_step(self, idx, seed, kl_weight):
        """One training step on this replica: idx are the global batch's example indices.

        Returns the metric sums with this worker's stop request appended, for the all-reduce.
        """
        idx, noise = self._my_slice((idx, self.model.draw_noise(self.global_batch, seed)))
        if self.replicas == 1:
            sums = self._update_fn(self.train_x, idx, noise, kl_weight)
        else:  # several replicas: gather next to the data (host memory), compute on the replica's device
            with tf.device(self.train_x.device):
                x = self._gather(self.train_x, idx)
            grads, sums = self._grads_fn(x, noise, kl_weight)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return tf.concat([sums, [tf.identity(self.stop_flag)]], axis=0)

    def gradients(self, x, seed):
        """(loss, gradients) of one global batch of images, summed over the replicas; nothing is
        updated. The loss is the mean over the global batch, as the optimizer sees it."""
        from tfvae.data import as_float

        x = tf.convert_to_tensor(as_float(x))
        seed = tf.convert_to_tensor(seed, tf.int64)
        loss_index = self.metric_names.index("loss")

        def replica_fn(x, seed):
            x, noise = self._my_slice((x, self.model.draw_noise(self.global_batch, seed)))
            grads, sums = self._grads_fn(x, noise, self.kl_weight(self.step))
            return sums[loss_index] / self.global_batch, grads

        @tf.function
        def run(x, seed):
            loss, grads = self.strategy.run(replica_fn, args=(x, seed))
            reduce = lambda t: self.strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None)  # noqa: E731
            return reduce(loss), [reduce(g) for g in grads]

        loss, grads = run(x, seed)
        return float(loss), [g.numpy() for g in grads]

    def _train_chunk_py(self, order, first, count):
        """Runs `count` steps from step `first` of the epoch whose example order is `order`.

        Returns (metric sums, steps done, finite, stopped). It stops before counting a step whose
        loss is not finite, and after the step at which any worker was asked to stop (SIGINT or
        SIGTERM): every worker sees the same all-reduced request, so all stop at the same step.
        """
        b = self.global_batch
        n = len(self.metric_names)
        sums = tf.zeros([n])
        done = tf.constant(0)
        finite = tf.constant(True)
        stopped = tf.constant(False)
        loss_index = self.metric_names.index("loss")
        for i in tf.range(count):
            s = first + i
            seed = tf.random.experimental.stateless_fold_in(self.seeds["step_noise"], self.step)
            per_replica = self.strategy.run(self._replica_step,
                                            args=(order[s * b:(s + 1) * b], seed, self.kl_weight(self.step)))
            reduced = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            if not tf.math.is_finite(reduced[loss_index]):
                finite = tf.constant(False)
                break
            self.step.assign_add(1)
            sums += reduced[:n]
            done += 1
            if reduced[n] > 0:
                stopped = tf.constant(True)
                break
        return sums, done, finite, stopped

    def _eval_batch(self, x, seed):
        noise = self.model.draw_noise(tf.shape(x)[0], seed)
        noise.pop("binarize", None)  # evaluation sets are binarized once, with a fixed seed
        _, metrics = self.model.objective(x, noise, self.config.beta if self.config.model == "vae" else 1.0)
        return {k: tf.reduce_sum(metrics[k]) for k in self.metric_names}

    def evaluate(self, x) -> dict:
        """Mean metrics over images `x` with fixed noise (deterministic from epoch to epoch)."""
        n = int(x.shape[0])
        if n == 0:
            return {}
        totals = {k: 0.0 for k in self.metric_names}
        for i, start in enumerate(range(0, n, EVAL_BATCH)):
            seed = tf.random.experimental.stateless_fold_in(self.seeds["validation"], i)
            sums = self._eval_fn(x[start:start + EVAL_BATCH], seed)
            for k in totals:
                totals[k] += float(sums[k])
        return {k: v / n for k, v in totals.items()}

    # ------------------------------------------------------------------ the loop
    def order_for_epoch(self, epoch: int):
        seed = tf.random.experimental.stateless_fold_in(self.seeds["data_order"], epoch)
        return tf.argsort(tf.random.stateless_uniform([len(self.splits.train)], seed))

    def restore(self, directory: Optional[str] = None) -> bool:
        """Restores the latest checkpoint of the run (every worker reads the chief's); False when
        there is none."""
        path = tf.train.latest_checkpoint(directory or self.run.checkpoint_dir)
        if not path:
            return False
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return True

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """Created at first use, once the run directory exists (with --overwrite: the new one)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self._scratch or self.run.checkpoint_dir, max_to_keep=2, step_counter=self.step,
                checkpoint_name="ckpt")
        return self._manager

    def save_checkpoint(self) -> str:
        return self.manager.save(checkpoint_number=self.step)

    def cleanup(self) -> None:
        """Removes a non-chief worker's scratch checkpoints."""
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def steps_per_call(self) -> int:
        if self.config.steps_per_call:
            return self.config.steps_per_call
        return max(1, min(100, math.ceil(self.steps_per_epoch / 20)))

    def train(self) -> dict:
        """Trains up to config.epochs; returns the last metrics row (and the weights' digest).

        SIGINT/SIGTERM save a checkpoint at the next step and raise Interrupted; a checkpoint is
        also saved every --checkpoint-every steps and at the end of each epoch.
        """
        try:
            with _StopOnSignals(self.stop_flag) as signals:
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
        if self.is_chief:
            self.run.write_metrics(rows)
        chunk = self.steps_per_call()
        every = cfg.checkpoint_every
        first_call = True
        held = self.best_info()
        stopper = (EarlyStopping(cfg.early_stopping, cfg.kl_warmup, rows, held["epoch"], held["val_loss"])
                   if cfg.early_stopping else None)
        while int(self.epoch.numpy()) < cfg.epochs:
            epoch = int(self.epoch.numpy())
            if stopper is not None and stopper.should_stop(epoch):  # a resumed run that had stopped
                self.progress.message(stopper.explain(epoch))
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
                chunk_sums, done, finite, stopped = self._train_chunk(order, tf.constant(s), tf.constant(count))
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
            if self.is_chief:
                self.run.write_metrics(rows)  # metrics first: a crash before the checkpoint repeats the epoch
            if stopper is not None and stopper.update(epoch + 1, row.get("val_loss")):
                self.save_best_weights(epoch + 1, stopper.best_loss)
            self.epoch_sums.assign(tf.zeros_like(self.epoch_sums))
            self.epoch_seconds.assign(0.0)
            self.save_checkpoint()
            report_epoch_end(epoch + 1)
            if stopper is not None and stopper.should_stop(epoch + 1):
                self.progress.message(stopper.explain(epoch + 1))
                break
        if stopper is not None:
            last = int(self.epoch.numpy())
            held = self.best_info()
            if stopper.best_epoch and stopper.best_epoch == held["epoch"] and held["intact"]:
                self.model.keras_model.load_weights(self.run.best_weights_path)  # model.keras: the best epoch
                self.progress.message(f"model.keras holds epoch {stopper.best_epoch}'s weights, the best "
                                      f"validation loss ({stopper.best_loss:.2f})")
            elif last:
                self.progress.message(f"model.keras holds the last epoch's weights (epoch {last}): "
                                      + ("no epoch had a finite validation loss" if not stopper.best_epoch else
                                         f"best.weights.h5 does not hold epoch {stopper.best_epoch}'s; "
                                         "resume with a larger --epochs to train it again"))
        if self.is_chief:
            self.model.save(self.run.model_path)
            if self._writer is not None:
                self._writer.flush()
        result = dict(rows[-1]) if rows else {}
        if stopper is not None:
            result["best_epoch"] = stopper.best_epoch
        result["weights_sha256"] = weights_digest(self.model.keras_model.weights)
        return result

    def save_best_weights(self, epoch: int, loss: float) -> None:
        """The current weights as the best so far. best.json (epoch, exact loss, the weights' SHA-256)
        is written first, then best.weights.h5, each atomically: after a crash between the two,
        best.json names an epoch later than the checkpoint's (the resumed run repeats it) and the
        digest shows that the weights file is not that epoch's."""
        path = self.run.best_weights_path
        tmp = os.path.join(os.path.dirname(path), f".best-{os.getpid()}.weights.h5")
        try:
            self.model.keras_model.save_weights(tmp)
            with open(tmp, "rb") as f:
                data = f.read()
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        digest = hashlib.sha256(data).hexdigest()
        atomic_write_text(self.run.best_info_path,
                          json.dumps({"epoch": epoch, "val_loss": loss, "sha256": digest}) + "\n")
        atomic_write_bytes(path, data)

    def best_info(self) -> dict:
        """best.json: the epoch (0: none), its exact validation loss, and whether best.weights.h5
        is intact (its SHA-256 is the one best.json names)."""
        try:
            with open(self.run.best_info_path, encoding="utf-8") as f:
                info = json.load(f)
            epoch, loss = int(info["epoch"]), float(info["val_loss"])
            with open(self.run.best_weights_path, "rb") as f:
                data = f.read()
        except (OSError, ValueError, KeyError, TypeError):
            return {"epoch": 0, "val_loss": None, "intact": False}
        intact = "sha256" not in info or hashlib.sha256(data).hexdigest() == info["sha256"]
        return {"epoch": epoch, "val_loss": loss, "intact": intact}

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
        shown = {k: v for k, v in means.items() if k in SHOWN}
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
        steps = self.steps_per_epoch
        train = self._means(sums, steps)
        val = self.evaluate(self.val_x) if self.is_chief else {}
        rate = steps * self.global_batch / seconds if seconds > 0 else 0.0
        row = {"epoch": epoch, "step": int(self.step.numpy()), "seconds": round(seconds, 3), "images_per_sec": round(rate, 1)}
        row.update({k: v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        if self.config.model == "vae":
            row["kl_weight"] = float(self.kl_weight(self.step - 1))
        shown = {k: v for k, v in train.items() if k in SHOWN}
        if val:
            shown.update({f"val_{k}": v for k, v in val.items() if k in ("loss", "elbo")})
        self.progress.finish(steps, format_metrics(shown), f"{rate:,.0f} img/s")
        if self.is_chief:
            self._summaries(epoch, train, val)
            if epoch % self.config.image_every == 0 or epoch == self.config.epochs:
                self.write_epoch_image(epoch)
        return row

    def _summaries(self, epoch, train, val):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.run.tensorboard_dir)
        with self._writer.as_default(step=epoch):
            for k, v in train.items():
                write_scalar(f"train/{k}", v, epoch)
            for k, v in val.items():
                write_scalar(f"validation/{k}", v, epoch)

    def epoch_image(self) -> np.ndarray:
        """Prior samples (variational models) or originals above reconstructions (autoencoders)."""
        if self.model.variational:
            return img.grid(self.model.sample(GRID_SAMPLES, self.seeds["images"]).numpy())
        source = self.splits.validation if len(self.splits.validation) else self.splits.test
        x = tf.convert_to_tensor(source[:GRID_RECONSTRUCTIONS], tf.float32)
        return img.rows_grid([x.numpy(), self.model.reconstruct(x).numpy()])

    def write_epoch_image(self, epoch: int) -> str:
        path = os.path.join(self.run.images_dir, f"epoch_{epoch:04d}.png")
        img.write_png(path, self.epoch_image())
        return path
