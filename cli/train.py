"""`tfvae fit` and `tfvae info`."""

from __future__ import annotations

import json
import os

import click

from tfvae import config as C

D = C.Config()  # the defaults, shown in --help


def _default(name):
    value = getattr(D, name)
    if name == "hidden":
        return ",".join(map(str, value))
    return value


def opt(*decls, name=None, help="", **kwargs):
    """A fit option whose default is None, so only options the user gave override the recipe."""
    field = name or decls[0].lstrip("-").split("/")[0].replace("-", "_")
    if field in C.field_names() and "show" not in kwargs:
        shown = _default(field)
        if shown is not None:
            help = f"{help} [default: {shown}]"
    kwargs.pop("show", None)
    return click.option(*decls, field, default=None, help=help, **kwargs)


POSITIVE = click.IntRange(min=1)

FIT_OPTIONS = [
    opt("--dataset", "-d", help="TFDS name (mnist, fashion_mnist, kmnist, emnist, cifar10, ...), "
        "tfds:NAME, idx:DIR, npz:FILE or folder:DIR."),
    opt("--data-dir", help="Where TFDS keeps datasets (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).",
        show=False),
    opt("--model", "-m", type=click.Choice(C.MODELS), help="ae, sae (L1 code), dae (denoising), "
        "cae (contractive), vae, iwae."),
    opt("--network", type=click.Choice(C.NETWORKS), help="Dense layers or strided convolutions."),
    opt("--hidden", help="Hidden layer sizes, comma-separated (e.g. 200,200); '' for none."),
    opt("--activation", type=click.Choice(C.ACTIVATIONS), help="Hidden-layer activation."),
    opt("--latent-dim", "-z", type=int, help="Dimension of the code / latent space."),
    opt("--likelihood", type=click.Choice(C.LIKELIHOODS), help="p(x|z): Bernoulli (cross-entropy) or "
        "Gaussian (squared error for AEs)."),
    opt("--gaussian-variance", type=click.Choice(C.GAUSSIAN_VARIANCES), help="VAE Gaussian p(x|z): a "
        "learned scale per pixel, one per image, or fixed."),
    opt("--gaussian-scale", type=float, help="The fixed Gaussian standard deviation."),
    opt("--min-scale", type=float, help="Floor of every learned standard deviation."),
    opt("--binarize", type=click.Choice(C.BINARIZATIONS), help="none, static (once), or dynamic "
        "(resampled per batch) [default: dynamic for bernoulli, none for gaussian]", show=False),
    opt("--validation-split", type=float, help="Fraction of the training images held out."),
    opt("--max-train-examples", type=int, help="Use at most N training images.", show=False),
    opt("--classes", help="Train only on images of these labels (comma-separated).", show=False),
    opt("--exclude-classes", help="Train on every label but these (e.g. to score one as an anomaly).",
        show=False),
    opt("--epochs", "-e", type=int, help="Epochs to train (with --resume: the new total)."),
    opt("--batch-size", "-b", type=int, help="Global batch size (split over the replicas)."),
    opt("--learning-rate", "--lr", type=float, help="Adam learning rate."),
    opt("--seed", type=int, help="Seed of everything: weights, data order, noise."),
    opt("--strategy", type=click.Choice(C.STRATEGIES), help="auto: MirroredStrategy over several GPUs, "
        "else one device."),
    opt("--jit", type=click.Choice(C.JIT_CHOICES), help="XLA for the training step (auto: on for mlp; "
        "for conv only on GPU)."),
    opt("--l1", type=float, help="sae: lambda of lambda * ||h||_1."),
    opt("--noise", type=click.Choice(C.NOISES), help="dae: masking (inputs zeroed) or additive gaussian."),
    opt("--noise-level", type=float, help="dae: masking probability nu, or Gaussian sigma."),
    opt("--contractive", type=float, help="cae: lambda of lambda * ||dh/dx||_F^2."),
    opt("--code-activation", type=click.Choice(C.CODE_ACTIVATIONS), help="Autoencoders: activation of "
        "the code h."),
    opt("--beta", type=float, help="vae/iwae: weight of the KL term (beta-VAE)."),
    opt("--kl-warmup", type=int, help="vae: epochs over which the KL weight ramps from 0 to beta."),
    opt("--free-bits", type=float, help="vae: nats per latent dimension below which KL is not penalised."),
    opt("--mc-samples", "-L", type=int, help="vae: Monte Carlo samples of z per example."),
    opt("--iw-samples", "-k", type=int, help="iwae: importance samples k per example."),
    opt("--steps-per-call", type=int, help="Training steps per tf.function call (0: automatic).",
        show=False),
    opt("--image-every", type=int, help="Write the PNG grid every N epochs."),
]


def fit_options(f):
    for option in reversed(FIT_OPTIONS):
        f = option(f)
    return f


@click.command()
@fit_options
@click.option("--config", "-c", "recipe", default=None,
              help="A recipe: a shipped name (see `tfvae recipes`) or a JSON file; options given on the "
                   "command line override it.")
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False),
              help="Run directory [default: runs/<dataset>-<model>-<time>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def fit(recipe, out, resume, overwrite, quiet, **options):
    """Train a model; checkpoints, metrics, images and the final model go to the run directory.

    \b
    Examples:
      tfvae fit --dataset mnist
      tfvae fit -d idx:/usr/share/datasets/fashion-mnist -m vae -z 2 -e 20 -o runs/fmnist-z2
      tfvae fit -d npz:data.npz -m dae --noise masking --noise-level 0.3
      tfvae fit -o runs/fmnist-z2 --resume --epochs 40
    """
    given = {k: v for k, v in options.items() if v is not None}
    if resume and recipe:
        raise click.UsageError("--config starts a new run; --resume continues one with its saved config")
    from tfvae.runtime import import_tensorflow_quietly
    from tfvae.api import fit as fit_api, resolve_config

    if not resume:
        resolve_config(given, recipe)  # option errors come before TensorFlow starts
    import_tensorflow_quietly()
    result = fit_api(out=out, resume=resume, overwrite=overwrite, recipe=recipe, progress=not quiet,
                     **given)
    click.echo(result.run_dir)


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print config and last metrics as JSON.")
def info(run_dir, as_json):
    """Print a run's config and its last metrics.

    \b
    Example:
      tfvae info runs/fmnist-z2
    """
    from tfvae.rundir import RunDir

    run = RunDir(run_dir)
    config, meta = run.read()
    rows = run.read_metrics()
    last = rows[-1] if rows else None
    if as_json:
        click.echo(json.dumps({"run_dir": run.path, "config": config.to_dict(), **meta,
                               "epochs_done": len(rows), "last_metrics": last}, indent=2))
        return
    click.echo(f"run        {run.path}")
    click.echo(f"images     {'x'.join(map(str, meta.get('image_shape', [])))}"
               + (f", classes: {', '.join(map(str, meta['class_names']))}" if meta.get("class_names") else ""))
    click.echo(f"trained    {len(rows)} of {config.epochs} epochs"
               + (", final model saved" if os.path.exists(run.model_path) else ""))
    click.echo("config")
    for key, value in config.to_dict().items():
        if isinstance(value, list):
            value = ",".join(map(str, value))
        click.echo(f"  {key:<20} {value}")
    if last:
        click.echo(f"last epoch ({int(last['epoch'])})")
        for key, value in last.items():
            if key == "epoch":
                continue
            click.echo(f"  {key:<20} {value:.6g}" if isinstance(value, float) else f"  {key:<20} {value}")


COMMANDS = [fit, info]
