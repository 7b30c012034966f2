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


class SystemFailure(TfvaeError):
    """The operating system refused a read or a write: a full disk, a read-only filesystem, a
    permission, a folder that vanished. Made by `system_failure` from an OSError or from
    TensorFlow's, h5py's or zipfile's wrapping of one."""


# (errno, words the system uses for it, what it is, what to do about it)
_FAILURES = (
    (28, "No space left on device", "the disk is full", "free some space, then run the command again"),
    (122, "Disk quota exceeded", "the disk quota is exceeded", "free some space, then run the command again"),
    (30, "Read-only file system", "the filesystem is read-only", "write somewhere else (-o/--out)"),
    (13, "Permission denied", "permission denied", "fix the permissions, or choose another path (-o/--out)"),
    (1, "Operation not permitted", "operation not permitted",
     "fix the permissions, or choose another path (-o/--out)"),
    (2, "No such file or directory", "no such file or directory",
     "check the path (a folder on the way may have been moved or deleted)"),
    (20, "Not a directory", "a file is in the way of a folder", "choose another path"),
    (21, "Is a directory", "a folder is in the way of a file", "choose another path"),
    (5, "Input/output error", "the disk reported an input/output error", "check the disk, then try again"),
)


def _wraps_os_errors(e: BaseException) -> bool:
    """TensorFlow's errors (tf.errors.OpError) and h5py's carry the system's failure in their text."""
    import sys

    tf = sys.modules.get("tensorflow")
    return bool(tf is not None and isinstance(e, tf.errors.OpError)) or type(e).__module__.startswith("h5py")


def _first_line(text: str, limit: int = 160) -> str:
    return (str(text).strip().splitlines() or [""])[0][:limit]


def _known_failure(e: BaseException):
    """The _FAILURES row that `e` is (by its errno, or by the system's words in its text), or None."""
    errno_ = getattr(e, "errno", None)
    text = str(getattr(e, "message", None) or e)
    for row in _FAILURES:
        number, words = row[0], row[1]
        if errno_ == number or words.lower() in text.lower() or f"errno = {number}," in text:
            return row
    return None


def failure_reason(e: BaseException) -> str:
    """What went wrong, in a few words: "the disk is full", "the filesystem is read-only", ..., or
    the error's first line without TensorFlow's {{function_node ...}} prefix."""
    import re

    row = _known_failure(e)
    if row is not None:
        return row[2]
    text = str(getattr(e, "message", None) or e)
    return _first_line(re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)) or type(e).__name__


def system_failure(e: BaseException, resume_hint: str = "") -> "SystemFailure | None":
    """A one-line SystemFailure for an operating-system failure, however it is wrapped (OSError,
    TensorFlow's ResourceExhausted/PermissionDenied/FailedPrecondition/Unknown errors, h5py's
    OSError with the errno in its text); None when `e` is not one. `resume_hint` replaces the
    generic fix (e.g. "the checkpoints are intact: free space and continue with --resume")."""
    if isinstance(e, TfvaeError) or not (isinstance(e, OSError) or _wraps_os_errors(e)):
        return None
    text = str(getattr(e, "message", None) or e)
    row = _known_failure(e)
    if row is not None:
        _, _, what, fix = row
        path = getattr(e, "filename", None)
        if not path:  # TensorFlow and h5py name the file in their text
            import re

            found = re.search(r"(?:name = '|file |path |: )(/[^\s',;]+)", text)
            path = found.group(1) if found else None
        where = f" ({path})" if path else ""
        return SystemFailure(f"{what}{where}; {resume_hint or fix}")
    if isinstance(e, OSError):
        path = f" ({e.filename})" if getattr(e, "filename", None) else ""
        return SystemFailure(f"{e.strerror or _first_line(e) or type(e).__name__}{path}")
    return None
