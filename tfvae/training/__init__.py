"""Training, in three parts a newcomer can find:

- `step.py`: the pure step (chunked, XLA-fused, replica-sliced) over any model family;
- `loop.py`: the `Trainer` (epochs, chunks, checkpoints, signals, NaN, lost workers);
- `callbacks.py`: the per-epoch outputs (TensorBoard, images, metrics.csv, early stopping, the checkpoint).

`build(config, splits, run)` makes the strategy, the model (its family from the registry), the
optimizer and the callbacks, and gives them to a `Trainer`.
"""

from __future__ import annotations

from typing import Optional

from tfvae.errors import ConfigError


def resolve_jit(config) -> bool:
    """XLA for the training step: `--jit on/off`, or (auto) what the family says suits it on this
    network and device."""
    from tfvae.strategy import has_gpu

    if config.jit != "auto":
        return config.jit == "on"
    return config.family.uses_xla(config.network, has_gpu())


def set_precision(config) -> str:
    """The Keras dtype policy for the run: mixed_float16 on GPUs, mixed_bfloat16 elsewhere (with
    --mixed-precision), float32 otherwise. Variables and the distribution heads stay float32."""
    import keras

    from tfvae.strategy import has_gpu

    policy = "float32"
    if config.mixed_precision:
        policy = "mixed_float16" if has_gpu() else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def default_callbacks(config) -> list:
    """The per-epoch outputs of a run, in order; the checkpoint last."""
    from tfvae.training.callbacks import Checkpoint, EarlyStopping, EpochImages, MetricsCSV, TensorBoard

    callbacks = [TensorBoard(), EpochImages(config.image_every, config.epochs), MetricsCSV()]
    if config.early_stopping:
        callbacks.append(EarlyStopping(config.early_stopping, config.family.warmup_epochs(config)))
    return callbacks + [Checkpoint()]


def build(config, splits, run, strategy=None, progress=None, callbacks: Optional[list] = None):
    """A `Trainer` for `config` on `splits` into `run`, with its model, optimizer and strategy.

    The initial weights follow from --seed; the batch must split evenly over the replicas.
    """
    import keras

    from tfvae import models
    from tfvae.optim import FusedAdam
    from tfvae.strategy import WorkerInfo, make_strategy, worker_info
    from tfvae.training.loop import Trainer, learning_rate_for

    policy = set_precision(config)
    strategy = strategy or make_strategy(config.strategy, config.worker_timeout)
    worker = worker_info() if config.strategy == "multiworker" else WorkerInfo()
    replicas = strategy.num_replicas_in_sync
    n = len(splits.train)
    if config.batch_size % replicas:
        raise ConfigError(f"--batch-size {config.batch_size} does not split evenly over {replicas} replicas; "
                          f"use a multiple of {replicas}")
    if n < config.batch_size:
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the {n} training images; "
                          f"use --batch-size {n} or less")
    keras.utils.set_random_seed(config.seed)  # the initial weights follow from the seed
    with strategy.scope():
        model = models.build(config, splits.image_shape)
        model.initialize(splits.train, config.seed, splits.train_labels)  # a resumed run's checkpoint then overwrites it
        optimizer = FusedAdam(learning_rate=learning_rate_for(config, 0), epsilon=config.adam_epsilon)
        if policy == "mixed_float16":  # float16 gradients need loss scaling; bfloat16 does not
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    return Trainer(config, splits, run, model=model, optimizer=optimizer, strategy=strategy, worker=worker,
                   jit=resolve_jit(config), policy=policy, progress=progress,
                   callbacks=default_callbacks(config) if callbacks is None else callbacks)


def __getattr__(name):  # the loop's names, imported with TensorFlow on first use
    if name in ("Trainer", "learning_rate_for", "weights_digest"):
        from tfvae.training import loop

        return getattr(loop, name)
    if name in ("EarlyStopping", "EarlyStoppingState"):
        from tfvae.training import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'tfvae.training' has no attribute {name!r}")
