"""Choosing the tf.distribute strategy, and the devices it runs on.

  auto         MirroredStrategy over all visible GPUs when there are several, else the default
  default      one device (the first GPU, or the CPU)
  mirrored     MirroredStrategy over all visible GPUs; without GPUs, over the logical CPU devices
  multiworker  MultiWorkerMirroredStrategy over the cluster that TF_CONFIG describes

`TFVAE_CPU_DEVICES=N` splits the CPU into N logical devices before TensorFlow starts, so
`--strategy mirrored` can be tried, and tested, on a machine without GPUs.

MultiWorkerMirroredStrategy must exist before TensorFlow runs its first operation, so
`prepare_strategy` is called first thing by the command line; `make_strategy` returns it later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from tfvae.errors import ConfigError

ENV_CPU_DEVICES = "TFVAE_CPU_DEVICES"
DEFAULT_WORKER_TIMEOUT = 60.0

_multiworker = None  # the MultiWorkerMirroredStrategy of this process, once created


@dataclass(frozen=True)
class WorkerInfo:
    """Where this process sits in a multi-worker cluster (one worker, the chief, when alone)."""

    index: int = 0
    count: int = 1
    is_chief: bool = True
    task_type: str = "worker"


def worker_info() -> WorkerInfo:
    """This process's task, from TF_CONFIG (the standard variable); a lone chief without it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return WorkerInfo()
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        kind, index = task["type"], int(task["index"])
        workers = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"TF_CONFIG is not valid ({type(e).__name__}: {e}); it must be JSON like "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if kind not in ("chief", "worker"):
        raise ConfigError(f"TF_CONFIG task type {kind!r}: tfvae runs 'chief' and 'worker' tasks only")
    has_chief = bool(cluster.get("chief"))
    count = len(cluster.get(kind, []))
    if not 0 <= index < count:
        raise ConfigError(f"TF_CONFIG task index {index} is out of range: the cluster lists {count} {kind} "
                          f"address(es), so the index must be 0 to {count - 1}")
    is_chief = kind == "chief" or (not has_chief and index == 0)
    position = index if kind == "chief" else index + (1 if has_chief else 0)
    return WorkerInfo(position, len(workers), is_chief, kind)


def prepare_strategy(name: str, timeout: float = DEFAULT_WORKER_TIMEOUT) -> None:
    """Creates the MultiWorkerMirroredStrategy now, before any TensorFlow operation, if asked for."""
    global _multiworker
    if name != "multiworker" or _multiworker is not None:
        return
    if not os.environ.get("TF_CONFIG"):
        raise ConfigError(
            "--strategy multiworker reads the cluster from TF_CONFIG, which is not set; set it on every "
            "worker (see the README), or try it on this machine with --local-workers N"
        )
    worker_info()  # validates TF_CONFIG
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=float(timeout))
    try:
        _multiworker = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as e:
        if "program startup" in str(e):
            raise ConfigError(
                "--strategy multiworker must be set up before TensorFlow runs any operation; start a fresh "
                "process (from Python: call tfvae.strategy.prepare_strategy('multiworker') first)"
            ) from None
        raise


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


def make_strategy(name: str, worker_timeout: float = DEFAULT_WORKER_TIMEOUT):
    import tensorflow as tf

    if name == "multiworker":
        prepare_strategy(name, worker_timeout)
        return _multiworker
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
    raise ConfigError(f"unknown --strategy {name!r}: choose auto, default, mirrored or multiworker")


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
