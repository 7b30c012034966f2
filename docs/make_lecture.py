"""Builds and runs docs/lecture.ipynb, the course's claims reproduced with tfvae, slide by slide.

    python docs/make_lecture.py            # writes docs/lecture.ipynb with its outputs (about 2 minutes)
    python docs/make_lecture.py --check    # runs it and compares with the committed outputs

Every number the notebook shows is computed in it. It trains on 4,000 real Fashion-MNIST images
(Debian's dataset-fashion-mnist, or any IDX folder given as TFVAE_LECTURE_DATA) for a few epochs:
small enough for the test suite, which runs it (tests/test_lecture.py).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NOTEBOOK = os.path.join(HERE, "lecture.ipynb")

CELLS = [
    ("markdown", """# From the lecture to the code

Each section takes one claim of the course *Deep Generative Models II: AE & VAE* and makes it
happen with tfvae. Everything is computed here, on 4,000 Fashion-MNIST training images and a few
epochs of training, so the whole notebook runs in about two minutes on a laptop CPU
(`python docs/make_lecture.py` runs it again)."""),
    ("code", """import os, tempfile
import numpy as np
import matplotlib.pyplot as plt
import tensorflow as tf
import tensorflow_probability as tfp
from IPython.display import Image, display
import tfvae
from tfvae import objectives
from tfvae.rundir import RunDir

tfd = tfp.distributions
DATA = "idx:" + os.environ.get("TFVAE_LECTURE_DATA", "/usr/share/datasets/fashion-mnist")
WORK = tempfile.mkdtemp(prefix="tfvae-lecture-")
SMALL = dict(max_train_examples=4000, hidden="256", batch_size=100, seed=0, jit="off", binarize="none")

def fit(name, epochs=3, **options):
    \"\"\"Trains a model into WORK/name and loads it (tfvae.fit, as `tfvae fit` does).\"\"\"
    run = tfvae.fit(DATA, out=os.path.join(WORK, name), progress=False, epochs=epochs, **{**SMALL, **options})
    return run.load()

def show(images, titles, cmap="gray"):
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 2.4))
    for ax, image, title in zip(np.atleast_1d(axes), images, titles):
        ax.imshow(image, cmap=cmap, vmin=0, vmax=1); ax.set_title(title, fontsize=9); ax.axis("off")
    display(fig); plt.close(fig)

def grid(x, columns):
    \"\"\"Images (n, h, w, 1) as one picture, `columns` per row.\"\"\"
    from tfvae import images
    return images.grid(x, columns=columns)[..., 0] / 255.0

x_test = None"""),
    ("markdown", """## 1. The autoencoder: undercomplete, sparse, denoising

An undercomplete autoencoder squeezes 784 pixels through 32 numbers (here ReLU codes). The sparse
autoencoder adds λ‖h‖₁ to the loss: far more of its code's activations sit at zero than the
plain autoencoder's, for a slightly worse reconstruction."""),
    ("code", """ae = fit("ae", model="ae", latent_dim=32, code_activation="relu")
sae = fit("sae", model="sae", latent_dim=32, code_activation="relu", l1=1.0)
from tfvae.data import as_float
x_test = as_float(ae.splits().test[:1000])
codes = {"autoencoder": ae.encode(x_test), "sparse autoencoder (l1 = 1)": sae.encode(x_test)}
fig, ax = plt.subplots(figsize=(6, 3))
for name, h in codes.items():
    ax.hist(np.abs(h).ravel(), bins=60, range=(0, 4), alpha=0.6, label=name, density=True)
ax.set_yscale("log"); ax.set_xlabel("|h| (code activation)"); ax.set_ylabel("density (log scale)"); ax.legend()
display(fig); plt.close(fig)
for (name, h), trained in zip(codes.items(), (ae, sae)):
    recon = RunDir(trained.run_dir).last_metrics()["val_reconstruction"]
    print(f"{name:28s} activations below 0.05: {np.mean(np.abs(h) < 0.05):6.1%}   "
          f"validation reconstruction {recon:.1f} nats")"""),
    ("markdown", """The denoising autoencoder sees each pixel set to 0 with probability ν = 0.5 and is trained
to give back the **clean** image."""),
    ("code", """dae = fit("dae", model="dae", latent_dim=32, noise="masking", noise_level=0.5)
rng = np.random.default_rng(0)
clean = x_test[:1]
masked = clean * (rng.random(clean.shape) >= 0.5)
show([masked[0, ..., 0], dae.reconstruct(masked)[0, ..., 0], clean[0, ..., 0]],
     ["masked input (nu = 0.5)", "denoising AE's output", "clean image"])"""),
    ("markdown", """The course's reconstruction loss for pixels in [0, 1] is the summed cross-entropy
−Σᵢ [xᵢ log x̂ᵢ + (1 − xᵢ) log(1 − x̂ᵢ)]. Written out by hand from the decoder's output, it is the
number tfvae trains on:"""),
    ("code", """x = tf.constant(x_test[:100])
logits = ae.model.decoder(ae.model.encode(x))["logits"].numpy().astype(np.float64)
p = 1 / (1 + np.exp(-logits))
by_hand = -np.sum(x.numpy() * np.log(p) + (1 - x.numpy()) * np.log(1 - p), axis=(1, 2, 3))
_, metrics = ae.model.loss(x, ae.model.draw_noise(100, [0, 0]))
print(f"cross-entropy by hand: {by_hand.mean():.3f} nats per image")
print(f"tfvae's reconstruction: {metrics['reconstruction'].numpy().mean():.3f} nats per image")"""),
    ("markdown", """## 2. "Not probabilistic: no way to sample"

Decode random codes with the autoencoder's decoder (drawn with the mean and spread of its real
codes, dimension by dimension) and you get no clothes: nothing made its codes fill a known
region. The VAE's prior N(0, I) is such a region by construction."""),
    ("code", """vae = fit("vae", model="vae", latent_dim=2, epochs=5)
h = codes["autoencoder"]
z_ae = np.maximum(0, np.random.default_rng(1).normal(h.mean(0), h.std(0), size=(16, 32))).astype(np.float32)
show([grid(ae.decode(z_ae), 4), grid(vae.sample(16, seed=1), 4)],
     ["autoencoder: decoded random codes", "VAE: samples of the prior"])"""),
    ("markdown", """## 3. The ELBO: log p(x) = ELBO + KL(q(z|x) ‖ p(z|x))

On probabilistic PCA (`tfvae.exact.LinearGaussian`: p(z) = N(0, I), p(x|z) = N(Wz + b, s²I)) every
term is exact: log p(x) in closed form, the true posterior p(z|x), and the ELBO of any Gaussian
q(z|x). With q set to the true posterior (the E step of EM) the KL is 0 and the bound is tight;
with a worse q the gap is exactly that KL (the same for every x here, as the wrong shift and
scale are)."""),
    ("code", """from tfvae.exact import LinearGaussian

pca = LinearGaussian()
xs, log_px = pca.data(4)
m, c, std = pca.posterior()
true_post = tfd.MultivariateNormalDiag(xs.reshape(4, -1).astype(np.float64) @ m.T + c, np.broadcast_to(std, (4, pca.k)))
for name, q_net in {"q = p(z|x) (exact)": pca.encoder(), "q shifted by 0.5, sd x 1.6": pca.encoder(0.5, 1.6)}.items():
    out = q_net(xs)
    q = tfd.MultivariateNormalDiag(tf.cast(out["loc"], tf.float64), tf.cast(out["scale"], tf.float64))
    elbo = pca.analytic_elbo(q_net, xs)
    kl = tfd.kl_divergence(q, true_post).numpy()
    print(name)
    for i in range(4):
        print(f"  log p(x) {log_px[i]:9.4f}   ELBO {elbo[i]:9.4f}   KL(q || p(z|x)) {kl[i]:7.4f}   "
              f"ELBO + KL {elbo[i] + kl[i]:9.4f}")"""),
    ("markdown", """## 4. The closed-form KL against a Monte Carlo estimate

For q(z|x) = N(μ, diag σ²) and p(z) = N(0, I), KL = ½ Σ (μ² + σ² − 1 − log σ²), which
`tfd.kl_divergence` computes. A Monte Carlo estimate, E_q[log q(z) − log p(z)], gives the same
number within its standard error."""),
    ("code", """out = vae.model.encoder(tf.constant(x_test[:1]))
q = tfd.MultivariateNormalDiag(tf.cast(out["loc"][0], tf.float64), tf.cast(out["scale"][0], tf.float64))
p = tfd.MultivariateNormalDiag(tf.zeros(2, tf.float64), tf.ones(2, tf.float64))
z = q.sample(200_000, seed=[3, 4])
terms = (q.log_prob(z) - p.log_prob(z)).numpy()
print(f"closed form (tfd.kl_divergence):  {float(tfd.kl_divergence(q, p)):.4f} nats")
print(f"Monte Carlo, 200,000 samples:      {terms.mean():.4f} +- {terms.std() / np.sqrt(terms.size):.4f}")"""),
    ("markdown", """## 5. "High variance for gradient estimation"

The score-function (REINFORCE) estimator, E_q[(f(z) − b) ∇φ log q(z|x)], needs nothing of f but
its values; the reparameterization trick, z = μ + σ ε, differentiates through f. Both estimate
the same gradient (tfvae's tests check their means agree); their variances differ by orders of
magnitude. Measured here on the encoder of a VAE on probabilistic PCA with a deliberately
wrong q, over 200 draws for each number of samples L:"""),
    ("code", """xs, _ = pca.data(16)
xs = tf.constant(xs)
def encoder_gradients(model, seed, draws=200):
    variables = model.encoder.trainable_variables
    @tf.function
    def one(s):
        with tf.GradientTape() as tape:
            loss, _ = model.loss(xs, model.draw_noise(16, s), {"kl_weight": tf.constant(1.0)})
            total = tf.reduce_sum(loss)
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(total, variables)], 0)
    return np.stack([one(tf.constant([seed, i])).numpy() for i in range(draws)])

Ls = [1, 2, 5, 10, 20]
variance = {"reparameterization": [], "score": []}
for L in Ls:
    for estimator in variance:
        g = encoder_gradients(pca.model(0.5, 1.6, mc_samples=L, gradient_estimator=estimator), seed=L)
        variance[estimator].append(g.var(0).sum())
fig, ax = plt.subplots(figsize=(5, 3.2))
for estimator, v in variance.items():
    ax.loglog(Ls, v, "o-", label=estimator)
ax.set_xlabel("L, samples of z per image"); ax.set_ylabel("total gradient variance"); ax.legend(); display(fig); plt.close(fig)
for L, r, s in zip(Ls, variance["reparameterization"], variance["score"]):
    print(f"L = {L:2d}: score-function variance / reparameterized variance = {s / r:8.1f}")"""),
    ("markdown", """And on Fashion-MNIST: the same VAE trained with each estimator (`tfvae fit
--gradient-estimator score`), its validation ELBO per epoch. With the noisier gradient the
encoder learns slower and less steadily."""),
    ("code", """score_vae = fit("vae-score", model="vae", latent_dim=2, epochs=5, gradient_estimator="score")
fig, ax = plt.subplots(figsize=(5, 3.2))
for name, trained in {"reparameterization": vae, "score function": score_vae}.items():
    rows = RunDir(trained.run_dir).read_metrics()
    ax.plot([r["epoch"] for r in rows], [r["val_elbo"] for r in rows], "o-", label=name)
    print(f"{name:20s} validation ELBO after {len(rows)} epochs: {rows[-1]['val_elbo']:.2f} nats")
ax.set_xlabel("epoch"); ax.set_ylabel("validation ELBO (nats)"); ax.legend(); display(fig); plt.close(fig)"""),
    ("markdown", """## 6. L Monte Carlo samples

The ELBO's expectation is estimated with L samples of z per image. Its spread falls as 1/√L,
shown here for the trained VAE on one test image (500 estimates for each L):"""),
    ("code", """x1 = tf.constant(np.repeat(x_test[:1], 500, axis=0))
spread = []
Ls = [1, 2, 5, 10, 20, 50]
for L in Ls:
    eps = tf.random.stateless_normal([500, L, 2], [L, 7])
    terms = objectives.elbo(vae.model.encoder, vae.model.decoder, vae.model.likelihood, vae.model.prior, x1, eps)
    spread.append(float(np.std(terms["elbo"].numpy())))
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(Ls, spread, "o-", label="std of the ELBO estimate")
ax.loglog(Ls, spread[0] / np.sqrt(Ls), "--", label="1/sqrt(L)")
ax.set_xlabel("L"); ax.set_ylabel("nats"); ax.legend(); display(fig); plt.close(fig)
print("std of the estimate:", ", ".join(f"L={L}: {s:.3f}" for L, s in zip(Ls, spread)))"""),
    ("markdown", """## 7. The 2-d latent manifold, the latent map, and two likelihoods

Kingma and Welling's figure: decode a grid of z through the inverse normal CDF of the 2-d
latent space. Beside it, the test images' posterior means coloured by class."""),
    ("code", """from tfvae import pictures
splits = vae.splits()
pictures.manifold(vae, os.path.join(WORK, "manifold.png"), grid=15)
pictures.latents(vae, splits.test[:3000], splits.test_labels[:3000], os.path.join(WORK, "latents.png"),
                 class_names=vae.meta.get("class_names"))
display(Image(os.path.join(WORK, "manifold.png"), width=420), Image(os.path.join(WORK, "latents.png"), width=480))"""),
    ("markdown", """The Bernoulli likelihood treats each pixel as a coin; the Gaussian with a learned variance
per pixel treats it as a real number. The same data, 16-d codes, the reconstructions of each:"""),
    ("code", """bern = fit("bernoulli", model="vae", latent_dim=16, binarize="none")
gauss = fit("gaussian", model="vae", latent_dim=16, binarize="none", likelihood="gaussian", gaussian_variance="pixel")
show([grid(x_test[:8], 4), grid(bern.reconstruct(x_test[:8]), 4), grid(gauss.reconstruct(x_test[:8]), 4)],
     ["test images", "Bernoulli p(x|z)", "Gaussian p(x|z), learned variance"])"""),
]


def build():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in CELLS:
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source))
    return nb


def execute(nb, timeout: int = 600):
    from nbclient import NotebookClient

    # the kernel (not this process) finds tfvae in this checkout and keeps TensorFlow quiet
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MPLBACKEND", None)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute(env=env)
    for cell in nb.cells:  # stderr (TensorFlow's start-up lines) is not part of the guide
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    return nb


NUMBER = re.compile(r"-?\d+\.\d+|-?\d+")


def text_outputs(nb) -> list:
    """Each code cell's printed text."""
    return ["".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
            for c in nb.cells if c.cell_type == "code"]


def compare(committed, fresh, rtol: float = 0.02) -> list:
    """The differences between two runs' printed outputs: their words must be equal and their
    numbers equal within rtol (training on another CPU may round differently)."""
    problems = []
    for i, (a, b) in enumerate(zip(text_outputs(committed), text_outputs(fresh), strict=True)):
        if NUMBER.sub("#", a) != NUMBER.sub("#", b):
            problems.append(f"cell {i}: the text differs:\n{a}\n---\n{b}")
            continue
        for u, v in zip(NUMBER.findall(a), NUMBER.findall(b)):
            fu, fv = float(u), float(v)
            if abs(fu - fv) > rtol * max(abs(fu), abs(fv)) + 1e-3:
                problems.append(f"cell {i}: {u} now {v}")
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="run it and compare with docs/lecture.ipynb")
    args = p.parse_args()
    import nbformat

    nb = execute(build())
    if args.check:
        committed = nbformat.read(NOTEBOOK, as_version=4)
        problems = compare(committed, nb)
        print("\n".join(problems) or "the committed outputs match a fresh run")
        sys.exit(1 if problems else 0)
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
