"""Picture commands: sample, reconstruct, manifold, latents, interpolate, curves (PNG files)."""

from __future__ import annotations

import click

from tfvae.cli.common import RUN_DIR, load_run, output_path


def _out(default):
    return click.option("--out", "-o", default=default, show_default=True, type=click.Path(dir_okay=False),
                        help="The PNG file to write.")


def _done(path, shape, what):
    click.echo(f"wrote {path} ({what}, {shape[1]}x{shape[0]} pixels)")


LABEL = click.option("--label", "-y", default=None,
                     help="A conditional run's class: a label or a class name (e.g. 3 or Sandal).")


def _label(trained, label):
    """--label as an int (a class name read through the run's class names); None if not given.
    Given to a run without --condition label: one line that says so."""
    if label is None:
        return None
    from tfvae.errors import ConfigError

    if not trained.conditional:
        raise ConfigError(f"--label picks a class of a conditional run; {trained.run_dir} was trained without "
                          "--condition label")
    y = trained.label_of(label)
    trained.labels(y, 1)  # a class the model was trained on
    return y


def _test_images(trained, limit=None):
    """The first `limit` test images (as the source holds them, not binarized) and their labels,
    from the run's splits (loaded once)."""
    splits = trained.splits(class_filter=False)
    labels = splits.test_labels[:limit] if splits.test_labels is not None else None
    return splits.test_originals[:limit], labels, splits.class_names


@click.command()
@RUN_DIR
@click.option("-n", "n", type=click.IntRange(1, 10000), default=64, show_default=True, help="Number of samples.")
@_out("samples.png")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the draws (the same seed gives the same images).")
@click.option("--sampled-pixels", "--binary", "sampled", is_flag=True,
              help="Pixels drawn from p(x|z) (0 or 1 for a Bernoulli likelihood) instead of the "
                   "pixel means E[x|z].")
@click.option("--mean", is_flag=True, hidden=True)  # pixel means are the default; the old flag is still accepted
@LABEL
def sample(run_dir, n, out, seed, sampled, mean, label):
    """Images decoded from z ~ p(z), the prior (variational runs).

    \b
    Shows the pixel means E[x|z], as the epoch images and model.sample do;
    --sampled-pixels draws each pixel from p(x|z) instead. A conditional
    run (--condition label) draws -n samples of --label, or without it a
    grid of every class, a row of 10 per class.
    Examples:
      tfvae sample runs/fmnist -n 64 --seed 1 -o samples.png
      tfvae sample runs/fmnist-cvae --label Sandal -n 16 -o sandals.png
    """
    from tfvae import pictures

    output_path(out, ".png")
    trained = load_run(run_dir)
    y = _label(trained, label)
    pixels = "pixels drawn from p(x|z)" if sampled else "pixel means"
    if trained.conditional and y is None:
        per_class = 10
        shape = pictures.class_grid(trained, out, per_class=per_class, seed=seed, mean=not sampled)
        _done(out, shape, f"a row of {per_class} samples for each of {len(trained.classes)} classes, {pixels}")
        return
    what = f"{n} prior samples" + (f" of class {y} ({trained.class_name(y)})" if y is not None else "")
    _done(out, pictures.sample(trained, out, n=n, seed=seed, mean=not sampled, label=y), f"{what}, {pixels}")


@click.command()
@RUN_DIR
@click.option("-n", "n", type=click.IntRange(1, 1000), default=16, show_default=True, help="Test images shown.")
@_out("reconstructions.png")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the corruption shown for a denoising AE.")
def reconstruct(run_dir, n, out, seed):
    """Test images (top row) above their reconstructions; for a dae, the corrupted inputs between.

    \b
    Example:
      tfvae reconstruct runs/fmnist -n 16 -o recon.png
    """
    from tfvae import pictures

    output_path(out, ".png")
    trained = load_run(run_dir)
    x, labels, _ = _test_images(trained, n)
    given = labels if trained.conditional else None
    _done(out, pictures.reconstruct(trained, x, out, seed=seed, labels=given),
          f"{len(x)} reconstructions" + (", each given its image's label" if given is not None else ""))


@click.command()
@RUN_DIR
@_out("manifold.png")
@click.option("--grid", type=click.IntRange(2, 100), default=20, show_default=True, help="Images per side.")
@click.option("--no-axes", is_flag=True, help="The bare grid of images, without the z values on axes.")
@LABEL
def manifold(run_dir, out, grid, no_axes, label):
    """The learned manifold: decoded images on a grid of Normal quantiles of a 2-d latent space.

    \b
    For more dimensions, a 2-d slice through the two most active
    dimensions (the others at 0, or at a learned prior's medians). A
    conditional run's for one --label
    (the first class it was trained on if none is given).
    Example:
      tfvae manifold runs/fmnist-z2 --grid 20 -o manifold.png
    """
    from tfvae import pictures

    output_path(out, ".png")
    trained = load_run(run_dir)
    y = _label(trained, label)
    note = ""
    if trained.conditional and y is None:
        y = trained.classes[0]
        note = f" (no --label: class {y}, {trained.class_name(y)}; --label picks another)"
    x, labels = None, None
    if trained.config.latent_dim > 2 and trained.model.variational:
        x, labels, _ = _test_images(trained, 2000)
        if trained.conditional:
            keep = [i for i, v in enumerate(labels) if int(v) in trained.classes]
            x, labels = x[keep], labels[keep].astype("int32")
        else:
            labels = None
    h, w, dims = pictures.manifold(trained, out, grid=grid, x_for_activity=x, axes=not no_axes, label=y,
                                   labels_for_activity=labels)
    _done(out, (h, w), f"{grid}x{grid} grid over latent dimensions {dims[0]} and {dims[1]}"
          + (f", label {y}" if y is not None else "") + note)


@click.command()
@RUN_DIR
@_out("latents.png")
@click.option("--max-test-examples", type=click.IntRange(min=2), default=5000, show_default=True,
              help="How many test images to place (the first ones).")
def latents(run_dir, out, max_test_examples):
    """Test-set posterior means (codes for AEs) coloured by label; PCA beyond 2 dimensions.

    \b
    A conditional run's are the means of q(z|x, y), each image given its
    own label.
    Example:
      tfvae latents runs/fmnist-z2 -o latents.png
    """
    from tfvae import pictures

    output_path(out, ".png")
    trained = load_run(run_dir)
    x, labels, class_names = _test_images(trained, max_test_examples)
    shape = pictures.latents(trained, x, labels, out, class_names=class_names)
    _done(out, shape, f"{len(x)} test images")


@click.command()
@RUN_DIR
@click.option("--from", "start", type=click.IntRange(min=0), required=True, help="Index of the first test image.")
@click.option("--to", "end", type=click.IntRange(min=0), required=True, help="Index of the last test image.")
@click.option("--steps", type=click.IntRange(2, 100), default=10, show_default=True,
              help="Images per row, the two ends included.")
@_out("interpolation.png")
@LABEL
def interpolate(run_dir, start, end, steps, out, label):
    """Decoded images along the line between the codes of two test images.

    \b
    Top row: the two images blended pixel by pixel; bottom row: decoded
    along the line between their codes. A conditional run encodes each
    image with its label and decodes with the first image's label unless
    --label gives one.
    Example:
      tfvae interpolate runs/fmnist --from 0 --to 1 --steps 10 -o interp.png
    """
    from tfvae import pictures
    from tfvae.errors import TfvaeError

    output_path(out, ".png")
    trained = load_run(run_dir)
    y = _label(trained, label)
    x, labels, _ = _test_images(trained)
    for name, i in (("--from", start), ("--to", end)):
        if i >= len(x):
            raise TfvaeError(f"{name} {i} is out of range: the test set has {len(x)} images (0..{len(x) - 1})")
    pair, note = None, ""
    if trained.conditional:
        pair = [int(labels[start]), int(labels[end])]
        trained.labels(pair, 2)  # both of classes the model was trained on
        if y is None:
            y = pair[0]
            note = f"; decoded with the first image's label {y} ({trained.class_name(y)}), --label to change it"
        else:
            note = f"; decoded with label {y} ({trained.class_name(y)})"
    _done(out, pictures.interpolate(trained, x[start], x[end], out, steps=steps, labels=pair, label=y),
          f"{steps} steps; top: pixels blended, bottom: decoded between the codes{note}")


@click.command()
@RUN_DIR
@click.option("-n", "n", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Test images (rows), the first ones of the classes the model was trained on.")
@_out("analogies.png")
def analogies(run_dir, n, out):
    """A conditional run's analogies: style kept, class changed.

    \b
    The first column holds test images; each row then decodes that
    image's z (the mean of q(z|x, y), y its own label) with every label.
    Example:
      tfvae analogies runs/fmnist-cvae -n 8 -o analogies.png
    """
    import numpy as np

    from tfvae import pictures
    from tfvae.errors import ConfigError

    output_path(out, ".png")
    trained = load_run(run_dir)
    if not trained.conditional:
        raise ConfigError(f"analogies decode one z with every label, which needs a conditional run (tfvae fit "
                          f"--condition label); {trained.run_dir} was trained without it")
    x, labels, _ = _test_images(trained)
    keep = np.flatnonzero(np.isin(labels, trained.classes))[:n]
    shape = pictures.analogies(trained, x[keep], labels[keep].astype(np.int32), out)
    _done(out, shape, f"{len(keep)} test images, each decoded with {len(trained.classes)} labels")


@click.command()
@RUN_DIR
@_out("curves.png")
def curves(run_dir, out):
    """Loss, reconstruction, KL and ELBO per epoch (train and validation), from metrics.csv.

    \b
    Example:
      tfvae curves runs/fmnist -o curves.png
    """
    from tfvae import pictures
    from tfvae.rundir import RunDir

    from tfvae.runtime import import_tensorflow_quietly

    output_path(out, ".png")
    run = RunDir(run_dir)
    config, _ = run.read()
    rows = run.read_metrics()
    import_tensorflow_quietly()
    shape = pictures.curves(rows, out, title=f"{config.model} on {config.dataset}")
    _done(out, shape, f"{len(rows)} epoch{'' if len(rows) == 1 else 's'}")


COMMANDS = [sample, reconstruct, manifold, latents, interpolate, analogies, curves]
