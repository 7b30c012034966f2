"""Training speed: tfvae against a plain PyTorch eager loop and a keras.io-style `model.fit`.

    python bench/train_speed.py [--data /usr/share/datasets/fashion-mnist] [--epochs 5] [--conv-epochs 3]

Each contender runs in its own process, one after another, on the same 60,000 Fashion-MNIST
images: the MLP VAE 784-400-20 (ReLU), Bernoulli likelihood from logits, dynamic binarization,
Adam 1e-3, batch 128.

  tfvae fit (mlp)     `tfvae fit` itself; an epoch is the wall time between two epochs' checkpoints
                      (data order, steps, metrics, the checkpoint), its steps alone printed below
  tfvae fit (conv)    `tfvae fit --network conv` (32/64 conv filters, a 400-unit layer, z = 20)
  model families      (last; `--families-only` for it alone) every family beside the VAE with the
                      recipes' networks (gated 300-300, z = 40, batch 100): ms per step, the step's
                      FLOPs counted from its graph (bench/flops.py), the FLOP and time ratios to the
                      VAE of the same network
  PyTorch eager       bench/contenders/torch_vae.py (needs `pip install torch==2.13.0`)
  Keras model.fit     bench/contenders/keras_io_vae.py: a train_step as the keras.io VAE example,
                      compiled as the example compiles it (on a CPU-only machine Keras 3 leaves
                      XLA off); a second row, for reference only, with jit_compile=True and 20
                      steps per call

It prints seconds per epoch (minimum and median of the epochs after the first, which includes
tracing and compilation), images/s (the images an epoch trains on: 468 batches of 128 for tfvae
and PyTorch, which drop the last partial batch; all 60,000 for Keras), the ratios of images/s,
each process's peak memory, tfvae's start-up time (process start to the end of its first
compiled call of 24 steps), and the matmul floor: the training FLOPs of an epoch divided by the
best fp32 GEMM rate measured here, now.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(ROOT)
sys.path.insert(0, REPO)

N_IMAGES = 60000
FULL_BATCHES = N_IMAGES // 128 * 128  # tfvae and the PyTorch loop drop the last partial batch
# Training FLOPs per image of the MLP VAE: forward 2*(784*400 + 400*2*20 + 20*400 + 400*784)
# multiply-adds counted as 2 FLOPs; backward twice the forward, less the input layer's input
# gradient (2*784*400), which is never computed.
FORWARD = 2 * (784 * 400 + 400 * 40 + 20 * 400 + 400 * 784)
FLOPS_PER_IMAGE = 3 * FORWARD - 2 * 784 * 400


GEMM = r"""
import json, time, numpy as np, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
best = {}
for n in (512, 1024, 2048):
    a = tf.random.normal([n, n]); b = tf.random.normal([n, n])
    np_a, np_b = a.numpy(), b.numpy()
    for name, f in (("tensorflow", lambda: tf.matmul(a, b).numpy()), ("numpy", lambda: np_a @ np_b)):
        f()
        t = min((lambda: (lambda t0: (f(), time.perf_counter() - t0)[1])(time.perf_counter()))() for _ in range(5))
        best[name] = max(best.get(name, 0), 2 * n ** 3 / t / 1e9)
print(json.dumps(best))
"""


def run(cmd, env=None):
    """Runs cmd; returns (stdout, stderr)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} ... failed:\n{proc.stderr[-3000:]}")
    return proc.stdout, proc.stderr


def peak_rss(cmd, env=None):
    """Runs cmd; returns (stdout, stderr, the process's peak resident memory in MiB)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))
    out, err = [], []
    import threading

    def pump(stream, sink):
        for line in stream:
            sink.append(line)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out)),
               threading.Thread(target=pump, args=(proc.stderr, err))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in threads:
        t.join()
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{' '.join(map(str, cmd[:5]))} ... failed ({code}):\n{''.join(err)[-3000:]}")
    return "".join(out), "".join(err), usage.ru_maxrss / 1024


def summary(name, seconds, rss, images):
    after = seconds[1:] if len(seconds) > 1 else seconds
    return {"name": name, "epochs": len(seconds), "min": min(after), "median": statistics.median(after),
            "images_per_sec": images / min(after), "rss_mib": rss}


def machine():
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


# The model families beside the VAE, with the recipes' architectures (Fashion-MNIST, batch 100,
# gated layers of 300 units, z = 40): (row, `tfvae fit` options, training images per epoch).
RECIPE_MLP = ["--hidden", "300,300", "--activation", "gated", "-z", "40", "-b", "100"]
FAMILY_ROWS = [
    ("vae (fmnist-vae)", ["-m", "vae", *RECIPE_MLP], 12000),
    ("vae --condition label (fmnist-cvae)", ["-m", "vae", "--condition", "label", *RECIPE_MLP], 12000),
    ("vae --condition label --prior class", ["-m", "vae", "--condition", "label", "--prior", "class", *RECIPE_MLP],
     12000),
    ("vae --condition label --prior vamp, K = 500 (fmnist-cvae-vamp)",
     ["-m", "vae", "--condition", "label", "--prior", "vamp", *RECIPE_MLP], 12000),
    ("vae --prior mog, K = 500", ["-m", "vae", "--prior", "mog", "--prior-components", "500", *RECIPE_MLP], 12000),
    ("vae --prior vamp, K = 500 (fmnist-vamp)", ["-m", "vae", "--prior", "vamp", *RECIPE_MLP], 12000),
    ("hvae", ["-m", "hvae", *RECIPE_MLP], 12000),
    ("hvae --prior vamp (fmnist-hvae-vamp)", ["-m", "hvae", "--prior", "vamp", *RECIPE_MLP], 12000),
    ("conv vae (fmnist-conv-vae)", ["-m", "vae", "--network", "conv", "--hidden", "256", "-z", "40", "-b", "100"], 3000),
    ("conv vae --condition label", ["-m", "vae", "--network", "conv", "--hidden", "256", "-z", "40", "-b", "100",
                                    "--condition", "label"], 3000),
    ("conv hvae (fmnist-convhvae)", ["-m", "hvae", "--network", "conv", *RECIPE_MLP], 1000),
    ("conv hvae --prior vamp (fmnist-convhvae-vamp)", ["-m", "hvae", "--network", "conv", "--prior", "vamp",
                                                       *RECIPE_MLP], 1000),
]


def _flops_of(extra) -> int:
    """Training FLOPs per step of the row's model (bench/flops.py, counted from its graph)."""
    sys.path.insert(0, ROOT)
    from flops import step_flops

    keys = {"-m": "model", "--prior": "prior", "--prior-components": "prior_components", "--hidden": "hidden",
            "--activation": "activation", "-z": "latent_dim", "--network": "network", "--condition": "condition"}
    options = {}
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in keys:
            options[keys[flag]] = int(value) if keys[flag] in ("prior_components", "latent_dim") else value
    return step_flops(options, batch=100)


def families(args, env_src, work):
    """Seconds per training step of each family (metrics.csv: steps only, epochs after the first)
    and its FLOP ratio to the VAE of the same network."""
    rows = []
    for label, extra, images in FAMILY_ROWS:
        if args.family_rows and not any(k in label for k in args.family_rows.split(",")):
            continue
        print(f"{label} ...", flush=True)
        out = os.path.join(work, "family-" + re.sub(r"[^a-z0-9]+", "-", label))
        run([sys.executable, "-m", "tfvae", "fit", "-d", f"idx:{args.data}", "-o", out, "--epochs",
             str(args.family_epochs), "--validation-split", "0", "--max-train-examples", str(images), "--image-every",
             "1000", "-q", *extra], env=env_src)
        from tfvae.rundir import RunDir

        per_step = [r["seconds"] / (images // 100) for r in RunDir(out).read_metrics()][1:]
        rows.append({"label": label, "conv": "--network" in extra, "step": statistics.median(per_step),
                     "flops": _flops_of(extra)})
    print()
    print(f"model families, batch 100, the recipes' networks; seconds per training step (median of epochs "
          f"2..{args.family_epochs}, steps only); ratios to the VAE of the same network")
    print()
    print("| model | ms per step | GFLOP per step | FLOP ratio | time ratio | time ratio / FLOP ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        base = next(b for b in rows if b["conv"] == r["conv"])
        f_ratio, t_ratio = r["flops"] / base["flops"], r["step"] / base["step"]
        print(f"| {r['label']} | {r['step'] * 1000:.1f} | {r['flops'] / 1e9:.2f} | {f_ratio:.2f} | {t_ratio:.2f} | "
              f"{t_ratio / f_ratio:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX folder")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--conv-epochs", type=int, default=3)
    p.add_argument("--family-epochs", type=int, default=3)
    p.add_argument("--skip", default="", help="comma-separated contenders to skip: conv,torch,keras,families")
    p.add_argument("--families-only", action="store_true", help="only the table of model families")
    p.add_argument("--family-rows", default="", help="comma-separated substrings: only the family rows naming one "
                   "(the first row of each network is the VAE the others are divided by)")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.families_only:
        env_src = {"PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        print(f"machine: {machine()}", flush=True)
        families(args, env_src, tempfile.mkdtemp(prefix="tfvae-bench-"))
        return

    from tfvae.data.idx import load_idx_dir
    import numpy as np

    x = load_idx_dir(args.data)[0].astype(np.float32) / 255.0
    work = tempfile.mkdtemp(prefix="tfvae-bench-")
    images = os.path.join(work, "train.npy")
    np.save(images, x)
    env_src = {"PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results = []
    steps = {}  # tfvae's steps alone, from metrics.csv

    def tfvae_fit(name, extra, epochs):
        out = os.path.join(work, name.replace(" ", "-"))
        _, err, rss = peak_rss([sys.executable, "-m", "tfvae", "fit", "-d", f"idx:{args.data}", "-o", out,
                                "--epochs", str(epochs), "--validation-split", "0", "--image-every", str(epochs),
                                "-q", *extra], env={**env_src, "TFVAE_TIMINGS": "1"})
        from tfvae.rundir import RunDir

        steps_only = [r["seconds"] for r in RunDir(out).read_metrics()]
        saved = [float(t) for t in re.findall(r"timings: epoch \d+ saved at ([0-9.]+) s", err)]
        if len(saved) != epochs:
            raise SystemExit(f"{name}: expected {epochs} epoch timings from tfvae fit, found {len(saved)}")
        # Epoch 1 (compilation; not summarized) by its steps; then checkpoint to checkpoint.
        whole = steps_only[:1] + [b - a for a, b in zip(saved, saved[1:])]
        results.append(summary(name, whole, rss, FULL_BATCHES))
        steps[name] = summary(name, steps_only, rss, FULL_BATCHES)
        steps[name]["rest"] = statistics.median([w - s for w, s in zip(whole[1:], steps_only[1:])] or [0.0])
        startup = re.search(r"first training step done ([0-9.]+) s", err)
        return float(startup.group(1)) if startup else None

    print(f"machine: {machine()}", flush=True)
    print("measuring the fp32 GEMM rate ...", flush=True)
    gemm = json.loads(run([sys.executable, "-c", GEMM])[0].strip().splitlines()[-1])
    print("tfvae fit (mlp) ...", flush=True)
    startup = tfvae_fit("tfvae fit (mlp)", [], args.epochs)
    if "conv" not in skip:
        print("tfvae fit (conv) ...", flush=True)
        tfvae_fit("tfvae fit (conv)", ["--network", "conv"], args.conv_epochs)
    if "torch" not in skip:
        print("PyTorch eager ...", flush=True)
        try:
            out, _, rss = peak_rss([sys.executable, os.path.join(ROOT, "contenders", "torch_vae.py"), images,
                                    str(args.epochs)])
            results.append(summary("PyTorch eager loop", json.loads(out.strip().splitlines()[-1])["seconds_per_epoch"],
                                   rss, FULL_BATCHES))
        except SystemExit as e:
            if "No module named 'torch'" not in str(e):
                raise
            print("  skipped: torch is not installed (pip install torch==2.13.0)")
    if "keras" not in skip:
        print("Keras model.fit (keras.io-style train_step) ...", flush=True)
        for label, extra in (("Keras model.fit, keras.io train_step", []),
                             ("(reference) the same, jit_compile=True, 20 steps per call", ["--xla"])):
            out, _, rss = peak_rss([sys.executable, os.path.join(ROOT, "contenders", "keras_io_vae.py"), images,
                                    str(args.epochs), *extra], env={"TF_CPP_MIN_LOG_LEVEL": "2"})
            results.append(summary(label, json.loads(out.strip().splitlines()[-1])["seconds_per_epoch"], rss, N_IMAGES))

    by = {r["name"]: r for r in results}
    ours = by["tfvae fit (mlp)"]
    best_gemm = max(gemm.values())
    floor = FULL_BATCHES * FLOPS_PER_IMAGE / (best_gemm * 1e9)
    print()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")
    print("MLP VAE 784-400-20, batch 128, Adam 1e-3, 60,000 Fashion-MNIST images, dynamic binarization; "
          f"seconds per epoch over epochs 2..{args.epochs} (conv: 2..{args.conv_epochs})")
    print()
    print("| contender | s/epoch (min) | s/epoch (median) | images/s | tfvae is x faster | peak memory |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        ratio = "" if r is ours or "conv" in r["name"] else f"{ours['images_per_sec'] / r['images_per_sec']:.2f}x"
        print(f"| {r['name']} | {r['min']:.2f} | {r['median']:.2f} | {r['images_per_sec']:,.0f} | {ratio} | "
              f"{r['rss_mib']:,.0f} MiB |")
    print()
    only = steps["tfvae fit (mlp)"]
    print(f"tfvae's steps alone (metrics.csv): {only['min']:.2f} s min, {only['median']:.2f} s median; the rest of "
          f"its epoch (data order, metrics, checkpoint; median over the same epochs): {only['rest']:.2f} s")
    print(f"matmul floor: {FULL_BATCHES * FLOPS_PER_IMAGE / 1e9:.0f} GFLOP per epoch / best fp32 GEMM "
          f"{best_gemm:.0f} GFLOP/s (TensorFlow {gemm['tensorflow']:.0f}, numpy {gemm['numpy']:.0f}) = "
          f"{floor:.2f} s per epoch; tfvae's MLP epoch is {ours['min'] / floor:.1f}x the floor")
    if startup:
        first = -(-468 // 20)  # the steps of tfvae's first compiled call
        print(f"tfvae start-up: the first compiled call (its {first} steps, {first / 468 * only['min']:.2f} s of "
              f"training) ended {startup:.1f} s after `tfvae fit` started (imports, data, model, tracing, XLA)")
    if "families" not in skip:
        print()
        families(args, env_src, work)


if __name__ == "__main__":
    main()
