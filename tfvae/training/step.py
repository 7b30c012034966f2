"""The training step: a small pure function of (global batch, seed, schedule), chunked and distributed.

Every replica draws the same noise for the whole global batch from the step's seed and takes its
own slice of batch and noise, computes the family's loss scaled by the GLOBAL batch size, and the
optimizer sums the replicas' gradients: N replicas compute exactly the gradients of one device.

Steps run in chunks inside one tf.function (a tf.range loop) over the training images held in
memory. On one device, with XLA on, a step's gather, gradients and Adam update are one compiled
launch; its random numbers are drawn just before it by TensorFlow's kernels (XLA's CPU generator
is slow). The step knows no family: it asks the model for `draw_noise`, `schedule` and `loss`.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def seeds_for(seed: int) -> dict:
    """Independent stateless seeds for each use of randomness in a run."""
    return {name: tf.constant([seed, i], tf.int64) for i, name in
            enumerate(("data_order", "step_noise", "validation", "images"), start=1)}


def gather(images, idx):
    """A batch of images as float32 in [0, 1] (the training set may be held as uint8)."""
    x = tf.gather(images, idx)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) * (1.0 / 255.0)
    return x


class TrainStep:
    """`chunk(order, first, count)` runs `count` steps of an epoch whose example order is `order`.

    Args:
      model: a model family instance (tfvae.models).
      optimizer: a built Keras optimizer over `model.trainable_variables`.
      strategy: the tf.distribute strategy the variables were made under.
      train_x: the training images, a tensor (uint8 or float32).
      global_batch: images per step, over all replicas.
      steps_per_epoch: for the family's schedule (e.g. a KL warm-up in epochs).
      step: the global step counter (a tf.Variable), advanced once per step done.
      seed: the stateless seed of every step's noise; step s uses fold_in(seed, s).
      jit: compile the gradient and update with XLA.
      train_y: the training labels (int32), gathered with the images, for a conditional model.
    """

    def __init__(self, model, optimizer, strategy, train_x, global_batch: int, steps_per_epoch: int, step,
                 seed, jit: bool, train_y=None):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.train_x = train_x
        self.train_y = train_y
        self.global_batch = global_batch
        self.steps_per_epoch = steps_per_epoch
        self.step = step
        self.seed = seed
        self.replicas = strategy.num_replicas_in_sync
        self.metric_names = tuple(model.metric_names)
        self.stop_flag = tf.Variable(0.0, trainable=False, name="stop_requested")  # set by SIGINT/SIGTERM
        self._grads_fn = tf.function(self._grads, jit_compile=jit)
        self._update_fn = tf.function(self._fused_update, jit_compile=jit)
        self.chunk = tf.function(self._chunk)

    # ------------------------------------------------------------------ one step
    def _grads(self, x, noise, schedule, y=None):
        """Gradients of the loss scaled by the GLOBAL batch, and the metric sums (a vector); y:
        the batch's labels for a conditional model."""
        with tf.GradientTape() as tape:
            loss, metrics = self.model.given(y).loss(x, noise, schedule)  # given(None): the model itself
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

    def _fused_update(self, images, idx, noise, schedule, labels=None):
        """One device: gather the batch, gradients and the Adam update in one compiled launch."""
        y = tf.gather(labels, idx) if labels is not None else None
        grads, sums = self._grads(gather(images, idx), noise, schedule, y)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return sums

    def _replica_step(self, idx, seed, schedule):
        """One training step on this replica: idx are the global batch's example indices.

        Returns the metric sums with this worker's stop request appended, for the all-reduce.
        """
        idx, noise = self._my_slice((idx, self.model.draw_noise(self.global_batch, seed)))
        if self.replicas == 1:
            sums = self._update_fn(self.train_x, idx, noise, schedule, self.train_y)
        else:  # several replicas: gather next to the data (host memory), compute on the replica's device
            with tf.device(self.train_x.device):
                x = gather(self.train_x, idx)
                y = tf.gather(self.train_y, idx) if self.train_y is not None else None
            grads, sums = self._grads_fn(x, noise, schedule, y)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return tf.concat([sums, [tf.identity(self.stop_flag)]], axis=0)

    # ------------------------------------------------------------------ a chunk of steps
    def _chunk(self, order, first, count):
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
            seed = tf.random.experimental.stateless_fold_in(self.seed, self.step)
            schedule = self.model.schedule(self.step, self.steps_per_epoch)
            per_replica = self.strategy.run(self._replica_step, args=(order[s * b:(s + 1) * b], seed, schedule))
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

    # ------------------------------------------------------------------ gradients without an update
    def gradients(self, x, seed, y=None):
        """(loss, gradients) of one global batch of images (and labels y, a conditional model),
        summed over the replicas; nothing is updated. The loss is the mean over the global batch,
        as the optimizer sees it."""
        from tfvae.data import as_float

        x = tf.convert_to_tensor(as_float(x))
        seed = tf.convert_to_tensor(seed, tf.int64)
        y = None if y is None else tf.convert_to_tensor(y, tf.int32)
        loss_index = self.metric_names.index("loss")

        def replica_fn(x, seed, y):
            x, noise = self._my_slice((x, self.model.draw_noise(self.global_batch, seed)))
            y = None if y is None else self._my_slice(y)
            grads, sums = self._grads_fn(x, noise, self.model.schedule(self.step, self.steps_per_epoch), y)
            return sums[loss_index] / self.global_batch, grads

        @tf.function
        def run(x, seed, y):
            loss, grads = self.strategy.run(replica_fn, args=(x, seed, y))
            reduce = lambda t: self.strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None)  # noqa: E731
            return reduce(loss), [reduce(g) for g in grads]

        loss, grads = run(x, seed, y)
        return float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]  # a gathered prior: IndexedSlices
