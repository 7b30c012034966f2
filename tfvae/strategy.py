"""Choosing the tf.distribute strategy, and the devices it runs on.

  auto       MirroredStrategy over all visible GPUs when there are several, else the default
  default    one device (the first GPU, or the CPU)
  mirrored   MirroredStrategy over all visible GPUs; without GPUs, over the logical CPU devices

`TFVAE_CPU_DEVICES=N` splits the CPU into N logical devices before TensorFlow starts, so
`--strategy mirrored` can be tried, and tested, on a machine without GPUs.
"""

from __future__ import annotations

import os

from tfvae.errors import ConfigError

ENV_CPU_DEVICES = "TFVAE_CPU_DEVICES"


def configure_devices() -> None:
    """Applies TFVAE_CPU_DEVICES (once, before any TensorFlow op has run)."""
    value = os.environ.get(ENV_CPU_DEVICES)
    if not value:
        return
    import tensorflow as tf

    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{ENV_CPU_DEVICES} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"{ENV_CPU_DEVICES} must be a positive integer, got {value!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        raise ConfigError(
            f"{ENV_CPU_DEVICES}={n} came too late: TensorFlow had already started; set it before "
            "the first TensorFlow operation of the process"
        ) from None


def make_strategy(name: str):
    import tensorflow as tf

    configure_devices()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    raise ConfigError(f"unknown --strategy {name!r}: choose auto, default or mirrored")


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
