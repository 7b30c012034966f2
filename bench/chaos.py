"""Faults at random, with a bigger budget than the suite's: a training run SIGKILLed --kills
times (every other kill at the start of a checkpoint write, the others at a random moment),
resumed after each, then compared bit for bit with an uninterrupted run.

    python bench/chaos.py [--kills 30] [--epochs 16] [--seed 0]

Prints each kill, then the counts (kills, kills that left a half-written checkpoint) and whether
the final weights equal the uninterrupted run's; exits 1 if they do not.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import numpy as np

    from chaos import chaos_train
    from conftest import make_bars

    work = tempfile.mkdtemp(prefix="tfvae-chaos-")
    x, y = make_bars(640, seed=1)
    data = os.path.join(work, "bars.npz")
    np.savez(data, x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    common = ["-d", f"npz:{data}", "-e", args.epochs, "--hidden", "32", "-z", "4", "-b", "16", "--seed", "3", "-q"]
    t0 = time.perf_counter()
    straight = os.path.join(work, "straight")
    subprocess.run([sys.executable, "-m", "tfvae", "fit", *map(str, common), "-o", straight], check=True,
                   env=dict(os.environ, PYTHONPATH=ROOT))
    out = os.path.join(work, "chaos")
    stats = chaos_train([*common, "--checkpoint-every", 3, "--steps-per-call", 1], out, kills=args.kills,
                        seed=args.seed, log=lambda m: print(m, flush=True))
    import tfvae

    same = all(np.array_equal(a.numpy(), b.numpy()) for a, b in
               zip(tfvae.load(out).keras_model.weights, tfvae.load(straight).keras_model.weights, strict=True))
    from tfvae.rundir import RunDir

    epochs = [int(r["epoch"]) for r in RunDir(out).read_metrics()]
    print(f"{stats['kills']} kills ({stats['mid_write']} left a half-written checkpoint, {stats['random']} at a "
          f"random moment, {stats['before_start']} before the run directory existed); leftovers after the last "
          f"resume: {len(stats['leftovers_after'])}; metrics epochs {epochs}; final weights "
          f"{'bit-identical to' if same else 'DIFFERENT from'} the uninterrupted run's "
          f"({time.perf_counter() - t0:.0f} s; {work})")
    sys.exit(0 if same and epochs == list(range(1, args.epochs + 1)) and not stats["leftovers_after"] else 1)


if __name__ == "__main__":
    main()
