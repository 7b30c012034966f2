"""`tfvae fit --local-workers N`: a multi-worker job on this machine, for trying it out.

Starts N `tfvae fit --strategy multiworker` processes on 127.0.0.1 ports, each with its own
TF_CONFIG (worker 0 is the chief), and waits for them. The chief's output goes to the terminal,
the others' to log files in a temporary folder (their last lines are shown if they fail). When a
worker fails, the others are stopped; SIGINT/SIGTERM are passed on to every worker, which then stop
together at the same step after saving a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from tfvae.errors import ConfigError, Interrupted, TfvaeError

POLL_SECONDS = 0.2


def free_ports(n: int) -> list:
    """n TCP ports free on 127.0.0.1 right now (another program could still take one before the
    workers bind it; the job then fails to start and says so)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list, index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _done_line(path: str) -> str:
    """The worker's closing line (epochs and the weights' digest), or its last line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = [l.strip() for l in f.read().splitlines() if l.strip()]
    except OSError:
        return ""
    done = [l for l in text if l.startswith("worker ") and "weights sha256" in l]
    return done[-1] if done else (text[-1] if text else "")


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = [l.strip() for l in f.read().splitlines() if l.strip()]
        errors = [l for l in text if l.startswith("Error:")]
        return (errors[-1] if errors else " | ".join(text[-lines:]))[:400]
    except OSError:
        return ""


def run_local_workers(n: int, fit_args: list, grace: float = 30.0) -> list:
    """Runs `tfvae fit FIT_ARGS --strategy multiworker` as n local workers; returns their last
    lines (worker 0 first). Raises TfvaeError when a worker fails, Interrupted when stopped."""
    if n < 2:
        raise ConfigError(f"--local-workers must be at least 2 (one process needs no cluster), got {n}")
    addresses = [f"127.0.0.1:{p}" for p in free_ports(n)]
    logs = tempfile.mkdtemp(prefix="tfvae-workers-")
    procs, files = [], []
    for i in range(n):
        env = dict(os.environ, TF_CONFIG=tf_config(addresses, i), TF_FORCE_GPU_ALLOW_GROWTH="true")
        cmd = [sys.executable, "-m", "tfvae", "fit", *fit_args, "--strategy", "multiworker"]
        # Each worker in its own session: a Ctrl-C in the terminal reaches this process only, which
        # passes it on once to every worker (twice would mean "stop at once" to them).
        if i == 0:
            procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))
            files.append(None)
        else:
            f = open(os.path.join(logs, f"worker-{i}.log"), "w")
            files.append(f)
            procs.append(subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True))

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed = None
    try:
        while any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                code = p.poll()
                if code not in (None, 0, Interrupted.exit_code) and failed is None:
                    failed = (i, code)
            if failed is not None:
                deadline = time.time() + grace  # the others notice within their timeout; then stop them
                while time.time() < deadline and any(p.poll() is None for p in procs):
                    time.sleep(POLL_SECONDS)
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                break
            time.sleep(POLL_SECONDS)
        for p in procs:
            p.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for f in files:
            if f is not None:
                f.close()
    codes = [p.returncode for p in procs]
    summary = [_done_line(os.path.join(logs, f"worker-{i}.log")) if i else "" for i in range(n)]
    if failed is None and any(c not in (0, Interrupted.exit_code) for c in codes):
        failed = next((i, c) for i, c in enumerate(codes) if c not in (0, Interrupted.exit_code))
    if failed is not None:
        i, code = failed
        why = _tail(os.path.join(logs, f"worker-{i}.log")) if i else "see its output above"
        raise TfvaeError(f"worker {i} of {n} failed (exit status {code}: {why}); the other workers were stopped; "
                         f"logs in {logs}; fix the cause and run again (with --resume if training had started)")
    if any(c == Interrupted.exit_code for c in codes):
        raise Interrupted(f"the {n} workers stopped together after saving a checkpoint; continue with --resume "
                          f"(same options); logs in {logs}")
    shutil.rmtree(logs, ignore_errors=True)
    return summary
