"""The ex-post prior: after training, p(z) (p(z|y) for a conditional model) replaced by a stored
mixture of training images' posteriors (`tfvae fit-prior RUN --out OUT`).

The prior that maximizes the training ELBO for the trained encoder and decoder is the aggregate
posterior, (1/N) sum_n q(z | x_n); a learned prior (N(0, I), a Gaussian per class, the VampPrior's
pseudo-inputs) only approximates it, and its samples fall where the decoder was rarely trained.
K training images' posteriors, taken at random (K / classes of each class for a conditional
model), are an estimate of it with a density (Ghosh et al., 2020, "From Variational to
Deterministic Autoencoders", ex-post density estimation; Norouzi et al., 2020, the Exemplar VAE's
prior). The networks are not changed: OUT is a new run directory with the same encoder and
decoder and this prior, which every command takes (evaluate, sample, export, ...), and the
trained run is not touched.

    >>> tfvae.fit_prior("runs/fmnist-cvae-vamp", out="runs/fmnist-cvae-expost", components=5000)
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

import numpy as np

from tfvae.errors import ConfigError, RunDirError

DEFAULT_COMPONENTS = 5000
COPIED = ("metrics.csv", "classifier.keras", "classifier.json")  # the training's record, the fidelity classifier
BATCH = 500


def pick_images(labels, n_train: int, components: int, classes: Optional[list], seed: int) -> np.ndarray:
    """The training images' indices, in component order: `components` distinct ones at random, or
    for a conditional model (`classes`: the labels 0..C-1 of the one-hot) components / C of each
    class, class 0's first (a class without training images gets index -1: N(0, I) components).
    A function of (labels, components, seed) alone."""
    rng = np.random.default_rng([int(seed), 5113])
    if classes is None:
        if components > n_train:
            raise ConfigError(f"the ex-post prior takes {components} distinct training images and the run has "
                              f"{n_train}: give --components {n_train} or fewer")
        return np.sort(rng.choice(n_train, size=components, replace=False))
    per_class = components // len(classes)
    picks = []
    for c in classes:
        of_class = np.flatnonzero(labels == c)
        if 0 < len(of_class) < per_class:
            raise ConfigError(f"the ex-post prior takes {per_class} training images of each class and class {c} has "
                              f"{len(of_class)}: give --components {len(of_class) * len(classes)} or fewer")
        picks.append(np.sort(rng.choice(of_class, size=per_class, replace=False)) if len(of_class)
                     else np.full(per_class, -1))
    return np.concatenate(picks)


def as_trained(config, images, seed) -> np.ndarray:
    """Training images as the model saw them: binarized once with a seed (dynamic binarization),
    dequantized once (uniform dequantization), else floats in [0, 1]. `seed`: two integers."""
    from tfvae.data import as_float
    from tfvae.lazy import tf
    from tfvae.objectives import binarize, dequantize

    x = as_float(images)
    if config.binarization == "dynamic":
        u = tf.random.stateless_uniform(x.shape, tf.constant(seed, tf.int64))
        return binarize(tf.constant(x), u).numpy()
    if config.dequantization == "uniform":
        u = tf.random.stateless_uniform(x.shape, tf.constant(seed, tf.int64))
        return dequantize(tf.constant(x), u).numpy()
    return x


def posteriors(trained, components: int, seed: int = 0, progress=None):
    """(loc, scale, indices): the posteriors q(z | x_k[, y_k]) of the picked training images,
    each (components, latent_dim), and the images' indices in the training split."""
    model, config = trained.model, trained.config
    splits = trained.splits()
    classes = list(range(config.label_classes)) if trained.conditional else None
    picks = pick_images(splits.train_labels, len(splits.train), components, classes, seed)
    d = config.latent_dim
    loc, scale = np.zeros((components, d), np.float32), np.ones((components, d), np.float32)
    real = np.flatnonzero(picks >= 0)
    if progress is not None:
        progress.start("posteriors", len(real), unit="image")
    for a in range(0, len(real), BATCH):
        rows = real[a:a + BATCH]
        x = as_trained(config, splits.train[picks[rows]], [int(seed), 5114 + a])
        view = model.given(splits.train_labels[picks[rows]].astype(np.int32)) if trained.conditional else model
        q = view.posterior(x)
        loc[rows], scale[rows] = q.mean().numpy(), q.stddev().numpy()
        if progress is not None:
            progress.update(min(a + BATCH, len(real)))
    if progress is not None:
        progress.finish(len(real))
    return loc, scale, picks


def fit_prior(run_dir: str, out: str, components: int = DEFAULT_COMPONENTS, seed: int = 0,
              overwrite: bool = False, progress: bool = True, stream=None) -> str:
    """Writes OUT, the run at `run_dir` with its prior replaced by the ex-post mixture of
    `components` training images' posteriors (split equally among the classes of a conditional
    model). Returns OUT's path. The run at `run_dir` is only read."""
    import sys

    from tfvae.progress import Progress
    from tfvae.rundir import RunDir, RunLock, shown_path

    stream = stream or sys.stderr
    source, target = RunDir(run_dir), RunDir(out)
    config, meta = source.read()
    if source.path == target.path:
        raise ConfigError(f"fit-prior writes a new run and leaves {source.path} as it is: give another --out")
    family = config.family
    if not family.variational:
        raise ConfigError(f"{source.path} is --model {config.model}, an autoencoder: it has no prior; fit-prior needs a "
                          "variational model (vae, iwae, ...)")
    if not isinstance(components, int) or components < 1:
        raise ConfigError(f"--components must be a positive number of training images, got {components}")
    if target.exists() and not overwrite:
        raise RunDirError(f"{target.path} already exists; pass --overwrite to replace it or choose another --out")
    RunDir.check_writable(target.path)
    with RunLock(target.path):
        import tfvae
        from tfvae.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
        trained = tfvae.load(source.path)
        model = trained.model
        if model.eps_dim != config.latent_dim:
            raise ConfigError(f"--model {config.model} has more than one stochastic layer; the ex-post prior replaces "
                              "the prior of a model with one (vae, iwae, ...)")
        new_config = config.replace(prior="expost", prior_components=components)
        parts = {name: part for name, part in model.parts.items() if name != "prior"}
        bar = Progress(stream=stream, enabled=progress)
        fitted = family(new_config, model.image_shape, parts=parts)  # the same networks; a new prior
        loc, scale, picks = posteriors(trained, components, seed, bar)
        fitted.prior.fit(loc, scale)
        new_meta = {**meta, "prior_of": {"run": source.path, "prior": config.prior, "components": components,
                                         "seed": int(seed), "images": int((picks >= 0).sum())}}

        def fill(staging: str) -> None:
            fitted.save(os.path.join(staging, os.path.basename(source.model_path)))
            for name in COPIED:
                if os.path.isfile(source.file(name)):
                    shutil.copy2(source.file(name), os.path.join(staging, name))

        target.create(new_config, new_meta, overwrite=overwrite, fill=fill)
        bar.message(f"done: {shown_path(target.path)}, {fitted.prior.description} (the encoder and decoder of "
                    f"{shown_path(source.path)}, whose prior was {model.prior.description})")
    return target.path
