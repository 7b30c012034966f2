"""The one exception type users see: a one-line message that names the problem and the fix."""


class TfvaeError(Exception):
    """A problem the user can fix: bad input, a missing file, an unreachable download.

    The message is one line: what is wrong, then what to do about it. The command line
    prints it as `Error: <message>` with a non-zero exit status and no traceback.
    """

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(TfvaeError):
    """An option value that cannot work (a non-positive size, an unknown model name, ...)."""

    exit_code = 2


class DataError(TfvaeError):
    """A dataset that cannot be read: missing, corrupt or truncated files, NaN pixels, ..."""


class NetworkError(TfvaeError):
    """A download that cannot happen because the network is unreachable."""


class RunDirError(TfvaeError):
    """A run directory that cannot be used as asked (exists, another config, unwritable)."""


class TrainingError(TfvaeError):
    """Training stopped: a non-finite loss, for instance."""


class Interrupted(TfvaeError):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint; --resume continues it."""

    exit_code = 75  # EX_TEMPFAIL: try again (a scheduler can requeue the job with --resume)
