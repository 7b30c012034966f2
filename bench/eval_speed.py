"""Speed of `tfvae evaluate`'s importance-sampled log p(x): images/s, and the projected time for
the full protocol (10,000 test images, k = 5000).

    python bench/eval_speed.py RUN_DIR [--images 500] [-k 5000] [--batch-size 100] [--chunk N] [--jit]

Runs the evaluator on the first --images test images of the run's dataset, after a warm-up on a
few images (tracing), and prints images/s, samples/s and the projection. Pass --images 10000 to
time the real thing.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--images", type=int, default=500)
    p.add_argument("-k", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--jit", action="store_true")
    args = p.parse_args()

    from tfvae.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tfvae
    from tfvae.evaluation import DEFAULT_BATCH, log_likelihood, step_shape

    trained = tfvae.load(args.run_dir)
    x = trained.splits().test[:args.images]
    batch, chunk = step_shape(trained.config.network, args.batch_size or DEFAULT_BATCH, args.chunk, args.jit)
    log_likelihood(trained.model, x[:batch], k=min(args.k, 2 * chunk), batch_size=batch, chunk=chunk, jit=args.jit)
    t0 = time.perf_counter()
    ll = log_likelihood(trained.model, x, k=args.k, batch_size=batch, chunk=chunk, jit=args.jit)
    seconds = time.perf_counter() - t0
    rate = len(x) / seconds
    print(f"run {args.run_dir}: {trained.config.model}, {trained.config.network} "
          f"{','.join(map(str, trained.config.hidden))} {trained.config.activation}, latent {trained.config.latent_dim}")
    print(f"{len(x)} images, k = {args.k}, batch {batch}, chunk {chunk}, XLA {'on' if args.jit else 'off'}: "
          f"{seconds:.1f} s, {rate:.1f} images/s, {rate * args.k:,.0f} samples/s, mean log p(x) {ll.mean():.2f}")
    print(f"projected for 10,000 images at k = 5000: {10000 * 5000 / (rate * args.k) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
