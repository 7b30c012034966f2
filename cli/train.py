"""`tfvae fit` and `tfvae info`."""

from __future__ import annotations

import dataclasses
import json
import os

import click

from tfvae import config as C

from tfvae import models

D = C.make_config({})  # the defaults, shown in --help
FAMILY_OPTIONS = models.all_options()


def _default(name):
    if name in FAMILY_OPTIONS:
        return FAMILY_OPTIONS[name].default
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


def family_option(option):
    """The command-line option of a family's Option, its help prefixed by the families that take it."""
    decls = [C.option_name(option.name)] + ([option.flag] if option.flag else [])
    kind = click.Choice(option.choices) if option.choices else option.type
    return opt(*decls, type=kind, help=f"{'/'.join(models.families_with(option.name))}: {option.help}")


FIT_OPTIONS = [
    opt("--dataset", "-d", help="TFDS name (mnist, fashion_mnist, kmnist, emnist, cifar10, ...), "
        "tfds:NAME, idx:DIR, npz:FILE or folder:DIR; a plain path is recognised (an .npz, a folder "
        "of IDX files or of images)."),
    opt("--data-dir", help="Where TFDS keeps datasets (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).",
        show=False),
    opt("--model", "-m", type=click.Choice(models.names()),
        help=", ".join(f"{name} ({family.summary.split(':')[0]})" for name, family in models.families().items())
        + " (`tfvae models` lists them)."),
    opt("--network", type=click.Choice(C.NETWORKS), help="Dense layers or strided convolutions."),
    opt("--hidden", help="Hidden layer sizes, comma-separated (e.g. 200,200); '' for none."),
    opt("--activation", type=click.Choice(C.ACTIVATIONS), help="Hidden-layer activation."),
    opt("--latent-dim", "-z", type=int, help="Dimension of the code / latent space."),
    opt("--likelihood", type=click.Choice(C.LIKELIHOODS), help="p(x|z): Bernoulli (cross-entropy), "
        "Gaussian (squared error for AEs) or logistic (discretized to the 256 levels of 8-bit pixels)."),
    opt("--condition", type=click.Choice(C.CONDITIONS), help="label: a conditional model, q(z|x, y) and "
        "p(x|z, y), the one-hot label beside the input of both networks (then `tfvae sample --label`)."),
    opt("--binarize", type=click.Choice(C.BINARIZATIONS), help="none, static (once), or dynamic "
        "(resampled per batch) [default: dynamic for bernoulli, none for gaussian]", show=False),
    opt("--dequantize", type=click.Choice(C.DEQUANTIZATIONS), help="uniform: 8-bit pixels k become (k + u) / 256, "
        "u ~ U(0, 1), so that a Gaussian density on them is measured in bits per dimension as papers do; none: raw "
        "pixels [default: uniform for gaussian on 8-bit images]", show=False),
    opt("--validation-split", type=float, help="Fraction of the training images held out."),
    opt("--max-train-examples", type=int, help="Use at most N training images.", show=False),
    opt("--classes", help="Train only on images of these labels (comma-separated).", show=False),
    opt("--exclude-classes", help="Train on every label but these (e.g. to score one as an anomaly).",
        show=False),
    opt("--epochs", "-e", type=int, help="Epochs to train (with --resume: the new total)."),
    opt("--batch-size", "-b", type=int, help="Global batch size (split over the replicas)."),
    opt("--learning-rate", "--lr", type=float, help="Adam learning rate."),
    opt("--seed", type=int, help="Seed of everything: weights, data order, noise."),
    opt("--early-stopping", type=int, help="Stop after N epochs without a better validation loss (KL "
        "warm-up epochs not counted); model.keras then holds the best epoch's weights. 0: off."),
    opt("--lr-schedule", type=click.Choice(C.LR_SCHEDULES), help="constant, or iwae: Burda et al.'s 3^i epochs "
        "at lr * 10^(-i/7), i = 0..7."),
    opt("--adam-epsilon", type=float, help="Adam's epsilon."),
    opt("--strategy", type=click.Choice(C.STRATEGIES), help="auto: MirroredStrategy over several GPUs, "
        "else one device; multiworker: the cluster in TF_CONFIG."),
    opt("--jit", type=click.Choice(C.JIT_CHOICES), help="XLA for the training step (auto: on for mlp, for "
        "conv only on GPU, off where the family says XLA does not suit it)."),
    opt("--mixed-precision/--no-mixed-precision", name="mixed_precision",
        help="mixed_float16 on GPUs, mixed_bfloat16 on CPUs; distributions and losses stay float32.",
        show=False),
    opt("--checkpoint-every", type=int, help="Also checkpoint every N steps (for long epochs); 0: per epoch."),
    opt("--worker-timeout", type=float, help="multiworker: seconds to wait for a lost worker before stopping."),
    *[family_option(option) for option in FAMILY_OPTIONS.values()],
    opt("--steps-per-call", type=int, help="Training steps per tf.function call (0: automatic)."),
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
@click.option("--local-workers", type=click.IntRange(min=2), default=None,
              help="Run a multi-worker job of N processes on this machine (127.0.0.1), to try it out.")
def fit(recipe, out, resume, overwrite, quiet, local_workers, **options):
    """Train a model; checkpoints, metrics, images and the final model go to the run directory.

    \b
    Examples:
      tfvae fit --dataset mnist
      tfvae fit -d /usr/share/datasets/fashion-mnist -z 2 -e 20 -o runs/fm2
      tfvae fit -d npz:data.npz -m dae --noise masking --noise-level 0.3
      tfvae fit -o runs/fm2 --resume --epochs 40
      tfvae fit -d mnist --local-workers 2 -o runs/two-workers

    \b
    Exit status: 0 done; 75 stopped by Ctrl-C, SIGINT or SIGTERM after
    saving a checkpoint (continue with --resume); 1 failed; 2 bad options.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if resume and recipe:
        raise click.UsageError("--config starts a new run; --resume continues one with its saved config")
    from tfvae.api import fit as fit_api, run_config

    # Option errors, and a resume that contradicts its run, come before TensorFlow starts.
    run_config(given, recipe, out, resume, overwrite)
    if local_workers:
        from tfvae.cluster import run_local_workers

        if given.get("strategy", "multiworker") != "multiworker":
            raise click.UsageError("--local-workers runs --strategy multiworker; drop --strategy")
        if not out:
            raise click.UsageError("--local-workers needs --out: every worker must name the same run directory")
        given.pop("strategy", None)
        args = _as_arguments(given) + ["--out", out] + (["--config", recipe] if recipe else []) \
            + (["--resume"] if resume else []) + (["--overwrite"] if overwrite else []) + (["-q"] if quiet else [])
        for line in run_local_workers(local_workers, args)[1:]:
            click.echo(line, err=True)
        click.echo(out)
        return
    result = fit_api(out=out, resume=resume, overwrite=overwrite, recipe=recipe, progress=not quiet,
                     **given)
    click.echo(result.run_dir)


def _as_arguments(given: dict) -> list:
    """Options back into command-line arguments (for the worker processes)."""
    args = []
    for name, value in given.items():
        flag = C.option_name(name)
        if isinstance(value, bool):
            args.append(flag if value else flag.replace("--", "--no-", 1))
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]
    return args


@click.command("fit-prior")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="The new run directory: RUN_DIR's networks with the ex-post prior.")
@click.option("--kind", type=click.Choice(["gmm", "posteriors"]), default="gmm", show_default=True,
              help="gmm: Gaussians fitted by EM to posterior draws of every training image; posteriors: the "
                   "posteriors of --components random training images.")
@click.option("--components", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Gaussians in the mixture (split equally among the classes of a conditional model).")
@click.option("--draws", type=click.IntRange(min=1), default=4, show_default=True,
              help="gmm: samples z ~ q(z|x) of each training image that the mixture is fitted to.")
@click.option("--iterations", type=click.IntRange(min=1), default=100, show_default=True,
              help="gmm: EM iterations.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="The draws, the starting means, and which training images (posteriors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def fit_prior(run_dir, out, kind, components, draws, iterations, seed, overwrite, quiet):
    """Replace a trained run's prior by the ex-post prior, a mixture of Gaussians
    fitted to the aggregate posterior of its training images (p(z|y) per class
    for a conditional model), in a new run directory that every command takes.
    RUN_DIR is only read.

    \b
    Examples:
      tfvae fit-prior runs/fmnist-cvae-vamp -o runs/fmnist-cvae-expost
      tfvae evaluate runs/fmnist-cvae-expost
      tfvae sample runs/fmnist-cvae-expost --label Sandal -o sandals.png
    """
    from tfvae.expost import fit_prior as fit_prior_api

    click.echo(fit_prior_api(run_dir, out, components=components, kind=kind, draws=draws, iterations=iterations,
                             seed=seed, overwrite=overwrite, progress=not quiet))


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
    done = int(last["epoch"]) if last else 0  # the rows may start later (an earlier metrics.csv set aside)
    if as_json:
        click.echo(json.dumps({"run_dir": run.path, "config": config.to_dict(), **meta,
                               "epochs_done": done, "last_metrics": last}, indent=2))
        return
    click.echo(f"run        {run.path}")
    click.echo(f"images     {'x'.join(map(str, meta.get('image_shape', [])))}"
               + (f", classes: {', '.join(map(str, meta['class_names']))}" if meta.get("class_names") else ""))
    click.echo(f"trained    {done} of {config.epochs} epochs"
               + (", final model saved" if os.path.exists(run.model_path) else "") + _mid_epoch(run, rows))
    if meta.get("prior_of"):  # tfvae fit-prior: the training's metrics are the source run's, with its prior
        of = meta["prior_of"]
        what = (f"{of.get('images')} training images' posteriors" if of.get("kind") == "posteriors" else
                f"{of.get('components')} Gaussians, EM on {of.get('draws')} posterior draws per training image")
        click.echo(f"prior      ex post, fitted after training to {of.get('run')}: {what} (that run was trained "
                   f"with --prior {of.get('prior')}; the metrics below are its training's)")
    click.echo("config")
    click.echo(f"  {'model':<20} {config.model}")
    flat = config.to_dict()
    sections = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in C.SECTIONS.items()}
    unused = config.family.unused_options(config)
    sections[f"{config.model} options"] = [k for k in config.options if k not in unused]
    for section, keys in sections.items():
        click.echo(f"  {section}")
        for key in keys:
            if key in C.SAVED_ONLY_IF_SET and flat[key] == C.SAVED_ONLY_IF_SET[key]:
                continue  # an unconditioned run: no condition to show
            value = flat[key]
            if isinstance(value, list):
                value = ",".join(map(str, value))
            if key == "binarize" and value is None:  # the default, resolved
                value = f"{config.binarization} (the default for a {config.likelihood} likelihood)"
            click.echo(f"    {key:<18} {value}")
    if last:
        click.echo(f"last epoch ({int(last['epoch'])})")
        for key, value in last.items():
            if key == "epoch":
                continue
            click.echo(f"  {key:<20} {value:.6g}" if isinstance(value, float) else f"  {key:<20} {value}")


def _mid_epoch(run, rows) -> str:
    """', and N steps into epoch E (checkpointed: --resume continues there)' when the newest
    checkpoint is past the last finished epoch (a run stopped by Ctrl-C or a signal)."""
    steps = run.checkpoint_steps()
    done = int(rows[-1]["step"]) if rows else 0
    if not steps or max(steps) <= done:
        return ""
    return (f", and {max(steps) - done} steps into epoch {int(rows[-1]['epoch']) + 1 if rows else 1} (checkpointed at step "
            f"{max(steps)}: --resume continues there)")


@click.command()
@click.argument("name", required=False)
def recipes(name):
    """List the shipped recipes, or print one (its JSON).

    \b
    Examples:
      tfvae recipes
      tfvae recipes fmnist-vae
      tfvae fit --config fmnist-vae -d /usr/share/datasets/fashion-mnist
    """
    from tfvae.recipes import available, load_recipe, recipe_path

    if name:
        with open(recipe_path(name), encoding="utf-8") as f:
            click.echo(f.read().rstrip())
        return
    shipped = available()
    width = max(map(len, shipped)) if shipped else 0
    families = {recipe: models.get(load_recipe(recipe).get("model", models.DEFAULT)).name for recipe in shipped}
    family_width = max(map(len, families.values())) if families else 0
    for recipe, description in shipped.items():
        click.echo(f"{recipe:<{width}}  {families[recipe]:<{family_width}}  {description}")


@click.command("models")
@click.argument("name", required=False)
@click.option("--markdown", is_flag=True, help="Print the table of families and options in Markdown.")
def models_command(name, markdown):
    """List the model families (--model), or show one family's options and defaults.

    \b
    Examples:
      tfvae models
      tfvae models vae
    """
    from tfvae.models.docs import family_table, describe

    if name:
        from tfvae.recipes import available, load_recipe

        click.echo(describe(models.get(name)))
        own = [r for r in available() if load_recipe(r).get("model", models.DEFAULT) == name]
        click.echo(f"  recipes: {', '.join(own) if own else '(none)'}")
    elif markdown:
        click.echo(family_table(), nl=False)
    else:
        families = models.families()
        width = max(map(len, families))
        for family_name, family in families.items():
            click.echo(f"{family_name:<{width}}  {family.summary}")


COMMANDS = [fit, fit_prior, info, recipes, models_command]
