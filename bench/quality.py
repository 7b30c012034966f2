"""Train a shipped recipe and evaluate it the way papers do; print a README table row.

    python bench/quality.py fmnist-vae --dataset idx:/usr/share/datasets/fashion-mnist
    python bench/quality.py fmnist-vae --run runs/fmnist-vae          # evaluate an existing run only
    python bench/quality.py fmnist-vae --dataset idx:DIR --learning-rate 1e-3 --kl-warmup 50

Options this script does not know are passed to `tfvae fit` as they are (the last line changes
two of the recipe's settings). With early stopping (`fmnist-vae-paper`), the epochs column
names the epoch whose weights were kept.

Protocol: the recipe's dynamic binarization; `tfvae evaluate -k 5000` on the full test set (binarized
once with tfvae's fixed seed); the negative log-likelihood in nats per image, beside the published
number the recipe names. Training time is the sum of the epochs' training seconds (metrics.csv)
and the wall-clock time of the whole `tfvae fit`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PUBLISHED = {
    "fmnist-vae": ("Exemplar VAE paper, MLP VAE with a Gaussian prior", 228.70),
    "fmnist-vae-paper": ("Exemplar VAE paper, MLP VAE with a Gaussian prior", 228.70),
    "fmnist-iwae": ("Exemplar VAE paper, conv hierarchical VAE (for reference)", 225.38),
    "fmnist-conv-vae": ("Exemplar VAE paper, conv hierarchical VAE", 225.38),
    "fmnist-vamp": ("Exemplar VAE paper, MLP VAE with the VampPrior", 227.35),
    "fmnist-hvae-vamp": ("Exemplar VAE paper, two-level HVAE with the VampPrior", 226.72),
    "fmnist-convhvae": ("Exemplar VAE paper, ConvHVAE with a Gaussian prior", 225.38),
    "fmnist-convhvae-vamp": ("Exemplar VAE paper, ConvHVAE with the VampPrior", 224.67),
    "mnist-vae-iwae-paper": ("Burda et al. 2016, VAE k=1", 86.76),
    "mnist-iwae-paper": ("Burda et al. 2016, IWAE k=50", 84.78),
}


def tfvae(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tfvae", *map(str, args)], env=env, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe")
    p.add_argument("--dataset", default=None, help="override the recipe's dataset (e.g. idx:DIR offline)")
    p.add_argument("--run", default=None, help="an existing run directory: evaluate only")
    p.add_argument("--out", default=None, help="where to train [default: a temporary folder]")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("-k", type=int, default=5000)
    p.add_argument("--test-images", type=int, default=None,
                   help="evaluate the first N test images only (not the published protocol: a quick look)")
    args, fit_options = p.parse_known_args()
    if fit_options and args.run:
        p.error(f"{' '.join(fit_options)}: training options, but --run evaluates an existing run; drop one or the other")

    from tfvae.recipes import available
    from tfvae.rundir import RunDir

    if args.recipe not in available():
        p.error(f"unknown recipe {args.recipe!r} (recipes: {', '.join(sorted(available()))}); "
                "options for tfvae fit go after the recipe's name")

    run_dir = args.run
    fit_wall = None
    if run_dir is None:
        run_dir = args.out or os.path.join(tempfile.mkdtemp(prefix="tfvae-quality-"), args.recipe)
        extra = (["--dataset", args.dataset] if args.dataset else []) + (["--epochs", args.epochs] if args.epochs else [])
        t0 = time.perf_counter()
        tfvae("fit", "--config", args.recipe, "--out", run_dir, *extra, *fit_options)
        fit_wall = time.perf_counter() - t0
    run = RunDir(run_dir)
    rows = run.read_metrics()
    train_seconds = sum(r["seconds"] for r in rows)
    epochs = str(len(rows))
    if run.read()[0].early_stopping and os.path.exists(run.best_info_path):
        with open(run.best_info_path) as f:
            epochs += f" (best {json.load(f)['epoch']})"
    part = ["--max-test-examples", args.test_images] if args.test_images else []
    report_path = os.path.join(run_dir, f"evaluate-k{args.k}" + (f"-n{args.test_images}" if part else "") + ".json")
    t0 = time.perf_counter()
    tfvae("evaluate", run_dir, "-k", args.k, "--json", report_path, "-q", *part)
    eval_wall = time.perf_counter() - t0
    with open(report_path) as f:
        report = json.load(f)
    m, proto = report["metrics"], report["protocol"]
    source, published = PUBLISHED.get(args.recipe, ("", None))
    print()
    print("| recipe | test NLL (nats) | test ELBO | active units | epochs | training time | evaluation time | published |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    se = m.get("log_likelihood_stderr")
    layers = sorted(k[len("active_units_"):] for k in m if k.startswith("active_units_"))
    active = (", ".join(f"{name} {m['active_units_' + name]}/{m['latent_dim']}" for name in layers) if layers
              else f"{m['active_units']}/{m['latent_dim']}")
    print(f"| `{args.recipe}` | **{m['nll']:.2f}**" + (f" (± {se:.2f})" if se is not None else "")
          + f" | {m['elbo']:.2f} | {active} | {epochs} | {train_seconds / 60:.1f} min"
          + (f" ({fit_wall / 60:.1f} min wall)" if fit_wall else "")
          + f" | {eval_wall / 60:.1f} min | " + (f"{published:.2f} ({source})" if published else "") + " |")
    print(f"protocol: {proto['test_images']} test images, {proto['binarization']} binarization (test set binarized "
          f"once, seed {proto['test_binarized_once_with_seed']}), k = {proto['k']} importance samples, seed {proto['seed']}")


if __name__ == "__main__":
    main()
