"""The run directory: everything a training run leaves behind, written so nothing is ever half-written.

  RUN/config.json      the Config, plus image_shape, class_names, tfvae_version
  RUN/metrics.csv      one row per epoch (train and validation metrics, seconds, images/s)
  RUN/checkpoints/     tf.train.CheckpointManager: model, optimizer, step, epoch
  RUN/tb/              TensorBoard event files
  RUN/images/          a PNG grid per epoch: prior samples (VAEs) or reconstructions (AEs)
  RUN/model.keras      the final model (with --early-stopping: the best epoch's weights)
  RUN/best.weights.h5  with --early-stopping: the weights of the best epoch so far
  RUN/best.json        their epoch, exact validation loss and SHA-256 (written before them)

While `tfvae fit` writes a run, it holds an advisory lock on `.RUN.lock` beside the run
directory (in its parent, so the run directory holds only the run's files): a second writer is
refused, naming the holder's process and host; the operating system drops the lock when its
process ends, however it ends (kill -9 included), so a stale file never blocks a resume. The
holder removes the file when it is done.

Small files are replaced atomically (a temporary file in the same folder, fsync, rename);
checkpoints are atomic by TensorFlow's own design (data files first, then the index file that
names them).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from typing import Optional

from tfvae.config import Config, make_config
from tfvae.errors import RunDirError, _first_line, system_failure

CONFIG = "config.json"
METRICS = "metrics.csv"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tb"
IMAGES = "images"
MODEL = "model.keras"
BEST_WEIGHTS = "best.weights.h5"
BEST_INFO = "best.json"
META_KEYS = ("image_shape", "class_names", "tfvae_version", "prior_of")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` so that readers see the old file or the new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)  # an output folder named on the command line
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes it private; results are not
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def nearest_existing(path: str) -> str:
    """The path itself, or its closest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def first_missing(path: str) -> Optional[str]:
    """The highest folder on the way to `path` that does not exist yet (the one `os.makedirs`
    would create first); None when `path` exists."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        return None
    while not os.path.exists(os.path.dirname(path)):
        path = os.path.dirname(path)
    return path


def remove_if_empty(top: Optional[str]) -> None:
    """Removes `top` (a folder this process created) when no file was written under it: a
    command that failed leaves no empty folders behind."""
    if top and os.path.isdir(top) and not any(files for _, _, files in os.walk(top)):
        shutil.rmtree(top, ignore_errors=True)


def shown_path(path: str) -> str:
    """A path as the user would type it: relative to the working folder when under it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def why_not_creatable(path: str) -> Optional[str]:
    """Why a file or folder could not be created at path (its nearest existing ancestor is a
    file, or is not writable), or None if it could."""
    parent = nearest_existing(path)
    if not os.path.isdir(parent):
        return f"{parent} is a file, not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        try:
            if os.statvfs(parent).f_flag & os.ST_RDONLY:
                return f"{parent} is on a read-only filesystem"
        except OSError:
            pass
        return f"{parent} is not writable (permission denied)"
    return None


def _os_error(action: str, path: str, e: OSError) -> RunDirError:
    reason = e.strerror or str(e)
    return RunDirError(f"cannot {action} {path}: {reason}; choose a writable --out")


def checkpoint_number(path: str) -> int:
    """The step a checkpoint was saved at, from its name (ckpt-1144 or ckpt-1144.index); -1 if none."""
    import re

    match = re.search(r"ckpt-(\d+)(?:\.index)?$", os.path.basename(path))
    return int(match.group(1)) if match else -1


class RunLock:
    """The one-writer lock of a run directory: `flock` on `.NAME.lock` in its parent folder.

    The file holds the holder's process id, host and start time (for the refusal's message); the
    lock itself is the kernel's, released when the process exits, so a file left by a dead
    process is reused, never trusted. (flock works on local filesystems and on NFS v4; on a
    filesystem without locks, `fit` says so and does not train.)"""

    def __init__(self, run_path: str):
        run_path = os.path.abspath(run_path)
        self.run_path = run_path
        self.path = os.path.join(os.path.dirname(run_path), f".{os.path.basename(run_path)}.lock")
        self.fd = None

    def holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as f:
                info = json.load(f)
            return f"process {info['pid']} on {info['host']}, since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self) -> None:
        import fcntl
        import socket
        import time

        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            reason = why_not_creatable(parent)
            if reason:  # as RunDir.check_writable says it
                raise RunDirError(f"cannot create {self.run_path}: {reason}; choose another --out")
        while True:
            try:
                os.makedirs(parent, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            except OSError as e:
                raise _os_error("create", self.run_path, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunDirError(
                    f"{self.run_path} is being written by another tfvae fit ({self.holder()}); wait for it "
                    "to finish or stop it, then --resume; or choose another --out"
                ) from None
            except OSError as e:
                os.close(fd)
                raise RunDirError(f"cannot lock {self.path}: {e.strerror or e} (a filesystem without file locks?); "
                                  "choose an --out on a local disk") from None
            try:  # the holder removes the file when it is done: a file locked after that is not the lock
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.fd = fd
        try:  # only for the refusal's message: a full disk does not stop the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            try:
                os.remove(self.path)  # while still locked (see acquire's inode check)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            except FileNotFoundError:
                pass
            finally:
                os.close(self.fd)
                self.fd = None


class RunDir:
    """A run directory on disk."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config_path(self):
        return self.file(CONFIG)

    @property
    def metrics_path(self):
        return self.file(METRICS)

    @property
    def checkpoint_dir(self):
        return self.file(CHECKPOINTS)

    @property
    def tensorboard_dir(self):
        return self.file(TENSORBOARD)

    @property
    def images_dir(self):
        return self.file(IMAGES)

    @property
    def model_path(self):
        return self.file(MODEL)

    @property
    def best_weights_path(self):
        """With --early-stopping: the weights of the epoch with the lowest validation loss so far."""
        return self.file(BEST_WEIGHTS)

    @property
    def best_info_path(self):
        """With --early-stopping: {"epoch", "val_loss", "sha256"} of the weights in best.weights.h5."""
        return self.file(BEST_INFO)

    def checkpoint_steps(self) -> list:
        """The steps of the checkpoints on disk (their index files), oldest first."""
        import glob

        return sorted(checkpoint_number(p) for p in glob.glob(os.path.join(self.checkpoint_dir, "ckpt-*.index")))

    def sweep_leftovers(self) -> list:
        """Removes what a writer killed mid-write leaves (called by `fit --resume` while it holds
        the lock, so no other writer's files are touched): the temporary files of atomic writes,
        TensorFlow's `ckpt-N_temp/` folders and `checkpoint.tmp*` files, the data files of a
        checkpoint whose index was never written, and `--overwrite`'s staging folders. Returns
        the names removed."""
        import glob
        import re

        found = glob.glob(os.path.join(self.path, ".*.tmp")) + glob.glob(os.path.join(self.path, "*.tmp-*.keras"))
        found += glob.glob(os.path.join(self.path, ".best-*.weights.h5"))
        found += glob.glob(os.path.join(self.checkpoint_dir, "*_temp*"))
        found += glob.glob(os.path.join(self.checkpoint_dir, "checkpoint.tmp*"))
        indexed = set(self.checkpoint_steps())
        for data in glob.glob(os.path.join(self.checkpoint_dir, "ckpt-*.data-*")):
            match = re.match(r"ckpt-(\d+)\.data-", os.path.basename(data))
            if match and int(match.group(1)) not in indexed:
                found.append(data)
        base = glob.escape(os.path.basename(self.path))
        parent = os.path.dirname(self.path)
        found += glob.glob(os.path.join(parent, f".{base}.*.new")) + glob.glob(os.path.join(parent, f".{base}.*.old"))
        removed = []
        for path in found:
            try:
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
                removed.append(os.path.relpath(path, parent))
            except FileNotFoundError:
                pass
        return removed

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def is_run(self) -> bool:
        return os.path.isfile(self.config_path)

    # ------------------------------------------------------------------ config
    def read(self):
        """(Config, meta dict) from config.json."""
        if not self.is_run():
            if not os.path.exists(self.path):
                raise RunDirError(f"{self.path} does not exist; give the directory a `tfvae fit --out` wrote")
            raise RunDirError(f"{self.path} is not a tfvae run directory (it has no {CONFIG})")
        try:
            with open(self.config_path, encoding="utf-8") as f:
                raw = json.load(f)
            if not isinstance(raw, dict):
                raise ValueError(f"it holds a JSON {type(raw).__name__}, not an object")
        except OSError as e:
            raise system_failure(e) from None
        except ValueError as e:  # UnicodeDecodeError included
            raise RunDirError(f"{self.config_path} is damaged ({_first_line(e)}); the run's settings cannot be "
                              "rebuilt from its other files: put back a copy of config.json, or train again "
                              "with --overwrite") from None
        meta = {k: raw.pop(k) for k in META_KEYS if k in raw}
        raw.setdefault("dequantize", "none")  # saved only when used: without it, raw pixels (as before it existed)
        return make_config(raw, where=self.config_path), meta

    def config_text(self, config: Config, meta: dict) -> str:
        return json.dumps({**config.to_saved_dict(), **meta}, indent=2, sort_keys=True) + "\n"

    def write_config(self, config: Config, meta: dict) -> None:
        atomic_write_text(self.config_path, self.config_text(config, meta))

    # ------------------------------------------------------------------ creation
    @staticmethod
    def check_writable(path: str) -> None:
        """Refuses an --out that cannot be created, before any work is done."""
        path = os.path.abspath(path)
        reason = why_not_creatable(path)
        if reason:
            raise RunDirError(f"cannot create {path}: {reason}; choose another --out")

    def create(self, config: Config, meta: dict, overwrite: bool = False, fill=None) -> None:
        """Creates the run directory with its config.json, atomically (built aside, then renamed).

        With overwrite, an existing directory is replaced by the new one as training starts (after
        the data loaded and the model was built); if the swap fails, the old one is put back.
        `fill(staging)` writes further files into it before the rename (`tfvae fit-prior`).
        """
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.", suffix=".new", dir=parent)
        except OSError as e:
            raise _os_error("create", self.path, e) from None
        try:
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; a run dir is not
            with open(os.path.join(staging, CONFIG), "w", encoding="utf-8") as f:
                f.write(self.config_text(config, meta))
            if fill is not None:
                fill(staging)
            if os.path.exists(self.path):
                if not overwrite:
                    raise RunDirError(f"{self.path} already exists; pass --resume or --overwrite")
                trash = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.", suffix=".old", dir=parent)
                old = os.path.join(trash, "run")
                os.replace(self.path, old)
                try:
                    os.replace(staging, self.path)
                except OSError:
                    os.replace(old, self.path)
                    raise
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(staging, self.path)
        except OSError as e:
            raise _os_error("create", self.path, e) from None
        finally:
            if os.path.exists(staging):
                shutil.rmtree(staging, ignore_errors=True)
        for sub in (CHECKPOINTS, IMAGES):
            os.makedirs(self.file(sub), exist_ok=True)

    # ------------------------------------------------------------------ metrics
    def read_metrics(self) -> list:
        """metrics.csv as a list of dicts (numbers as floats); empty when there is none yet."""
        if not os.path.isfile(self.metrics_path):
            return []
        try:
            with open(self.metrics_path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise system_failure(e) from None
        except (ValueError, csv.Error) as e:
            raise self._damaged_metrics(_first_line(e)) from None
        out = []
        for number, row in enumerate(rows, start=1):
            if None in row or None in row.values():  # more or fewer fields than the header names
                raise self._damaged_metrics(f"row {number} does not have the header's {len(row) - (None in row)} columns")
            parsed = {}
            for k, v in row.items():
                try:
                    parsed[k] = float(v) if v != "" else None
                except ValueError:
                    raise self._damaged_metrics(f"row {number}, column {k!r} is {v[:20]!r}, not a number") from None
            epoch, expected = parsed.get("epoch"), out[-1]["epoch"] + 1 if out else None
            if epoch is None or epoch < 1 or not float(epoch).is_integer() or expected not in (None, epoch):
                raise self._damaged_metrics(f"row {number} is epoch {epoch}, not "
                                            + (f"{expected:g}" if expected else "a positive whole number"))
            out.append(parsed)
        return out

    def _damaged_metrics(self, why: str) -> RunDirError:
        return RunDirError(f"{self.metrics_path} is damaged ({why}); move it aside and `tfvae fit --out {self.path} "
                           "--resume` goes on (from the last checkpoint, with the later epochs' rows only), or "
                           "train again with --overwrite")

    def write_metrics(self, rows: list) -> None:
        """Rewrites metrics.csv atomically (it is small: one row per epoch)."""
        if not rows:
            if os.path.exists(self.metrics_path):
                os.remove(self.metrics_path)
            return
        columns = []
        for row in rows:
            for k in row:
                if k not in columns:
                    columns.append(k)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in columns})
        atomic_write_text(self.metrics_path, buf.getvalue())

    def last_metrics(self) -> Optional[dict]:
        rows = self.read_metrics()
        return rows[-1] if rows else None


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.6g}"
    return v
