"""Picture commands: sample, reconstruct, manifold, latents, interpolate, curves (PNG files)."""

from __future__ import annotations

import click

from tfvae.cli.common import RUN_DIR, load_run, output_path


def _out(default):
    return click.option("--out", "-o", default=default, show_default=True, type=click.Path(dir_okay=False),
                        help="The PNG file to write.")


def _done(path, shape, what):
    click.echo(f"wrote {path} ({what}, {shape[1]}x{shape[0]} pixels)")


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
def sample(run_dir, n, out, seed, sampled, mean):
    """Images decoded from z ~ p(z), the prior (variational runs).

    \b
    Shows the pixel means E[x|z], as the epoch images and model.sample do;
    --sampled-pixels draws each pixel from p(x|z) instead.
    Example:
      tfvae sample runs/fmnist -n 64 --seed 1 -o samples.png
    """
    from tfvae import pictures

    output_path(out, ".png")
    trained = load_run(run_dir)
    what = f"{n} prior samples, {'pixels drawn from p(x|z)' if sampled else 'pixel means'}"
    _done(out, pictures.sample(trained, out, n=n, seed=seed, mean=not sampled), what)


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
    x = _test_images(trained, n)[0]
    _done(out, pictures.reconstruct(trained, x, out, seed=seed), f"{len(x)} reconstructions")


@click.command()
@RUN_DIR
@_out("manifold.png")
@click.option("--grid", type=click.IntRange(2, 100), default=20, show_default=True, help="Images per side.")
@click.option("--no-axes", is_flag=True, help="The bare grid of images, without the z values on axes.")
def manifold(run_dir, out, grid, no_axes):
    """The learned manifold: decoded images on a grid of Normal quantiles of a 2-d latent space.

    \b
    For more dimensions, a 2-d slice through the two most active
    dimensions (the others at 0).
    Example:
      tfvae manifold runs/fmnist-z2 --grid 20 -o manifold.png
    """
    from tfvae import pictures

    output_path(out, ".png")
    trained = load_run(run_dir)
    x = _test_images(trained, 2000)[0] if trained.config.latent_dim > 2 and trained.model.variational else None
    h, w, dims = pictures.manifold(trained, out, grid=grid, x_for_activity=x, axes=not no_axes)
    _done(out, (h, w), f"{grid}x{grid} grid over latent dimensions {dims[0]} and {dims[1]}")


@click.command()
@RUN_DIR
@_out("latents.png")
@click.option("--max-test-examples", type=click.IntRange(min=2), default=5000, show_default=True,
              help="How many test images to place (the first ones).")
def latents(run_dir, out, max_test_examples):
    """Test-set posterior means (codes for AEs) coloured by label; PCA beyond 2 dimensions.

    \b
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
def interpolate(run_dir, start, end, steps, out):
    """Decoded images along the line between the codes of two test images.

    \b
    Top row: the two images blended pixel by pixel; bottom row: decoded
    along the line between their codes.
    Example:
      tfvae interpolate runs/fmnist --from 0 --to 1 --steps 10 -o interp.png
    """
    from tfvae import pictures
    from tfvae.errors import TfvaeError

    output_path(out, ".png")
    trained = load_run(run_dir)
    x = _test_images(trained)[0]
    for name, i in (("--from", start), ("--to", end)):
        if i >= len(x):
            raise TfvaeError(f"{name} {i} is out of range: the test set has {len(x)} images (0..{len(x) - 1})")
    _done(out, pictures.interpolate(trained, x[start], x[end], out, steps=steps),
          f"{steps} steps; top: pixels blended, bottom: decoded between the codes")


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


COMMANDS = [sample, reconstruct, manifold, latents, interpolate, curves]
