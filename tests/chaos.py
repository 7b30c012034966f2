"""Faults at random: a training run killed with SIGKILL at random moments, several times, some
of them while a checkpoint is being written, and resumed after each kill (tests/test_faults.py
runs a few kills; bench/chaos.py many)."""

from __future__ import annotations

import glob
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fit(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "tfvae", "fit", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _indexes(out):
    return set(glob.glob(os.path.join(out, "checkpoints", "ckpt-*.index")))


def _writing(out) -> bool:
    """A checkpoint write in progress: TensorFlow's ckpt-N_temp/ folder exists."""
    return bool(glob.glob(os.path.join(out, "checkpoints", "*_temp*")))


def _leftovers(out) -> list:
    """What an interrupted write left: temporary folders and files, data files without an index."""
    ckpt = os.path.join(out, "checkpoints")
    found = glob.glob(os.path.join(ckpt, "*_temp*")) + glob.glob(os.path.join(ckpt, "checkpoint.tmp*"))
    found += glob.glob(os.path.join(out, ".*.tmp")) + glob.glob(os.path.join(out, "*.tmp-*"))
    steps = {os.path.basename(p).split(".")[0] for p in _indexes(out)}
    found += [p for p in glob.glob(os.path.join(ckpt, "ckpt-*.data-*")) if os.path.basename(p).split(".")[0] not in steps]
    return found


def chaos_train(start_args, out, kills: int, seed: int = 0, log=None, timeout: float = 300) -> dict:
    """Trains `tfvae fit START_ARGS -o OUT`, SIGKILLs it `kills` times and resumes it after each
    kill, then lets the last resume finish. Every other kill waits for a checkpoint write to begin
    (TensorFlow's ckpt-N_temp/ folder) and kills at once; the others kill at a random moment
    after training has made progress. Returns counts: kills, kills that left a half-written
    checkpoint behind, restarts from scratch (a kill before the run directory existed)."""
    out = str(out)
    rng = random.Random(seed)
    stats = {"kills": 0, "mid_write": 0, "before_start": 0, "random": 0}
    say = log or (lambda *a: None)
    for attempt in range(kills):
        fresh = not os.path.isfile(os.path.join(out, "config.json"))
        proc = _fit(*start_args, "-o", out) if fresh else _fit("-o", out, "--resume")
        before = _indexes(out)
        at_write = attempt % 2 == 0
        deadline = time.time() + timeout
        delay = rng.uniform(0.0, 1.0)
        progressed_at = None
        while proc.poll() is None and time.time() < deadline:
            if at_write:
                if _writing(out):
                    break
                time.sleep(0.001)
            else:
                if progressed_at is None and _indexes(out) - before:
                    progressed_at = time.time()
                if progressed_at is not None and time.time() - progressed_at >= delay:
                    break
                time.sleep(0.005)
        if proc.poll() is not None:  # it finished (or failed) before the kill
            err = proc.stderr.read()
            if proc.returncode != 0:
                raise AssertionError(f"tfvae fit failed after {stats['kills']} kills: {err[-2000:]}")
            say(f"the run finished before kill {attempt + 1}")
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
        stats["kills"] += 1
        left = _leftovers(out)
        if not os.path.isfile(os.path.join(out, "config.json")):
            stats["before_start"] += 1
        elif left:
            stats["mid_write"] += 1
        else:
            stats["random"] += 1
        say(f"kill {stats['kills']}: {'at a checkpoint write' if at_write else f'{delay:.2f} s after progress'}, "
            f"{len(left)} unfinished file(s) left, checkpoints {sorted(os.path.basename(p) for p in _indexes(out))}")
    if os.path.isfile(os.path.join(out, "config.json")):
        final = _fit("-o", out, "--resume")
    else:
        final = _fit(*start_args, "-o", out)
    _, err = final.communicate(timeout=timeout)
    if final.returncode != 0:
        raise AssertionError(f"the last resume failed: {err[-2000:]}")
    stats["leftovers_after"] = _leftovers(out)
    return stats
