"""The ex-post prior: after training, p(z) (p(z|y) for a conditional model) replaced by a mixture
of diagonal Gaussians fitted to the aggregate posterior of the training images (`tfvae fit-prior
RUN --out OUT`).

The prior that maximizes the training ELBO for the trained encoder and decoder is the aggregate
posterior, (1/N) sum_n q(z | x_n) (per class, (1/N_y) sum_n q(z | x_n, y)); a prior learned with
the networks (N(0, I), a Gaussian per class, the VampPrior's pseudo-inputs) only approximates it,
and its samples fall where the decoder was rarely trained. Two estimates of it, each with a
density, so that log p(x) is measured under the same prior the samples come from:

- `gmm` (the default): K diagonal Gaussians fitted by EM to `draws` samples z ~ q(z | x_n) of
  every training image (Ghosh et al., 2020, "From Variational to Deterministic Autoencoders":
  ex-post density estimation). Maximum likelihood on draws from the aggregate posterior is the
  maximum of the ELBO's prior term, E_q[log p(z)], over the mixture's parameters.
- `posteriors`: K training images' posteriors themselves, taken at random, with equal weights
  (the Exemplar VAE's prior, Norouzi et al., 2020, without its retraining): the closest to the
  aggregate posterior where the training images are, but narrow components whose density falls
  off between them, so test images get a lower log p(x).

The networks are not changed: OUT is a new run directory with the same encoder and decoder and
this prior, which every command takes (evaluate, sample, export, ...); the trained run is only
read.

    >>> tfvae.fit_prior("runs/fmnist-cvae-vamp", out="runs/fmnist-cvae-expost", components=500)
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

import numpy as np

from tfvae.errors import ConfigError, RunDirError

KINDS = ("gmm", "posteriors")
DEFAULT_COMPONENTS = 1000
DEFAULT_DRAWS = 4  # samples z ~ q(z|x) per training image that the mixture is fitted to
DEFAULT_ITERATIONS = 100
VARIANCE_FLOOR = 1e-4  # of each fitted component's variance: a scale of at least 0.01
COPIED = ("metrics.csv", "classifier.keras", "classifier.json")  # the training's record, the fidelity classifier
BATCH = 500


def fit_mixture(z, components: int, seed: int, iterations: int = DEFAULT_ITERATIONS,
                floor: float = VARIANCE_FLOOR, chunk: int = 16384):
    """A mixture of `components` diagonal Gaussians fitted to the points z (N, d) by EM (float64,
    the squared distances as matrix products, `chunk` points at a time so that memory grows with
    chunk * components, not with N): the means start at distinct random points, the variances at
    the points' variance, the weights equal; a variance never below `floor`. Returns
    (log_weights (K,), loc (K, d), scale (K, d), the mean log-density of z before each EM update
    and after the last). A function of (z, components, seed) alone."""
    z = np.asarray(z, np.float64)
    n, d = z.shape
    if n < components:
        raise ConfigError(f"a mixture of {components} Gaussians needs at least as many points, and there are {n}: "
                          f"give fewer components")
    rng = np.random.default_rng([int(seed), 5115])
    loc = z[np.sort(rng.choice(n, size=components, replace=False))]
    var = np.tile(np.maximum(z.var(axis=0), floor), (components, 1))
    log_w = np.full(components, -np.log(components))
    history = []

    def e_step():
        """The mean log-density of z, and the sufficient statistics sum_n r_nk, sum_n r_nk z_n, sum_n r_nk z_n^2."""
        precision = 1.0 / var
        lp, loc_term = loc * precision, np.sum(loc * loc * precision, axis=1)
        log_det = np.sum(np.log(2 * np.pi * var), axis=1)
        total, mass, first, second = 0.0, np.zeros(components), np.zeros((components, d)), np.zeros((components, d))
        for a in range(0, n, chunk):
            zc = z[a:a + chunk]
            z2 = zc * zc
            squared = np.maximum(z2 @ precision.T - 2.0 * zc @ lp.T + loc_term, 0.0)  # (chunk, K)
            joint = log_w - 0.5 * (squared + log_det)
            top = joint.max(axis=1, keepdims=True)
            resp = np.exp(joint - top)
            norm = resp.sum(axis=1, keepdims=True)
            total += float(np.sum(top[:, 0] + np.log(norm[:, 0])))
            resp /= norm
            mass += resp.sum(axis=0)
            first += resp.T @ zc
            second += resp.T @ z2
        return total / n, mass, first, second

    for _ in range(int(iterations)):
        mean_log_density, mass, first, second = e_step()
        history.append(mean_log_density)
        mass = mass + 1e-12
        loc = first / mass[:, None]
        var = np.maximum(second / mass[:, None] - loc * loc, floor)
        log_w = np.log(mass / mass.sum())
    history.append(e_step()[0])
    return log_w, loc, np.sqrt(var), history


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


def training_posteriors(trained, rows, labels, seed: int, offset: int, progress=None):
    """(loc, scale), each (len(rows), d): q(z | x_n[, y_n]) of the training images `rows` (with
    their `labels` for a conditional model), the images as the model saw them in training, a
    batch of BATCH at a time (batch a binarized with the seed [seed, offset + a])."""
    model, config = trained.model, trained.config
    splits = trained.splits()
    d = config.latent_dim
    loc, scale = np.empty((len(rows), d), np.float32), np.empty((len(rows), d), np.float32)
    for a in range(0, len(rows), BATCH):
        part = slice(a, a + BATCH)
        x = as_trained(config, splits.train[rows[part]], [int(seed), offset + a])
        q = (model if labels is None else model.given(np.asarray(labels[part], np.int32))).posterior(x)
        loc[part], scale[part] = q.mean().numpy(), q.stddev().numpy()
        if progress is not None:
            progress.update(min(a + BATCH, len(rows)))
    return loc, scale


def aggregate_draws(trained, rows, label, draws: int, seed: int) -> np.ndarray:
    """`draws` samples z ~ q(z | x_n[, y]) for each training image n in `rows` (all of class
    `label`, None for an unconditional model), shape (len(rows) * draws, d), batch by batch."""
    labels = None if label is None else np.full(len(rows), label, np.int32)
    loc, scale = training_posteriors(trained, rows, labels, seed, 5117 + 1_000_000 * (0 if label is None else label))
    rng = np.random.default_rng([int(seed), 5116, 0 if label is None else 1 + int(label)])
    out = []
    for a in range(0, len(rows), BATCH):
        m, s = loc[a:a + BATCH], scale[a:a + BATCH]
        out += [m + s * rng.standard_normal(m.shape) for _ in range(draws)]
    return np.concatenate(out).astype(np.float64)


def gaussian_mixture(trained, components: int, draws: int = DEFAULT_DRAWS, iterations: int = DEFAULT_ITERATIONS,
                     seed: int = 0, progress=None):
    """(log_weights, loc, scale, info): `components` diagonal Gaussians fitted by EM to `draws`
    samples of the posterior of every training image, per class for a conditional model
    (components / classes each, their log weights normalized within the class; a class without
    training images keeps N(0, I) components). info: the mean log-density of the draws under the
    fitted mixture, per class where there are classes."""
    config = trained.config
    splits = trained.splits()
    d = config.latent_dim
    groups = [(None, np.arange(len(splits.train)))] if not trained.conditional else \
        [(c, np.flatnonzero(splits.train_labels == c)) for c in range(config.label_classes)]
    per = components // len(groups)
    log_w, loc, scale = np.full(components, -np.log(per)), np.zeros((components, d)), np.ones((components, d))
    fitted = {}
    if progress is not None:
        progress.start("fitting the mixture", len(groups) * iterations, unit="EM step")
    for g, (label, rows) in enumerate(groups):
        if not len(rows):
            continue
        if len(rows) * draws < per:
            which = "" if label is None else f" of class {label}"
            raise ConfigError(f"{per} Gaussians need at least as many draws, and the {len(rows)} training images"
                              f"{which} give {len(rows) * draws}: give fewer --components or more --draws")
        z = aggregate_draws(trained, rows, label, draws, seed)
        part = slice(g * per, (g + 1) * per)
        log_w[part], loc[part], scale[part], history = fit_mixture(z, per, seed * 1000 + g, iterations)
        fitted["all" if label is None else str(label)] = round(history[-1], 4)
        if progress is not None:
            progress.update((g + 1) * iterations)
    if progress is not None:
        progress.finish(len(groups) * iterations)
    return log_w, loc, scale, {"mean_log_density_of_the_draws": fitted}


def posteriors(trained, components: int, seed: int = 0, progress=None):
    """(loc, scale, indices): the posteriors q(z | x_k[, y_k]) of the picked training images,
    each (components, latent_dim), and the images' indices in the training split (-1: a class
    without training images, whose components stay N(0, I))."""
    config = trained.config
    splits = trained.splits()
    classes = list(range(config.label_classes)) if trained.conditional else None
    picks = pick_images(splits.train_labels, len(splits.train), components, classes, seed)
    loc = np.zeros((components, config.latent_dim), np.float32)
    scale = np.ones_like(loc)
    real = np.flatnonzero(picks >= 0)
    if progress is not None:
        progress.start("posteriors", len(real), unit="image")
    labels = splits.train_labels[picks[real]] if trained.conditional else None
    loc[real], scale[real] = training_posteriors(trained, picks[real], labels, seed, 5114, progress)
    if progress is not None:
        progress.finish(len(real))
    return loc, scale, picks


def fit_prior(run_dir: str, out: str, components: int = DEFAULT_COMPONENTS, kind: str = "gmm",
              draws: int = DEFAULT_DRAWS, iterations: int = DEFAULT_ITERATIONS, seed: int = 0,
              overwrite: bool = False, progress: bool = True, stream=None) -> str:
    """Writes OUT, the run at `run_dir` with its prior replaced by the ex-post prior: `components`
    diagonal Gaussians (split equally among the classes of a conditional model), fitted by EM to
    `draws` posterior samples of every training image (kind "gmm"), or the posteriors of that many
    random training images (kind "posteriors"). Returns OUT's path. `run_dir` is only read."""
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
    if kind not in KINDS:
        raise ConfigError(f"--kind is one of {', '.join(KINDS)}, not {kind!r}")
    for name, value in (("components", components), ("draws", draws), ("iterations", iterations)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be a positive whole number, got {value}")
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
        of = {"run": source.path, "prior": config.prior, "kind": kind, "components": components, "seed": int(seed)}
        if kind == "gmm":
            log_w, loc, scale, info = gaussian_mixture(trained, components, draws, iterations, seed, bar)
            of.update({"draws": draws, "iterations": iterations, **info})
        else:
            loc, scale, picks = posteriors(trained, components, seed, bar)
            log_w = np.zeros(components)
            of["images"] = int((picks >= 0).sum())
        fitted.prior.fit(log_w, loc, scale)
        new_meta = {**meta, "prior_of": of}

        def fill(staging: str) -> None:
            fitted.save(os.path.join(staging, os.path.basename(source.model_path)))
            for name in COPIED:
                if os.path.isfile(source.file(name)):
                    shutil.copy2(source.file(name), os.path.join(staging, name))

        target.create(new_config, new_meta, overwrite=overwrite, fill=fill)
        how = (f"EM on {draws} posterior draws of each training image" if kind == "gmm" else
               f"the posteriors of {of['images']} training images")
        bar.message(f"done: {shown_path(target.path)}, {fitted.prior.description} ({how}; the encoder and decoder "
                    f"of {shown_path(source.path)}, whose prior was {model.prior.description})")
    return target.path
