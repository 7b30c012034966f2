"""Surviving faults: kill -9 and resume, SIGTERM, multi-worker training and a lost worker."""

import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import tfvae
from tfvae.errors import Interrupted
from tfvae.rundir import RunDir

from conftest import ROOT

ARGS = ["--hidden", "32", "-z", "4", "-b", "16", "--seed", "3", "-q"]


def fit_process(*args, env=None):
    """`tfvae fit ARGS` in a new process (Popen), run from the source checkout."""
    env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "tfvae", "fit", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def weights(run_dir):
    return [w.numpy() for w in tfvae.load(str(run_dir)).keras_model.weights]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def checkpoints(run_dir):
    return sorted(glob.glob(os.path.join(str(run_dir), "checkpoints", "ckpt-*.index")))


def resume_to_the_end_and_compare(out, straight):
    """`tfvae fit -o OUT --resume` to the end; its weights bit-identical to the uninterrupted run's,
    one metrics row per epoch."""
    resumed = fit_process("-o", out, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    for a, b in zip(weights(out), weights(straight), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["epoch"] for r in RunDir(str(out)).read_metrics()] == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def straight(bars_npz, tmp_path_factory):
    """The uninterrupted reference run: 4 epochs of 28 steps."""
    out = tmp_path_factory.mktemp("faults") / "straight"
    proc = fit_process("-d", bars_npz, "-o", out, "-e", 4, *ARGS)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def test_kill_9_mid_epoch_then_resume_equals_the_uninterrupted_run(bars_npz, tmp_path, straight):
    out = tmp_path / "killed"
    proc = fit_process("-d", bars_npz, "-o", out, "-e", 4, "--checkpoint-every", 10, "--steps-per-call", 2, *ARGS)
    # after the second mid-epoch checkpoint (step 20 of 28 in epoch 1), kill -9
    wait_for(lambda: len(checkpoints(out)) >= 2 or proc.poll() is not None, 240, "two checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not RunDir(str(out)).read_metrics() or RunDir(str(out)).read_metrics()[-1]["epoch"] < 4
    resumed = fit_process("-o", out, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    for a, b in zip(weights(out), weights(straight), strict=True):
        np.testing.assert_array_equal(a, b)
    rows, ref = RunDir(str(out)).read_metrics(), RunDir(str(straight)).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]  # no duplicated or missing epochs
    for r, q in zip(rows, ref):
        assert r["loss"] == pytest.approx(q["loss"], rel=1e-5) and r["val_elbo"] == pytest.approx(q["val_elbo"], rel=1e-6)
    # nothing half-written: every file in the run directory is complete and readable
    assert not [f for f in os.listdir(out) if f.startswith(".")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_a_checkpoint_and_exits_with_75_then_resume_completes(bars_npz, tmp_path, straight, sig):
    out = tmp_path / "term"
    proc = fit_process("-d", bars_npz, "-o", out, "-e", 4, "--steps-per-call", 1, *ARGS)
    wait_for(lambda: len(checkpoints(out)) >= 1 or proc.poll() is not None, 240, "the first checkpoint")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == Interrupted.exit_code == 75, err
    line = [l for l in err.splitlines() if l.startswith("stopped by ")][-1]  # not an "Error:"
    assert re.search(rf"stopped by {sig.name} at epoch \d+, step \d+ of 28; checkpoint ckpt-\d+ saved", line), line
    assert "--resume" in line
    step = int(re.search(r"ckpt-(\d+)", line).group(1))
    assert step in [int(re.search(r"ckpt-(\d+)", p).group(1)) for p in checkpoints(out)]
    resume_to_the_end_and_compare(out, straight)


def _digests(text):
    return re.findall(r"worker (\d)/2: done, \d+ epochs, weights sha256 ([0-9a-f]{64})", text)


def test_two_local_workers_agree_with_each_other_and_with_one_process(bars_npz, tmp_path, straight):
    out = tmp_path / "two"
    scratch_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "tfvae-worker1-*")))
    proc = fit_process("-d", bars_npz, "-o", out, "-e", 4, "--local-workers", 2, *ARGS)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    digests = dict(_digests(err))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], err  # bit-identical workers
    assert RunDir(str(out)).read()[0].strategy == "multiworker"
    # the same global batch of 16 split over 2 workers gives the single process's training
    for a, b in zip(weights(out), weights(straight), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-4)
    assert [r["epoch"] for r in RunDir(str(out)).read_metrics()] == [1, 2, 3, 4]
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "tfvae-worker1-*"))) == scratch_before, "the other worker's scratch is removed"


def test_a_lost_worker_stops_the_job_with_a_clear_error_and_resume_completes(bars_npz, tmp_path, straight):
    out = tmp_path / "lost"
    timeout = 20
    proc = fit_process("-d", bars_npz, "-o", out, "-e", 4, "--local-workers", 2, "--checkpoint-every", 10,
                       "--steps-per-call", 1, "--worker-timeout", timeout, *ARGS)

    def worker_1():
        """The process whose TF_CONFIG makes it worker 1 of this job."""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if str(out).encode() not in f.read():
                        continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if b'"index": 1' in f.read():
                        return int(pid)
            except OSError:
                continue
        return None

    wait_for(lambda: len(checkpoints(out)) >= 1, 240, "a checkpoint")
    pid = worker_1()
    assert pid is not None
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=timeout + 60)
    elapsed = time.time() - killed_at
    assert proc.returncode != 0
    assert elapsed < timeout + 35, f"the job took {elapsed:.0f} s to stop"
    last = [l for l in err.splitlines() if l.startswith("Error: ")][-1]
    assert "worker 1 of 2 failed" in last and "the other workers were stopped" in last, last
    # the chief itself noticed the lost worker and said so
    assert re.search(r"worker 0 of 2 lost the other workers .*restart every worker with --resume", err), err[-2000:]
    resumed = fit_process("-o", out, "--resume", "--local-workers", 2)
    _, err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, err
    assert [r["epoch"] for r in RunDir(str(out)).read_metrics()] == [1, 2, 3, 4]
    for a, b in zip(weights(out), weights(straight), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-4)


def test_mixed_bfloat16_on_cpu_keeps_the_distributions_in_float32(bars_npz, tmp_path):
    import keras

    try:
        result = tfvae.fit(bars_npz, out=str(tmp_path / "bf16"), epochs=2, mixed_precision=True, progress=False,
                           hidden="32", latent_dim=4, batch_size=64)
        model = tfvae.load(result.run_dir).model
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
        enc = model.encoder(x)
        assert enc["loc"].dtype == "float32" and enc["scale"].dtype == "float32"
        assert model.decoder(enc["loc"])["logits"].dtype == "float32"
        hidden = model.encoder.get_layer("dense_0")
        assert hidden.compute_dtype == "bfloat16" and hidden.kernel.dtype == "float32"
        assert np.isfinite(result.metrics["loss"]) and np.isfinite(result.metrics["val_elbo"])
        full = tfvae.fit(bars_npz, out=str(tmp_path / "fp32"), epochs=2, progress=False, hidden="32",
                         latent_dim=4, batch_size=64)
        assert keras.mixed_precision.global_policy().name == "float32"
        assert result.metrics["val_elbo"] == pytest.approx(full.metrics["val_elbo"], rel=0.03)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_one_never_blocks_a_resume(bars_npz, tmp_path):
    import socket

    out = tmp_path / "locked"
    first = fit_process("-d", bars_npz, "-o", out, "-e", 100000, "--steps-per-call", 1, *ARGS)
    wait_for(lambda: len(checkpoints(out)) >= 1 or first.poll() is not None, 240, "the first checkpoint")
    assert first.poll() is None
    for args in (["-o", out, "--resume"], ["-d", bars_npz, "-o", out, "--overwrite", *ARGS]):
        second = fit_process(*args)
        _, err = second.communicate(timeout=240)
        assert second.returncode != 0
        line = [l for l in err.splitlines() if l.startswith("Error: ")][-1]
        assert f"{out} is being written by another tfvae fit (process {first.pid} on {socket.gethostname()}" in line
    assert first.poll() is None  # the first one trains on, undisturbed
    metrics_before = (out / "metrics.csv").read_text() if (out / "metrics.csv").exists() else ""
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert (tmp_path / ".locked.lock").exists()  # left behind by the killed process: not trusted
    resumed = fit_process("-o", out, "--resume", "-e", 2)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert (out / "metrics.csv").read_text().startswith(metrics_before.splitlines()[0] if metrics_before else "epoch")


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_and_ends_bit_identical(bars_npz, tmp_path, straight):
    out = tmp_path / "damaged"
    proc = fit_process("-d", bars_npz, "-o", out, "-e", 2, *ARGS)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    newest = checkpoints(out)[-1].replace(".index", ".data-00000-of-00001")
    with open(newest, "r+b") as f:  # truncated, as a full disk or a lost machine leaves it
        f.truncate(os.path.getsize(newest) // 2)
    resumed = fit_process("-o", out, "--resume", "-e", 4)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    notes = [l for l in err.splitlines() if "is damaged" in l]
    assert len(notes) == 1 and os.path.basename(newest).split(".")[0] in notes[0] and "resuming from" in notes[0], err
    for a, b in zip(weights(out), weights(straight)):
        np.testing.assert_array_equal(a, b)
    for path in checkpoints(out):  # every checkpoint damaged: one line that says what to do
        data = path.replace(".index", ".data-00000-of-00001")
        with open(data, "r+b") as f:
            f.truncate(8)
    again = fit_process("-o", out, "--resume", "-e", 5)
    _, err = again.communicate(timeout=300)
    assert again.returncode != 0
    line = [l for l in err.splitlines() if l.startswith("Error: ")][-1]
    assert "every checkpoint in" in line and "--overwrite" in line and "Traceback" not in err


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_run_resumes(capsys, bars_npz, tmp_path, monkeypatch, straight):
    import tensorflow as tf

    from conftest import one_error_line, run_cli

    out = tmp_path / "full"
    real = tf.train.CheckpointManager.save
    calls = {"n": 0}

    def full_disk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third epoch's checkpoint
            raise tf.errors.ResourceExhaustedError(None, None, "out of disk space (No space left on device)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    code, _, err = run_cli(capsys, "fit", "-d", bars_npz, "-o", out, "-e", 4, *ARGS)
    line = one_error_line(err)
    assert code == 1 and "cannot save a checkpoint at step" in line and "the disk is full" in line and "--resume" in line
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real)
    code, _, err = run_cli(capsys, "fit", "-o", out, "--resume")
    assert code == 0, err
    for a, b in zip(weights(out), weights(straight)):
        np.testing.assert_array_equal(a, b)


CHAOS_KILLS = int(os.environ.get("TFVAE_CHAOS_KILLS", "5"))  # bench/chaos.py runs many more


def test_sigkill_at_random_moments_and_during_checkpoint_writes_then_resume_ends_bit_identical(
        bars_npz, tmp_path, straight):
    from chaos import chaos_train

    out = tmp_path / "chaos"
    stats = chaos_train(["-d", bars_npz, "-e", 4, "--checkpoint-every", 3, "--steps-per-call", 1, *ARGS], out,
                        kills=CHAOS_KILLS, seed=7, log=print)
    print(stats)
    assert stats["kills"] == CHAOS_KILLS, stats  # the run outlived every kill it was meant to suffer
    assert stats["mid_write"] >= 1, stats  # at least one kill landed inside a checkpoint write
    assert stats["leftovers_after"] == [], stats  # the resumes swept what the kills left
    for a, b in zip(weights(out), weights(straight), strict=True):
        np.testing.assert_array_equal(a, b)
    rows, ref = RunDir(str(out)).read_metrics(), RunDir(str(straight)).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for r, q in zip(rows, ref):
        assert r["loss"] == pytest.approx(q["loss"], rel=1e-5) and r["val_elbo"] == pytest.approx(q["val_elbo"], rel=1e-6)
    assert not [f for f in os.listdir(out) if f.startswith(".")]


# ------------------------------------------------------------------------ real system failures
class Disk:
    """A small tmpfs mounted for one test: a real full disk and a real read-only filesystem."""

    def __init__(self, path):
        self.path = path

    def fill(self):
        """Writes a filler file until the disk refuses (ENOSPC)."""
        import errno

        block = b"\0" * 65536
        with open(self.path / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(block)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        for size in (4096, 1):  # what the blocks left
            try:
                with open(self.path / "filler", "ab", buffering=0) as f:
                    while True:
                        f.write(b"\0" * size)
            except OSError:
                pass

    def free(self):
        os.remove(self.path / "filler")

    def read_only(self):
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True, capture_output=True)

    def folder_read_only(self, folder):
        """Makes `folder` read-only while a process writes in it: a read-only bind mount over it
        (files already open stay writable; every new file is refused with EROFS)."""
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True)
        for _ in range(500):  # busy while the run has a file open through the new mount: a moment later
            if subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode == 0:
                return
            time.sleep(0.01)
        raise AssertionError(f"could not make {folder} read-only: the run kept files open in it")

    def folder_read_write(self, folder):
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk"
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()[:100]}): the real-disk tests need root")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_disk_that_fills_or_turns_read_only_during_training_is_one_line_and_resume_ends_bit_identical(
        bars_npz, disk, straight, fault):
    out = disk.path / "run"
    proc = fit_process("-d", bars_npz, "-o", out, "-e", 4, "--checkpoint-every", 5, "--steps-per-call", 1, *ARGS)
    wait_for(lambda: len(checkpoints(out)) >= 1 or proc.poll() is not None, 240, "the first checkpoint")
    disk.fill() if fault == "full" else disk.folder_read_only(out)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    said = "disk is full" if fault == "full" else "read-only"
    assert lines[0].startswith("Error: ") and said in lines[0].lower() and f"--out {out} --resume" in lines[0], err
    disk.free() if fault == "full" else disk.folder_read_write(out)
    resume_to_the_end_and_compare(out, straight)


def last_error_line(err):
    """The one error line that ends a failed command's stderr (progress lines may come before it)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and "Traceback" not in err, err
    assert sum(line.startswith("Error") for line in lines) == 1, err
    return lines[-1]


def _every_writer(run, bars_npz, where):
    """Each command that writes a result, writing it under `where`."""
    return {
        "fit": ["fit", "-d", bars_npz, "-o", where / "run", "-e", 1, *ARGS],
        "sample": ["sample", run, "-o", where / "pictures" / "s.png"],
        "reconstruct": ["reconstruct", run, "-o", where / "r.png"],
        "curves": ["curves", run, "-o", where / "c.png"],
        "evaluate": ["evaluate", run, "-k", 2, "--max-test-examples", 8, "-q", "--json", where / "e.json"],
        "score": ["score", run, "-o", where / "scores.csv"],
        "export": ["export", run, "-o", where / "export", "--samples", 64],
    }


def test_a_read_only_filesystem_is_one_line_for_every_command_that_writes(capsys, bars_npz, runs, disk):
    from conftest import run_cli

    (disk.path / "out").mkdir()
    disk.read_only()
    for name, args in _every_writer(runs["vae2"], bars_npz, disk.path / "out").items():
        code, _, err = run_cli(capsys, *args)
        line = last_error_line(err)
        assert code != 0 and "read-only" in line.lower(), (name, line)
    assert os.listdir(disk.path / "out") == []


def test_a_full_disk_is_one_line_for_every_command_that_writes_and_leaves_nothing(capsys, bars_npz, runs, disk):
    from conftest import run_cli

    disk.fill()
    for name, args in _every_writer(runs["vae2"], bars_npz, disk.path).items():
        code, _, err = run_cli(capsys, *args)
        line = last_error_line(err)
        assert code != 0 and ("disk is full" in line or "No space left" in line), (name, line)
        assert sorted(os.listdir(disk.path)) == ["filler"], (name, os.listdir(disk.path))  # no half-written result


def test_permission_denied_is_one_line(tmp_path, runs, bars_npz):
    """A folder without write permission and a file without read permission (root runs the
    commands without its power to override permissions: setpriv drops CAP_DAC_OVERRIDE)."""
    import shutil

    prefix = []
    if os.getuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root overrides file permissions and setpriv (util-linux) is missing to drop that")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", "--bounding-set", caps, "--inh-caps", caps]
    run = tmp_path / "run"
    shutil.copytree(runs["vae2"], run)
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)

    def tfvae_cli(*args):
        proc = subprocess.run([*prefix, sys.executable, "-m", "tfvae", *map(str, args)], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("Error: "), (args, proc.stderr[-2000:])
        return lines[0]

    try:
        assert "not writable (permission denied)" in tfvae_cli("sample", run, "-o", locked / "s.png")
        line = tfvae_cli("fit", "-d", bars_npz, "-o", locked / "r", "-e", 1)
        assert "permission denied" in line.lower() and "--out" in line, line
        assert "not writable (permission denied)" in tfvae_cli("export", run, "-o", locked / "export")
        line = tfvae_cli("evaluate", run, "-k", 2, "--max-test-examples", 4, "-q", "--json", locked / "e.json")
        assert "not writable (permission denied)" in line
        os.chmod(run / "config.json", 0)
        line = tfvae_cli("info", run)
        assert "permission denied" in line and "config.json" in line and "fix the permissions" in line, line
        assert os.listdir(locked) == []
    finally:
        os.chmod(locked, 0o755)


def test_a_fit_that_fails_leaves_no_folder_or_lock_behind(capsys, tmp_path):
    from conftest import one_error_line, run_cli

    x = np.full((8, 4, 4), np.nan, np.float32)  # loads, then is refused: after the lock is taken
    np.savez(tmp_path / "nan.npz", x_train=x, x_test=x)
    code, _, err = run_cli(capsys, "fit", "-d", f"npz:{tmp_path / 'nan.npz'}", "-o", tmp_path / "new" / "deeper" / "run",
                           "-e", 1, "-q")
    line = one_error_line(err)
    assert code == 1 and "NaN" in line, line
    assert sorted(os.listdir(tmp_path)) == ["nan.npz"]
