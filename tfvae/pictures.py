"""Pictures of a trained run: samples, reconstructions, the latent manifold, latent maps,
interpolations (PNG grids through tf.io.encode_png) and training curves (matplotlib).

Each function takes a `TrainedModel` (and data where needed), writes one PNG atomically and
returns its (height, width) in pixels.
"""

from __future__ import annotations

import io
import math
from typing import Optional

import numpy as np

from tfvae import images as img
from tfvae.errors import TfvaeError


def _write(path: str, image: np.ndarray):
    img.write_png(path, image)
    return image.shape[:2]


def _need_prior(trained, what: str):
    if not trained.model.variational:
        from tfvae import models

        names = models.variational_names()
        raise TfvaeError(
            f"{what} needs a {', '.join(names[:-1]) + ' or ' + names[-1] if len(names) > 1 else names[0]} run (it "
            "decodes points of the prior); "
            f"{trained.run_dir} is a --model {trained.config.model} run"
        )


def sample(trained, path: str, n: int = 64, seed: int = 0, mean: bool = True, columns: Optional[int] = None,
           label=None):
    """n images from the prior: pixel means E[x|z] (what the epoch images and `model.sample`
    show), or pixels drawn from p(x|z) with mean=False (binary for a Bernoulli likelihood); a
    conditional model's for `label`."""
    _need_prior(trained, "sample")
    return _write(path, img.grid(trained.sample(n, seed=seed, mean=mean, label=label), columns=columns))


def class_grid(trained, path: str, per_class: int = 10, seed: int = 0, mean: bool = True):
    """A conditional model's samples, a row of `per_class` per class it was trained on, each row
    named by its class (TFDS's or the folders' names where the source has them)."""
    _need_prior(trained, "sample")
    classes = trained.classes
    labels = np.repeat(np.asarray(classes, np.int32), per_class)
    images = trained.sample(len(labels), seed=seed, mean=mean, label=labels)
    return _labelled_grid(path, images, len(classes), per_class,
                          [f"{c}: {trained.class_name(c)}" if trained.class_names else str(c) for c in classes],
                          None, f"samples of each class ({'pixel means' if mean else 'pixels drawn from p(x|z, y)'})")


def analogies(trained, x: np.ndarray, labels: np.ndarray, path: str):
    """Style kept, class changed: each test image (first column) encoded with its own label, its
    z (the posterior mean of q(z|x, y)) then decoded with every label the model was trained on."""
    from tfvae.data import as_float

    x = as_float(x)
    z = trained.encode(x, label=labels)
    classes = trained.classes
    rows = []
    for i in range(len(x)):
        decoded = trained.decode(np.repeat(z[i:i + 1], len(classes), axis=0), label=np.asarray(classes, np.int32))
        rows.append(np.concatenate([x[i:i + 1], decoded]))
    images = np.concatenate(rows)
    names = [trained.class_name(c) for c in classes]
    return _labelled_grid(path, images, len(x), len(classes) + 1,
                          [trained.class_name(int(y)) for y in labels], ["test image", *names],
                          "analogies: the z of each test image decoded with every label")


def _labelled_grid(path, images, rows: int, columns: int, row_names, column_names, title: str):
    """The images in a grid (rows x columns), with row and column names beside it (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    tiles = img.grid(images, columns=columns, pad=2, background=255)
    h, w = tiles.shape[:2]
    scale = max(1.0, 420 / w)  # small tiles are drawn larger, so that the names fit beside them
    fig, ax = plt.subplots(figsize=(w * scale / 100 + 2.2, h * scale / 100 + 1.2))
    shown = tiles[..., 0] if tiles.shape[-1] == 1 else tiles
    ax.imshow(shown, cmap="gray", vmin=0, vmax=255, interpolation="nearest", extent=(0, columns, rows, 0))
    ax.set_yticks(np.arange(rows) + 0.5, row_names, fontsize=9)
    if column_names:
        ax.set_xticks(np.arange(columns) + 0.5, column_names, rotation=45, ha="left", fontsize=9)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10, pad=(60 if column_names else 6))
    return _write(path, _figure_png(fig, dpi=100))


def reconstruct(trained, x: np.ndarray, path: str, seed: int = 0, labels=None):
    """Originals above their reconstructions (the family's rows: a denoising AE shows the
    corrupted inputs in between); a conditional model's given the images' `labels`."""
    from tfvae.data import as_float

    x = as_float(x)
    y = trained.labels(labels, len(x))
    model = trained.model if y is None else trained.model.given(y)
    return _write(path, img.rows_grid(model.reconstruction_rows(x, seed=seed)))


def manifold_codes(prior, dims, grid: int):
    """(z (grid * grid, d), ticks (grid, 2)): the manifold's codes, row by row from the top, at the
    prior's marginal quantiles of evenly spaced probabilities in (0, 1) along `dims`; the other
    dimensions at 0 for N(0, I), at the prior's marginal medians for a learned prior (whose codes
    may lie away from 0: a class's, for a per-class prior bound to its label)."""
    from tfvae.probability.priors import StandardNormal

    d = prior.latent_dim
    probs = np.linspace(0.5 / grid, 1 - 0.5 / grid, grid)
    ticks = prior.marginal_quantiles(probs, dims)
    z = np.zeros((grid * grid, d), np.float32)
    if not isinstance(prior, StandardNormal) and d > 2:
        z[:] = prior.marginal_quantiles([0.5], tuple(range(d)))[0]
    for r, y in enumerate(ticks[::-1, 1]):  # the second dimension grows upwards
        for c, xv in enumerate(ticks[:, 0]):
            z[r * grid + c, dims[0]] = xv
            z[r * grid + c, dims[1]] = y
    return z, ticks


def manifold(trained, path: str, grid: int = 20, x_for_activity: Optional[np.ndarray] = None,
             axes: bool = True, label=None, labels_for_activity=None):
    """Decoded images at the prior's inverse-CDF points of a 2-d latent space (Kingma & Welling's
    figure; Normal quantiles for the N(0, I) prior), with the z values on the axes (axes=False:
    the bare grid). With more dimensions: a 2-d slice through the two most active dimensions, the
    others at 0 (N(0, I)) or at the prior's marginal medians (a learned prior, whose codes may lie
    away from 0). A conditional model's for one `label` (decoded with it, at its prior's
    quantiles). Returns (height, width, (dim_a, dim_b))."""
    _need_prior(trained, "manifold")
    given = trained.labels(label, 1)
    model = trained.model if given is None else trained.model.given(given)
    d = trained.config.latent_dim
    if d < 2:
        raise TfvaeError(f"manifold needs at least 2 latent dimensions; this run has --latent-dim {d}")
    if d == 2:
        dims = (0, 1)
    else:
        if x_for_activity is None:
            raise TfvaeError("manifold of a space of more than 2 dimensions needs images to rank the dimensions")
        from tfvae.evaluation import active_units

        _, variance = active_units(trained.model, x_for_activity, labels=labels_for_activity)
        dims = tuple(int(i) for i in np.argsort(-variance)[:2])
    z, ticks = manifold_codes(model.prior, dims, grid)
    from tfvae.probability.priors import StandardNormal

    standard = isinstance(model.prior, StandardNormal)
    pictures = trained.decode(z, label=None if given is None else int(given[0]))
    tiles = img.grid(pictures, columns=grid, pad=0, background=255)
    if not axes:
        return (*_write(path, tiles), dims)
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    h, w = tiles.shape[:2]
    inches = max(w, 400) / 100
    fig, ax = plt.subplots(figsize=(inches + 1.3, inches + 1.1))
    shown = tiles[..., 0] if tiles.shape[-1] == 1 else tiles
    ax.imshow(shown, cmap="gray", vmin=0, vmax=255, interpolation="nearest", extent=(0, grid, 0, grid))
    every = max(1, int(math.ceil(grid / 8)))
    at = np.arange(0, grid, every)
    ax.set_xticks(at + 0.5, [f"{v:.2f}" for v in ticks[at, 0]], rotation=45)
    ax.set_yticks(at + 0.5, [f"{v:.2f}" for v in ticks[at, 1]])
    kind = "Normal quantiles" if standard else "quantiles of the prior's marginals"
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    rest = "" if d == 2 else f", the other {d - 2} dimensions at {'0' if standard else 'their prior medians'}"
    of = "" if given is None else f", y = {int(given[0])} ({trained.class_name(int(given[0]))})"
    ax.set_title(f"E[x|z{', y' if given is not None else ''}] on a {grid}x{grid} grid of {kind}{rest}{of}",
                 fontsize=10)
    return (*_write(path, _figure_png(fig, dpi=100)), dims)


def interpolate(trained, a: np.ndarray, b: np.ndarray, path: str, steps: int = 10, labels=None, label=None):
    """Two rows of `steps` images from a to b: on top the two images blended pixel by pixel
    ((1 - t) a + t b: a and b at the ends), below them the images decoded along the line between
    their codes (what the model has learned lies between them). A conditional model encodes a and
    b with their `labels` (two) and decodes the line with `label`."""
    if steps < 2:
        raise TfvaeError(f"--steps must be at least 2, got {steps}")
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    la, lb = (None, None) if labels is None else (int(labels[0]), int(labels[1]))
    za, zb = trained.encode(a[None], label=la), trained.encode(b[None], label=lb)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    z = (1 - t) * za + t * zb
    row = trained.decode(z, label=label)
    blend = (1 - t)[:, :, None, None] * a[None] + t[:, :, None, None] * b[None]
    return _write(path, img.rows_grid([blend, row]))


def _figure_png(fig, dpi: int = 110) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg", force=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    import tensorflow as tf

    return tf.io.decode_png(buf.getvalue(), channels=3).numpy()


def dot_size(n: int) -> float:
    """Marker area of a latent map of n points: big enough to see in a small set, small enough not
    to hide each other in a large one (3 at 5,000 points, up to 40)."""
    return float(np.clip(3.0 * math.sqrt(5000 / max(n, 1)), 3.0, 40.0))


def latents(trained, x: np.ndarray, labels: Optional[np.ndarray], path: str, class_names=None):
    """Test-set posterior means (codes for AEs), coloured by label: the first two dimensions of a
    2-d space, a PCA projection otherwise."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    d = trained.config.latent_dim
    if d < 2:
        raise TfvaeError(f"latents needs at least 2 latent dimensions; this run has --latent-dim {d}")
    given = labels if trained.conditional else None  # q(z|x, y): the images' own labels
    z = np.concatenate([trained.encode(x[i:i + 1000], label=None if given is None else given[i:i + 1000])
                        for i in range(0, len(x), 1000)]).astype(np.float64)
    if d == 2:
        pts, axes = z, ("z[0]", "z[1]")
        title = "posterior means"
    else:
        centred = z - z.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        pts = centred @ vt[:2].T
        explained = (s[:2] ** 2) / np.sum(s**2)
        axes = (f"PC 1 ({explained[0]:.0%})", f"PC 2 ({explained[1]:.0%})")
        title = f"posterior means, PCA of {d} dimensions"
    fig, ax = plt.subplots(figsize=(7, 6))
    size = dot_size(len(x))
    if labels is not None:
        classes = np.unique(labels)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            sel = labels == c
            name = class_names[int(c)] if class_names is not None and 0 <= int(c) < len(class_names) else str(c)
            ax.scatter(pts[sel, 0], pts[sel, 1], s=size, alpha=0.6, color=cmap(i % cmap.N), label=name,
                       edgecolors="none")
        ax.legend(markerscale=max(1.0, 6 / math.sqrt(size)), fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    else:
        ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=0.5, edgecolors="none")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(f"{title} ({len(x)} test images)")
    return _write(path, _figure_png(fig))


CURVE_PANELS = (
    ("loss", "loss", ("loss",)),
    ("reconstruction", "reconstruction", ("log_px_z", "reconstruction", "reconstruction_corrupted")),
    ("KL", "KL(q || p) (nats)", ("kl", "kl_mc")),
    ("ELBO", "ELBO (nats)", ("elbo", "iwae_bound")),
    ("penalty", "penalty", ("penalty",)),
)
# what each metric is, with its unit, for the legends and axes
CURVE_LABELS = {
    "loss": "loss", "log_px_z": "E_q[log p(x|z)] (nats)", "reconstruction": "reconstruction error",
    "reconstruction_corrupted": "reconstruction error of the corrupted input",
    "kl": "KL (closed form, nats)", "kl_mc": "KL (Monte Carlo, nats)", "elbo": "ELBO (nats)",
    "iwae_bound": "IWAE bound (nats)", "penalty": "penalty",
}


def curves(rows: list, path: str, title: str = ""):
    """Loss, reconstruction, KL and ELBO per epoch (train and validation) from metrics.csv rows."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not rows:
        raise TfvaeError("the run has no metrics yet (metrics.csv is written after the first epoch)")
    epochs = [r["epoch"] for r in rows]
    panels = []
    for label, ylabel, keys in CURVE_PANELS:
        present = [k for k in keys if rows[-1].get(k) is not None]
        if present:
            panels.append((label, ylabel, present))
    cols = min(2, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axs = plt.subplots(nrows, cols, figsize=(5.5 * cols, 3.6 * nrows), squeeze=False)
    for ax, (label, ylabel, keys) in zip(axs.ravel(), panels):
        if len(keys) == 1:
            ylabel = CURVE_LABELS.get(keys[0], ylabel)
        for key in keys:
            what = "" if len(keys) == 1 else f" {CURVE_LABELS.get(key, key)}"
            ax.plot(epochs, [r.get(key) for r in rows], marker="o", ms=3, label=f"train{what}")
            if rows[-1].get(f"val_{key}") is not None:
                ax.plot(epochs, [r.get(f"val_{key}") for r in rows], marker="o", ms=3, ls="--",
                        label=f"validation{what}")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axs.ravel()[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _write(path, _figure_png(fig))
