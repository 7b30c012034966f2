"""Evaluation on held-out images: reconstruction, ELBO terms, and the importance-sampled log p(x).

For variational models, log p(x) is estimated the way papers report it (Burda et al., 2016):

    log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i | x),   z_i ~ q(z|x),

batched over images and over samples, combined with log-sum-exp chunk by chunk, so memory is
bounded by (batch x chunk), never by k. Every random number is seeded: the same seed gives the
same number, whatever the chunk size.
"""

from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tfvae.data import as_float

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al.: Cov_x(E_q[z_j]) > 0.01


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


# the reconstruction losses evaluate reports for autoencoders, by the input they were computed on
AE_ROWS = {"reconstruction": "reconstruction loss",
           "reconstruction_clean": "reconstruction loss, clean input (the score)",
           "reconstruction_corrupted": "reconstruction loss, corrupted input (the training loss)"}


def _labels_given(model, labels) -> None:
    """A conditional model without labels is refused here, eagerly, in one line: inside a traced
    step TensorFlow would wrap the ConfigError in a traceback of its own."""
    if labels is None:
        model.given(None)


def per_image_terms(model, x, seed: int = 0, batch_size: int = 500, samples: int = 1, labels=None) -> dict:
    """Per-image terms over images x (no training-time corruption): the family's held-out terms.

    Variational families: log_px_z = E_q[log p(x|z)] (with `samples` draws), kl, elbo,
    kl_per_dim (images, latent_dim) and score (-elbo). Autoencoders: reconstruction (the loss of
    the likelihood) and score. The draws are seeded by (seed, batch index). `labels`: the images'
    labels, for a conditional model (the terms are then conditioned on them).
    """
    x = as_float(x)  # uint8 training images are 0..255
    _labels_given(model, labels)

    @tf.function(reduce_retracing=True)
    def step(xb, s, yb):
        return model.given(yb).held_out_terms(xb, s, samples)  # given(None): the model itself

    parts: dict = {}
    for i, (a, b) in enumerate(_batches(len(x), batch_size)):
        yb = None if labels is None else tf.constant(labels[a:b], tf.int32)
        for k, v in step(tf.constant(x[a:b]), tf.constant([seed, i], tf.int64), yb).items():
            parts.setdefault(k, []).append(v.numpy().astype(np.float64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def bound_metrics(model, x, seed: int = 0, batch_size: int = 500, samples: int = 1, labels=None) -> dict:
    """Means over images x of `per_image_terms` (kl_per_dim: a vector)."""
    return {k: v.mean(axis=0) for k, v in per_image_terms(model, x, seed, batch_size, samples, labels).items()}


SAMPLE_BLOCK = 100  # importance samples are drawn in blocks of this many, each with its own seed
DEFAULT_BATCH = 100  # images per batch of the importance sampler
DEFAULT_CHUNK = 500  # samples per step: memory ~ batch * chunk * pixels floats
# the conv decoder's feature maps make large steps slower (memory-bound): 100 samples per step ran
# 20% faster than 500 on the 2-core CPU, in a third of the memory
CONV_DEFAULT_CHUNK = 100
# XLA's CPU convolutions unfold every sample's feature maps (~0.5 MB per sample for the conv
# decoder): with jit, a conv network's step is capped at this many samples (~6 GB), whatever the
# chunk asked for; the estimate does not depend on the chunk.
JIT_CONV_SAMPLES_PER_STEP = 10_000


def _sample_noise(image_ids, first_block, n_blocks: int, latent: int, seed: int):
    """eps of shape (images, n_blocks * SAMPLE_BLOCK, latent).

    Block b of image j is N(0, I) noise seeded by (seed, j * 10^6 + b) alone, so sample i of image j
    is the same whatever the batch size and the chunk size.
    """
    seed = tf.cast(seed, tf.int64)
    first_block = tf.cast(first_block, tf.int64)

    def per_image(j):
        j = tf.cast(j, tf.int64)
        blocks = [tf.random.stateless_normal([SAMPLE_BLOCK, latent], tf.stack([seed, j * 1_000_000 + first_block + b]))
                  for b in range(n_blocks)]
        return tf.concat(blocks, axis=0)

    return tf.map_fn(per_image, image_ids,
                     fn_output_signature=tf.TensorSpec([n_blocks * SAMPLE_BLOCK, latent], tf.float32))


def step_shape(network: str, batch_size: int, chunk: Optional[int], jit: Optional[bool]) -> tuple:
    """(images, samples) per importance-sampling step: as asked (chunk None: the network's
    default), but bounded for XLA convolutions."""
    if chunk is None:
        chunk = CONV_DEFAULT_CHUNK if network == "conv" else DEFAULT_CHUNK
    if jit and network == "conv":
        batch_size = min(batch_size, JIT_CONV_SAMPLES_PER_STEP // SAMPLE_BLOCK)
        chunk = min(chunk, JIT_CONV_SAMPLES_PER_STEP // batch_size // SAMPLE_BLOCK * SAMPLE_BLOCK)
    return batch_size, chunk


def log_likelihood(model, x, k: int = 5000, seed: int = 0, batch_size: int = DEFAULT_BATCH,
                   chunk: Optional[int] = None, progress=None, jit: Optional[bool] = None,
                   first_index: int = 0, labels=None) -> np.ndarray:
    """Importance-sampled log p(x) per image (nats), with k samples from q(z|x); for a
    conditional model with the images' `labels`, log p(x|y) with samples from q(z|x, y).

    Args:
      model: a variational model (tfvae.models).
      x: images (count, height, width, channels) in [0, 1], binarized already if the model's data is.
      k: importance samples per image.
      seed: the seed. Sample i of image j depends only on (seed, first_index + j, i): the estimate
        does not depend on batch_size or chunk.
      batch_size: images per batch; chunk: samples per step, rounded up to a multiple of
        SAMPLE_BLOCK (None: DEFAULT_CHUNK, CONV_DEFAULT_CHUNK for a conv network). Memory grows
        with batch_size * chunk, not with k.
      progress: a `Progress` to report images done.
      jit: compile the chunk computation with XLA (for a conv network, with at most
        JIT_CONV_SAMPLES_PER_STEP samples per step).
    """
    if not model.variational:
        raise ValueError(f"log p(x) by importance sampling needs a variational model, not --model {model.name}")
    if not 1 <= k <= 10**8:
        raise ValueError(f"k must be between 1 and 10^8 importance samples, got {k}")
    _labels_given(model, labels)
    x = as_float(x)
    n = len(x)
    latent = model.eps_dim  # the size of one importance sample's noise
    batch_size, chunk = step_shape(model.config.network, batch_size, chunk, jit)
    n_blocks = max(1, math.ceil(min(chunk, k) / SAMPLE_BLOCK))
    total_blocks = math.ceil(k / SAMPLE_BLOCK)

    def log_sum_w(xb, eps, yb):
        log_w, _, _ = model.given(yb).log_importance_weights(xb, eps, training=False)
        return tf.reduce_logsumexp(log_w, axis=1)

    sum_fn = tf.function(log_sum_w, jit_compile=jit, reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def chunk_fn(xb, ids, first_block, blocks, keep, yb):
        # the noise is drawn outside XLA, whose random-number kernels differ from TensorFlow's
        eps = _sample_noise(ids, first_block, blocks, latent, seed)[:, :keep]
        return sum_fn(xb, eps, yb)

    out = np.empty(n, np.float64)
    if progress is not None:
        progress.start("log p(x)", n, unit="image")
    for a, b in _batches(n, batch_size):
        xb = tf.constant(x[a:b])
        yb = None if labels is None else tf.constant(labels[a:b], tf.int32)
        ids = tf.range(first_index + a, first_index + b)
        parts = []
        for first_block in range(0, total_blocks, n_blocks):
            blocks = min(n_blocks, total_blocks - first_block)
            keep = min(blocks * SAMPLE_BLOCK, k - first_block * SAMPLE_BLOCK)
            parts.append(chunk_fn(xb, ids, tf.constant(first_block), blocks, tf.constant(keep), yb).numpy()
                         .astype(np.float64))
        # log sum_i w_i over all chunks, then minus log k
        out[a:b] = np.logaddexp.reduce(np.stack(parts, axis=1), axis=1) - math.log(k)
        if progress is not None:
            progress.update(b)
    if progress is not None:
        progress.finish(n)
    return out


def scale_at_floor(model, x, labels=None, batch_size: int = 500):
    """The fraction of pixels whose learned scale (Gaussian or logistic) sits at its floor (--min-scale, within
    1%) when the images are decoded from their codes; None without a learned scale. A scale at the
    floor on most pixels (the many pixels of 8-bit images that are exactly 0) makes log p(x) a
    density that grows without bound as the floor falls: a number comparable with nothing."""
    lik = model.likelihood
    if lik.kind == "bernoulli" or lik.variance == "fixed":
        return None
    at = total = 0
    for a, b in _batches(len(x), batch_size):
        view = model if labels is None else model.given(tf.constant(labels[a:b], tf.int32))
        scale = view.decode(view.encode(tf.constant(x[a:b]))).distribution.scale
        scale = np.broadcast_to(np.asarray(scale), (b - a, *x.shape[1:]))
        at += int(np.sum(scale <= lik.min_scale * 1.01))
        total += scale.size
    return at / total


def bits_per_dim(nll: float, dims: int, dequantized: bool) -> float:
    """A negative log-likelihood per image (nats) in bits per dimension, the unit of the papers on
    8-bit images: nll / (D ln 2) for a probability of the 8-bit levels (the discretized logistic);
    for a density on uniformly dequantized pixels y = (k + u) / 256 in [0, 1], the change of
    variables to the levels' scale, v = 256 y, adds D ln 256 first (Theis et al., 2016):

        bits/dim = (nll + D ln 256) / (D ln 2) = nll / (D ln 2) + 8.
    """
    return (nll + (dims * math.log(256.0) if dequantized else 0.0)) / (dims * math.log(2.0))


def active_units(model, x, batch_size: int = 500, threshold: float = ACTIVE_UNIT_THRESHOLD, labels=None):
    """(number active, per-dimension Cov_x(E_q[z_j])) over images x, for the code z (the top layer
    of a hierarchy); with `labels`, of q(z|x, y)."""
    means = np.concatenate([model.given(None if labels is None else labels[a:b])
                            .encode(tf.constant(as_float(x[a:b]))).numpy() for a, b in _batches(len(x), batch_size)])
    variance = means.astype(np.float64).var(axis=0)
    return int(np.sum(variance > threshold)), variance


def active_units_per_layer(model, x, batch_size: int = 500, threshold: float = ACTIVE_UNIT_THRESHOLD) -> dict:
    """{layer: (number active, per-dimension variance)} for a model with several stochastic layers
    (`encode_levels`: the posterior means of each layer); empty for one layer."""
    parts: dict = {}
    for a, b in _batches(len(x), batch_size):
        for name, v in model.encode_levels(tf.constant(as_float(x[a:b]))).items():
            parts.setdefault(name, []).append(v.numpy())
    out = {}
    for name, v in sorted(parts.items()):
        variance = np.concatenate(v).astype(np.float64).var(axis=0)
        out[name] = (int(np.sum(variance > threshold)), variance)
    return out


def evaluate(trained, k: int = 5000, max_test_examples: Optional[int] = None, seed: int = 0,
             batch_size: int = DEFAULT_BATCH, chunk: Optional[int] = None, progress=None,
             jit: Optional[bool] = None, splits=None, fidelity_samples: int = 10_000) -> dict:
    """The test-set report of a trained run (a `TrainedModel`), as a JSON-ready dict.

    Autoencoders: the reconstruction loss. Variational models: reconstruction term, KL and ELBO,
    the importance-sampled log p(x) with k samples, active units and the KL per dimension.
    The protocol (binarization, k, number of test images, seed) is part of the report.
    """
    import time

    from tfvae.data import BINARIZATION_SEED

    model = trained.model
    config = trained.config
    if splits is None:
        splits = trained.splits()
    x = splits.test
    y = splits.test_labels if model.conditional else None
    if y is not None:  # the test images of the classes the model was trained on
        keep = np.isin(y, model.label_rows(1))
        x, y = x[keep], y[keep].astype(np.int32)
    if max_test_examples is not None:
        x = x[:max_test_examples]
        y = None if y is None else y[:max_test_examples]
    t0 = time.perf_counter()
    report = {
        "run_dir": trained.run_dir,
        "model": config.model,
        "dataset": config.dataset,
        "protocol": {
            "test_images": int(len(x)),
            "likelihood": config.likelihood,
            "binarization": config.binarization,
            "test_binarized_once_with_seed": (BINARIZATION_SEED + 2) if config.binarization != "none" else None,
            "seed": seed,
        },
        "metrics": {},
    }
    if config.dequantization == "uniform":
        report["protocol"]["dequantization"] = "uniform"
        report["protocol"]["test_dequantized_once_with_seed"] = BINARIZATION_SEED + 2
    terms = bound_metrics(model, x, seed=seed, labels=y)  # fixed batches: the ELBO does not move with --batch-size
    m = report["metrics"]
    if y is not None:
        report["protocol"]["conditioned_on"] = "label"
    if not model.variational:  # "reconstruction"; a denoising AE's of the clean and of the corrupted input
        m.update({key: float(value) for key, value in terms.items() if key.startswith("reconstruction")})
    else:
        report["protocol"]["k"] = int(k)
        report["prior"] = model.prior.description
        m["reconstruction"] = float(-terms["log_px_z"])
        m["log_px_z"] = float(terms["log_px_z"])
        m["kl"] = float(terms["kl"])
        report["protocol"]["kl"] = ("closed form" if model.kl_metric == "kl" else
                                    "Monte Carlo estimate (one sample per image)")
        m["elbo"] = float(terms["elbo"])
        ll = log_likelihood(model, x, k=k, seed=seed, batch_size=batch_size, chunk=chunk, progress=progress, jit=jit,
                            labels=y)
        m["log_likelihood"] = float(ll.mean())
        m["nll"] = float(-ll.mean())
        m["log_likelihood_stderr"] = float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else 0.0
        dequantized = config.dequantization == "uniform"
        if dequantized or config.likelihood == "logistic":
            dims = int(np.prod(x.shape[1:]))
            m["bits_per_dim"] = bits_per_dim(m["nll"], dims, dequantized)
            m["elbo_bits_per_dim"] = bits_per_dim(-m["elbo"], dims, dequantized)
            report["protocol"]["bits_per_dim"] = (
                f"(-log p(y) + D ln 256) / (D ln 2), D = {dims}: the density of the dequantized pixels "
                "y = (k + u) / 256 taken to the 8-bit levels k by the change of variables (Theis et al., 2016)"
                if dequantized else
                f"-log P(k) / (D ln 2), D = {dims}: the discretized logistic's probability of the 8-bit levels k")
        active, variance = active_units(model, x, labels=y)
        m["active_units"] = active
        m["latent_dim"] = config.latent_dim
        for name, (n_active, v) in active_units_per_layer(model, x).items():
            m[f"active_units_{name}"] = n_active
            report[f"posterior_mean_variance_{name}"] = [float(u) for u in v]
        if "kl_per_dim" in terms:
            report["kl_per_dim"] = [float(v) for v in terms["kl_per_dim"]]
        report["posterior_mean_variance"] = [float(v) for v in variance]
        floor = scale_at_floor(model, x, labels=y)
        if floor is not None:
            m["scale_at_floor"] = floor
            report["protocol"]["min_scale"] = model.likelihood.min_scale
        if y is not None and fidelity_samples:
            from tfvae.fidelity import label_fidelity, run_classifier

            classifier, info = run_classifier(trained, splits, progress=progress)
            fid = label_fidelity(model, classifier, n=fidelity_samples)
            m["label_fidelity"] = fid["fidelity"]
            m["classifier_test_accuracy"] = info["test_accuracy"]
            report["label_fidelity_per_class"] = {str(k): v for k, v in fid["per_class"].items()}
            report["protocol"]["label_fidelity"] = (
                f"{fid['samples']} samples (pixel means of p(x|z, y), z ~ p(z|y), equally many per class) classified "
                f"by {os.path.basename(trained.run_dir)}/classifier.keras (a CNN trained on the "
                f"{info['training_images']} training images, {info['epochs']} epochs)")
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def format_report(report: dict) -> str:
    """The report as a readable table."""
    p, m = report["protocol"], report["metrics"]
    lines = [f"{report['run_dir']}  ({report['model']} on {report['dataset']})"]
    binar = p["binarization"]
    how = (f"binarized once (seed {p['test_binarized_once_with_seed']})" if binar != "none" else
           f"dequantized once, (k + u) / 256 (seed {p['test_dequantized_once_with_seed']})"
           if p.get("dequantization") == "uniform" else
           "8-bit levels as they are" if p.get("likelihood") == "logistic" else "not binarized")
    proto = f"protocol: {p['test_images']} test images, {how}"
    if "k" in p:
        proto += f", k = {p['k']} importance samples, seed {p['seed']}"
    lines.append(proto)
    if report.get("prior"):
        lines.append(f"prior: {report['prior']}")
    rows = []
    given = "conditioned_on" in p  # a conditional model: every term is given the label y
    xy, zx, pz = ("x|y", "z|x,y", "z|y") if given else ("x", "z|x", "z")
    if "elbo" in m:
        rows += [
            (f"reconstruction  -E_q[log p(x|{'z,y' if given else 'z'})]", f"{m['reconstruction']:.2f} nats"),
            (f"KL(q({zx}) || p({pz}))" + ("" if p.get("kl", "closed form") == "closed form" else "  (Monte Carlo)"),
             f"{m['kl']:.2f} nats"),
            ("ELBO", f"{m['elbo']:.2f} nats"),
            (f"log p({xy})  (importance sampling, k={p['k']})",
             f"{m['log_likelihood']:.2f} nats  (+/- {m['log_likelihood_stderr']:.2f})"),
            ("negative log-likelihood", f"{m['nll']:.2f} nats"),
        ]
        if "bits_per_dim" in m:
            rows += [("  in bits per dimension", f"{m['bits_per_dim']:.4f} bits/dim  (-ELBO: "
                                                  f"{m['elbo_bits_per_dim']:.4f})")]
        rows += [
            ("active units  (Cov_x E_q[z_j] > 0.01)", f"{m['active_units']} / {m['latent_dim']}"),
        ]
        rows += [(f"  of {key[len('active_units_'):]}", f"{m[key]} / {m['latent_dim']}")
                 for key in sorted(m) if key.startswith("active_units_")]
        if "scale_at_floor" in m:
            rows.append((f"learned scale at its floor (--min-scale {p['min_scale']:g})",
                         f"{m['scale_at_floor']:.1%} of pixels"))
        if "label_fidelity" in m:
            rows += [("label fidelity  (samples classified as asked)", f"{m['label_fidelity']:.1%}"),
                     ("  the classifier on real test images", f"{m['classifier_test_accuracy']:.1%}")]
    else:
        rows += [(AE_ROWS[key], f"{m[key]:.3f} per image") for key in AE_ROWS if key in m]
    width = max(len(r[0]) for r in rows)
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    if "label_fidelity" in p:
        lines.append(f"  label fidelity: {p['label_fidelity']}")
    if "bits_per_dim" in p:
        lines.append(f"  bits per dimension: {p['bits_per_dim']}")
    if m.get("scale_at_floor", 0) > 0.5 and "bits_per_dim" not in m:
        lines.append(f"  note: the learned scale is at its floor on {m['scale_at_floor']:.0%} of the pixels, so log p(x) "
                     "is a density on discrete (8-bit) pixels that grows as --min-scale falls: it compares with no "
                     "published number (those are in bits per dimension of dequantized or discretized pixels)")
    if "kl_per_dim" in report:
        kl = report["kl_per_dim"]
        lines.append("  KL per dimension: " + " ".join(f"{v:.2f}" for v in kl))
    lines.append(f"  ({report['seconds']:.1f} s)")
    return "\n".join(lines)
