"""Process-level set-up for the command line: TensorFlow imported without its start-up chatter."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time

_done = False


def import_tensorflow_quietly(strategy: str = "auto", worker_timeout: float = 60.0) -> None:
    """Imports TensorFlow, TFP and Keras and initialises the devices with stderr captured.

    TensorFlow's C++ start-up messages (oneDNN notes, "could not find cuda drivers", ...) are
    printed before its log level applies. They are dropped unless the import fails, in which
    case they are printed as they came. `TFVAE_VERBOSE=1` keeps them. A multi-worker strategy is
    created here, since it must exist before TensorFlow's first operation.
    """
    global _done
    if _done:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfvae.strategy import configure_devices, prepare_strategy

    with captured_output(stdout=False):
        import tensorflow as tf
        import tensorflow_probability  # noqa: F401
        import keras  # noqa: F401

        prepare_strategy(strategy, worker_timeout)
        configure_devices()
        tf.config.list_logical_devices()
    _done = True
    mark("TensorFlow imported")
    for name in ("absl", "tensorflow", "tensorflow_datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    tf.get_logger().setLevel(logging.ERROR)


class captured_output:
    """Captures what C++ code writes to the process's stderr (and stdout): file descriptors 2 (1).

    TensorFlow's start-up, the TFLite converter and the LiteRT interpreter print notes there. On an
    exception (other than a TfvaeError) the captured text is written back, so nothing that
    explains a failure is lost. `TFVAE_VERBOSE=1` captures nothing.
    """

    def __init__(self, stdout: bool = True):
        self.fds = (1, 2) if stdout else (2,)

    def __enter__(self):
        self.verbose = bool(os.environ.get("TFVAE_VERBOSE"))
        if self.verbose:
            return self
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(fd) for fd in self.fds]
        self.file = tempfile.TemporaryFile()
        for fd in self.fds:
            os.dup2(self.file.fileno(), fd)
        return self

    def __exit__(self, kind, value, tb):
        if self.verbose:
            return False
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip(self.fds, self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        if kind is not None:
            from tfvae.errors import TfvaeError

            if not issubclass(kind, TfvaeError):
                self.file.seek(0)
                sys.stderr.write(self.file.read().decode("utf-8", "replace"))
        self.file.close()
        return False


# ---------------------------------------------------------------------------------- start-up time
_marks = []


def process_age() -> float:
    """Seconds since this process started (Linux /proc; else since tfvae.runtime was imported)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def mark(name: str) -> None:
    """Records a start-up milestone; with TFVAE_TIMINGS=1 the trainer prints them at its first step."""
    _marks.append((name, process_age()))


def report_startup(stream=None) -> None:
    if not os.environ.get("TFVAE_TIMINGS"):
        return
    mark("first training step done")
    parts = ", ".join(f"{name} {t:.2f} s" for name, t in _marks)
    print(f"timings (seconds since the process started): {parts}", file=stream or sys.stderr, flush=True)


def report_epoch_end(epoch: int, stream=None) -> None:
    """With TFVAE_TIMINGS=1, prints when an epoch's checkpoint is saved: the differences between
    these are whole epochs as a user waits for them (data order, steps, validation, metrics, checkpoint)."""
    if os.environ.get("TFVAE_TIMINGS"):
        print(f"timings: epoch {epoch} saved at {process_age():.3f} s", file=stream or sys.stderr, flush=True)


_IMPORTED = time.perf_counter()
