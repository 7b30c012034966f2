"""The prior p(z) as an object that the bounds take as an argument.

A `Prior` gives its `tfd` distribution, `log_prob`, seeded `sample(n, seed)`, and its KL to a
posterior: in closed form where one exists (`closed_form_kl`), otherwise the Monte Carlo estimate
log q(z|x) - log p(z) over the same samples z as the reconstruction term (the metric is then
named `kl_mc`, not `kl`). A learned prior keeps its variables in a Keras layer (`layer`): the
family puts that layer in its Keras model, so checkpoints, model.keras, early stopping's best
weights and every export hold the prior's variables with the networks'.

    >>> prior = StandardNormal(20)
    >>> z = prior.sample(16, seed=[0, 1])          # (16, 20), the same for the same seed
    >>> kl = prior.kl(q)                           # closed form, per example
"""

from __future__ import annotations

import abc

import numpy as np

from tfvae.errors import TfvaeError
from tfvae.lazy import tf, tfd


class Prior(abc.ABC):
    """p(z) over `latent_dim` dimensions.

    Subclasses implement `distribution()` (a tfd distribution with event shape (latent_dim,)),
    and `mixture()` when the prior is a mixture of diagonal Gaussians (what exports need to draw
    z on a device); they override `kl` when it has a closed form.
    """

    closed_form_kl = False
    description = "a prior"

    def __init__(self, latent_dim: int):
        self.latent_dim = int(latent_dim)

    # ------------------------------------------------------------------ variables
    @property
    def layer(self):
        """The Keras layer that holds the prior's variables; None for a prior without any."""
        return None

    @property
    def trainable_variables(self) -> list:
        return list(self.layer.trainable_variables) if self.layer is not None else []

    # ------------------------------------------------------------------ the distribution
    @abc.abstractmethod
    def distribution(self):
        """p(z) as a tfd distribution with event shape (latent_dim,)."""

    def log_prob(self, z):
        """log p(z) for z of shape (..., latent_dim)."""
        return self.distribution().log_prob(z)

    def sample(self, n: int, seed):
        """n draws z ~ p(z), shape (n, latent_dim), a function of the stateless `seed` alone."""
        return self.distribution().sample(n, seed=tf.cast(tf.convert_to_tensor(seed), tf.int32))

    def sample_in_graph(self, n):
        """n draws with TensorFlow's stateful random ops (no seed): for the exported samplers,
        whose random op must be a TFLite builtin."""
        raise TfvaeError(f"the prior {type(self).__name__} cannot be sampled inside an exported graph; give it "
                         "a sample_in_graph(n) built from TFLite builtin random ops")

    def marginal_quantiles(self, probabilities, dims) -> np.ndarray:
        """The inverse CDF of p(z_j) at `probabilities` for each dimension j in `dims`: shape
        (len(probabilities), len(dims)) (the manifold picture's grid). Here estimated from 100,000
        seeded draws; priors with a closed form override it."""
        z = self.sample(100_000, tf.constant([20240, 2], tf.int64)).numpy()[:, list(dims)]
        return np.quantile(z, probabilities, axis=0).astype(np.float32)

    # ------------------------------------------------------------------ KL(q || p)
    @property
    def kl_metric(self) -> str:
        """The metric name of the KL term: `kl` in closed form, `kl_mc` for a Monte Carlo estimate."""
        return "kl" if self.closed_form_kl else "kl_mc"

    def kl(self, q, z=None):
        """KL(q(z|x) || p(z)) per example. Closed form where `closed_form_kl`; otherwise the Monte
        Carlo estimate mean_l [log q(z_l|x) - log p(z_l)] over z of shape (batch, samples, latent)."""
        if z is None:
            raise ValueError(f"{type(self).__name__} has no closed-form KL: pass the samples z")
        zs = tf.transpose(z, [1, 0, 2])  # (samples, batch, latent): q's batch axis last
        return tf.reduce_mean(q.log_prob(zs) - self.log_prob(zs), axis=0)

    def initialize(self, images, seed: int, labels=None) -> None:
        """Sets the prior's variables from training images (and their integer labels, which a
        per-class prior needs) before a run's first step (the VampPrior's pseudo-inputs); a
        function of (images, labels, seed) alone. Nothing by default."""

    def given(self, label):
        """p(z | y) for a batch of integer labels y (a conditional model, --condition label): the
        same prior for a prior that does not depend on the label (this default), the class's
        Gaussian for `ClassPrior`."""
        return self

    def kl_per_dimension(self, q):
        """KL(q_j || p_j) per latent dimension j, shape (batch, latent_dim), for factorized priors
        with a closed form; None otherwise (free bits need it)."""
        return None

    # ------------------------------------------------------------------ exports
    def mixture(self) -> dict:
        """The prior as a mixture of diagonal Gaussians, as numpy arrays: {"weights" (K,), "loc"
        (K, latent), "scale" (K, latent)}; the exports draw z on a device from it."""
        raise TfvaeError(f"the prior {type(self).__name__} is not a mixture of diagonal Gaussians, which the exports "
                         "draw z on a device from; give it a mixture() of weights, loc and scale")


class StandardNormal(Prior):
    """p(z) = N(0, I), the course's prior: no variables, KL in closed form."""

    closed_form_kl = True
    description = "N(0, I)"

    def distribution(self):
        zeros = tf.zeros([self.latent_dim], dtype=tf.float32)
        return tfd.Independent(tfd.Normal(loc=zeros, scale=tf.ones_like(zeros)), reinterpreted_batch_ndims=1)

    def sample(self, n: int, seed):
        return tf.random.stateless_normal([n, self.latent_dim], seed)

    def sample_in_graph(self, n):
        return tf.random.normal(tf.stack([n, self.latent_dim]))

    def kl(self, q, z=None):
        """KL(q || N(0, I)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2), by tfd.kl_divergence."""
        return tfd.kl_divergence(q, self.distribution())

    def kl_per_dimension(self, q):
        return tfd.kl_divergence(q.distribution, self.distribution().distribution)

    def marginal_quantiles(self, probabilities, dims) -> np.ndarray:
        from statistics import NormalDist

        ticks = np.array([NormalDist().inv_cdf(p) for p in probabilities], np.float32)
        return np.repeat(ticks[:, None], len(dims), axis=1)

    def mixture(self) -> dict:
        d = self.latent_dim
        return {"weights": np.ones(1, np.float32), "loc": np.zeros((1, d), np.float32),
                "scale": np.ones((1, d), np.float32)}


SOFTPLUS_INVERSE_OF_1 = float(np.log(np.expm1(1.0)))  # raw scales start at softplus^-1(1): sigma = 1
LOG_2PI = float(np.log(2.0 * np.pi))


def log_diagonal_gaussians(z, loc, scale):
    """log N(z; loc_k, diag(scale_k^2)) for each of K components: z (..., d), loc and scale (K, d)
    -> (..., K).

    The squared distances sum_j (z_j - loc_kj)^2 / scale_kj^2 are expanded into two matrix
    products, z^2 . (1/scale^2) - 2 z . (loc/scale^2) + sum_j loc_kj^2/scale_kj^2, computed in
    float64 (the expansion cancels where z is near a narrow component; float64 keeps it exact to
    float32's precision): no (batch, K, d) tensor, 4x faster than the direct form for K = 500.
    """
    shape = tf.shape(z)
    d = loc.shape[-1]
    flat = tf.cast(tf.reshape(z, [-1, d]), tf.float64)
    precision = tf.cast(1.0 / tf.square(scale), tf.float64)  # (K, d)
    loc64 = tf.cast(loc, tf.float64)
    squared = (tf.matmul(tf.square(flat), precision, transpose_b=True)
               - 2.0 * tf.matmul(flat, loc64 * precision, transpose_b=True)
               + tf.reduce_sum(tf.square(loc64) * precision, axis=-1))  # (N, K)
    log_n = -0.5 * tf.cast(tf.maximum(squared, 0.0), tf.float32) - tf.reduce_sum(tf.math.log(scale), axis=-1) \
        - 0.5 * LOG_2PI * float(d)
    return tf.reshape(log_n, tf.concat([shape[:-1], tf.shape(loc)[:1]], axis=0))


def log_diagonal_gaussians_per_example(z, loc, scale):
    """log N(z_b; loc_bk, diag(scale_bk^2)) with components of each example's own: z (batch, d) or
    (batch, samples, d), loc and scale (batch, K, d) -> (batch, K) or (batch, samples, K). The same
    float64 expansion as `log_diagonal_gaussians`, as batched matrix products."""
    rank2 = z.shape.rank == 2
    zb = tf.cast(z[:, None, :] if rank2 else z, tf.float64)  # (batch, samples, d)
    precision = tf.cast(1.0 / tf.square(scale), tf.float64)  # (batch, K, d)
    loc64 = tf.cast(loc, tf.float64)
    squared = (tf.matmul(tf.square(zb), precision, transpose_b=True)
               - 2.0 * tf.matmul(zb, loc64 * precision, transpose_b=True)
               + tf.reduce_sum(tf.square(loc64) * precision, axis=-1)[:, None, :])  # (batch, samples, K)
    log_n = -0.5 * tf.cast(tf.maximum(squared, 0.0), tf.float32) \
        - tf.reduce_sum(tf.math.log(scale), axis=-1)[:, None, :] - 0.5 * LOG_2PI * float(loc.shape[-1])
    return log_n[:, 0, :] if rank2 else log_n


def log_mixture_of_diagonal_gaussians(z, log_weights, loc, scale):
    """log sum_k w_k N(z; loc_k, diag(scale_k^2)) for z (..., d), log_weights (K,), loc and scale
    (K, d) (the component densities by `log_diagonal_gaussians`)."""
    return tf.reduce_logsumexp(log_diagonal_gaussians(z, loc, scale) + log_weights, axis=-1)


class MixturePrior(Prior):
    """A prior that is a mixture of K diagonal Gaussians (learned or computed): `components()`
    gives (log_weights (K,), loc (K, d), scale (K, d)); log p(z), sampling in and out of a graph
    and the export's mixture follow from it. Its KL to q has no closed form (Monte Carlo)."""

    closed_form_kl = False

    @abc.abstractmethod
    def components(self):
        """(log_weights (K,), loc (K, latent), scale (K, latent)) as tensors."""

    def distribution(self):
        log_w, loc, scale = self.components()
        return tfd.MixtureSameFamily(tfd.Categorical(logits=log_w),
                                     tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1))

    def log_prob(self, z):
        log_w, loc, scale = self.components()
        return log_mixture_of_diagonal_gaussians(z, tf.nn.log_softmax(log_w), loc, scale)

    def sample(self, n: int, seed):
        log_w, loc, scale = self.components()
        seeds = tf.random.experimental.stateless_split(tf.cast(tf.convert_to_tensor(seed), tf.int32), 2)
        k = tf.random.stateless_categorical(log_w[None], n, seeds[0], dtype=tf.int32)[0]
        eps = tf.random.stateless_normal([n, self.latent_dim], seeds[1])
        return tf.gather(loc, k) + tf.gather(scale, k) * eps

    def sample_in_graph(self, n):
        """A component k per draw (MULTINOMIAL), then loc_k + scale_k * eps (RANDOM_STANDARD_NORMAL):
        TFLite builtins."""
        log_w, loc, scale = self.components()
        k = tf.random.categorical(log_w[None], n, dtype=tf.int32)[0]
        eps = tf.random.normal(tf.stack([n, self.latent_dim]))
        return tf.gather(loc, k) + tf.gather(scale, k) * eps

    def mixture(self) -> dict:
        log_w, loc, scale = self.components()
        return {"weights": tf.nn.softmax(log_w).numpy().astype(np.float32),
                "loc": np.asarray(loc, np.float32), "scale": np.asarray(scale, np.float32)}


class LearnedGaussians(MixturePrior):
    """K learned diagonal Gaussians held in a `Parameters` layer named "prior": means `loc`
    (starting at N(0, loc_stddev^2) draws), scales softplus(`raw_scale`) + min_scale (starting at
    1), and, with `learned_weights`, the mixture's `logits` (starting equal; else the weights are
    fixed and equal)."""

    def __init__(self, latent_dim: int, components: int, min_scale: float, layer, loc_stddev: float,
                 learned_weights: bool):
        from tfvae.layers import Parameters  # a Keras layer: imported when a model is built

        super().__init__(latent_dim)
        self.k, self.min_scale = int(components), float(min_scale)
        k, d = self.k, self.latent_dim
        shapes = {"logits": (k,)} if learned_weights else {}
        self._layer = layer or Parameters(
            {**shapes, "loc": (k, d), "raw_scale": (k, d)},
            {"loc": {"class_name": "RandomNormal", "config": {"stddev": loc_stddev}},
             "raw_scale": {"class_name": "Constant", "config": {"value": SOFTPLUS_INVERSE_OF_1}}},
            name="prior")
        self.learned_weights = learned_weights

    @property
    def layer(self):
        return self._layer

    def components(self):
        log_w = self._layer["logits"] if self.learned_weights else tf.zeros([self.k])
        return log_w, self._layer["loc"], tf.nn.softplus(self._layer["raw_scale"]) + self.min_scale


class MixtureOfGaussians(LearnedGaussians):
    """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)), pi = softmax(logits): all learned.

    The means start at N(0, 1) draws, the scales at 1, the weights equal (`--prior mog`).
    """

    def __init__(self, latent_dim: int, components: int, min_scale: float = 1e-3, layer=None):
        super().__init__(latent_dim, components, min_scale, layer, loc_stddev=1.0, learned_weights=True)
        self.description = f"a learned mixture of {self.k} Gaussians"


class VampPrior(MixturePrior):
    """The VampPrior (Tomczak & Welling, 2018): p(z) = (1/K) sum_k q(z | u_k), the encoder's
    posterior at K learned pseudo-inputs u_k (images, clipped to [0, 1] as the reference code's
    hardtanh does).

    Args:
      latent_dim: d.
      components: K, the number of pseudo-inputs.
      image_shape: the shape of one pseudo-input.
      posterior: a function u -> (loc (K, d), scale (K, d)) of q(z|u) (the family's encoder).
      init: "data" (`initialize` puts K random training images there, plus N(0, 0.01) noise) or
        "noise" (N(0.05, 0.01) pixels, the reference code's pseudo-input initialisation).
    """

    NOISE_MEAN, NOISE_STD = 0.05, 0.01

    def __init__(self, latent_dim: int, components: int, image_shape, posterior, init: str = "data",
                 layer=None):
        from tfvae.layers import Parameters

        super().__init__(latent_dim)
        self.k, self.image_shape, self.init = int(components), tuple(image_shape), init
        self.posterior = posterior
        self.description = f"a VampPrior of {self.k} pseudo-inputs"
        self._layer = layer or Parameters(
            {"pseudo_inputs": (self.k, *self.image_shape)},
            {"pseudo_inputs": {"class_name": "RandomNormal",
                               "config": {"mean": self.NOISE_MEAN, "stddev": self.NOISE_STD}}},
            name="prior")

    @property
    def layer(self):
        return self._layer

    def pseudo_inputs(self):
        """u_k in [0, 1], shape (K, *image_shape)."""
        return tf.clip_by_value(self._layer["pseudo_inputs"], 0.0, 1.0)

    def components(self):
        loc, scale = self.posterior(self.pseudo_inputs())
        return tf.zeros([self.k], loc.dtype), loc, scale

    def initialize(self, images, seed: int, labels=None) -> None:
        """With init "data": K distinct random training images (floats in [0, 1]) plus N(0, 0.01)."""
        if self.init != "data":
            return
        from tfvae.data import as_float

        rng = np.random.default_rng([int(seed), 7411])
        picks = rng.choice(len(images), size=self.k, replace=self.k > len(images))
        u = as_float(np.asarray(images[np.sort(picks)])).reshape((self.k, *self.image_shape))
        u = u + self.NOISE_STD * rng.standard_normal(u.shape)
        self._layer["pseudo_inputs"].assign(u.astype(np.float32))


class ClassPrior(LearnedGaussians):
    """p(z | y) = N(z; mu_y, diag(sigma_y^2)), one learned Gaussian per class (`--prior class`,
    with `--condition label`): the conditional VAE's learned prior (Sohn et al., 2015). Bound to a
    batch's labels (`given`) it is a diagonal Gaussian per example with the KL in closed form
    (tfd.kl_divergence); unbound it is the mixture of the classes with equal weights (p(z), what
    an export without a label draws from). The means start at N(0, 0.01) draws, the scales at 1.
    """

    closed_form_kl = True  # of the bound prior, the only one the bounds use

    def __init__(self, latent_dim: int, classes: int, min_scale: float = 1e-3, layer=None):
        super().__init__(latent_dim, classes, min_scale, layer, loc_stddev=0.1, learned_weights=False)
        self.description = f"a learned Gaussian per class ({self.k} classes)"

    def given(self, label):
        _, loc, scale = self.components()
        label = tf.cast(label, tf.int32)
        return DiagonalGaussianPrior(tf.gather(loc, label), tf.gather(scale, label),
                                     f"N(mu_y, sigma_y^2) of {self.k} classes")

    def kl(self, q, z=None):
        raise TfvaeError("the per-class prior's KL needs the labels: use prior.given(labels).kl(q)")

    def mixture(self) -> dict:
        out = super().mixture()
        out["per_class"] = True  # component k is class k's p(z | y = k)
        return out


class ClassVampPrior(VampPrior):
    """The VampPrior of a conditional model (`--prior vamp` with `--condition label`): K learned
    pseudo-inputs split equally among the classes, u_{y,1..K_y} with K_y = K / classes, and
    p(z | y) = (1/K_y) sum_k q(z | u_{y,k}, y), the conditional encoder's posterior at class y's
    pseudo-inputs (Tomczak & Welling's prior, one per class: an approximation of the aggregate
    posterior of class y). Bound to a batch's labels (`given`) it is a mixture per example
    (`ClassMixture`; the KL to q by Monte Carlo); unbound, the mixture of every class's
    components with equal weights (p(z) for equally frequent classes).

    Args:
      posterior: a function (u, labels) -> (loc (K, d), scale (K, d)) of q(z|u, y).
      classes: the number of labels; K must be a multiple of it.
    """

    def __init__(self, latent_dim: int, components: int, image_shape, posterior, classes: int,
                 init: str = "data", layer=None):
        if int(components) % int(classes) or int(components) < int(classes):
            from tfvae.errors import ConfigError

            raise ConfigError(f"--prior vamp with --condition label splits its {components} pseudo-inputs among "
                              f"the {classes} classes: give --prior-components a multiple of {classes} "
                              f"(e.g. {classes * max(1, int(components) // int(classes))})")
        super().__init__(latent_dim, components, image_shape, posterior, init, layer)
        self.classes, self.per_class = int(classes), int(components) // int(classes)
        self.component_class = np.repeat(np.arange(self.classes, dtype=np.int32), self.per_class)
        self.description = (f"a VampPrior per class ({self.per_class} pseudo-inputs for each of {self.classes} "
                            "classes)")

    def components(self):
        loc, scale = self.posterior(self.pseudo_inputs(), tf.constant(self.component_class))
        return tf.zeros([self.k], loc.dtype), loc, scale

    def initialize(self, images, seed: int, labels=None) -> None:
        """With init "data": for each class, K_y distinct random training images of that class
        (plus N(0, 0.01) noise); a class without training images (--classes) keeps noise."""
        if self.init != "data":
            return
        if labels is None:
            raise TfvaeError("the per-class VampPrior starts from training images of each class: give their labels")
        from tfvae.data import as_float

        rng = np.random.default_rng([int(seed), 7411])
        labels = np.asarray(labels)
        u = self._layer["pseudo_inputs"].numpy()
        for c in range(self.classes):
            of_class = np.flatnonzero(labels == c)
            if not len(of_class):
                continue
            picks = np.sort(rng.choice(of_class, size=self.per_class, replace=self.per_class > len(of_class)))
            rows = slice(c * self.per_class, (c + 1) * self.per_class)
            u[rows] = as_float(np.asarray(images[picks])).reshape((self.per_class, *self.image_shape)) \
                + self.NOISE_STD * rng.standard_normal((self.per_class, *self.image_shape))
        self._layer["pseudo_inputs"].assign(u.astype(np.float32))

    def given(self, label):
        _, loc, scale = self.components()
        return ClassMixture(loc, scale, self.classes, label)

    def kl(self, q, z=None):
        raise TfvaeError("the per-class VampPrior's KL needs the labels: use prior.given(labels).kl(q, z)")

    def mixture(self) -> dict:
        out = super().mixture()
        out["component_class"] = self.component_class  # component k belongs to p(z | y = component_class[k])
        return out


class ExPostPrior(MixturePrior):
    """The ex-post prior (`tfvae fit-prior`): a mixture of K diagonal Gaussians fitted to the
    aggregate posterior (1/N) sum_n q(z | x_n) of a trained model's training images, once, after
    training, and stored (Ghosh et al., 2020, ex-post density estimation). The aggregate posterior
    is the prior that maximizes the training ELBO for the trained networks; a learned prior only
    approximates it. `tfvae.expost` fits either a Gaussian mixture by EM to draws from it, or
    takes K training images' posteriors as the components (the Exemplar VAE's prior, Norouzi et
    al., 2020). Nothing here is trained: `fit(log_weights, loc, scale)` sets the components.
    """

    def __init__(self, latent_dim: int, components: int, layer=None):
        from tfvae.layers import Parameters

        super().__init__(latent_dim)
        self.k = int(components)
        self._layer = layer or Parameters(
            {"logits": (self.k,), "loc": (self.k, self.latent_dim), "scale": (self.k, self.latent_dim)},
            {"scale": {"class_name": "Constant", "config": {"value": 1.0}}}, name="prior")
        self.description = f"an ex-post mixture of {self.k} Gaussians fitted to the aggregate posterior"

    @property
    def layer(self):
        return self._layer

    @property
    def trainable_variables(self) -> list:
        return []  # fitted once, never trained

    def components(self):
        return self._layer["logits"], self._layer["loc"], self._layer["scale"]

    def fit(self, log_weights, loc, scale) -> None:
        """Sets the K components: log weights (K,) (up to a constant; per class for a conditional
        model), means and standard deviations (K, d)."""
        log_weights = np.asarray(log_weights, np.float32)
        loc, scale = np.asarray(loc, np.float32), np.asarray(scale, np.float32)
        if loc.shape != (self.k, self.latent_dim) or scale.shape != loc.shape or log_weights.shape != (self.k,):
            raise ValueError(f"the ex-post prior has {self.k} components of {self.latent_dim} dimensions; got "
                             f"log_weights {log_weights.shape}, loc {loc.shape} and scale {scale.shape}")
        if not (np.all(np.isfinite(loc)) and np.all(scale > 0) and np.all(np.isfinite(scale))
                and np.all(np.isfinite(log_weights))):
            raise TfvaeError("the posteriors the ex-post prior was fitted to are not finite (a diverged run?); "
                             "fit it to a run whose training did not diverge")
        self._layer["logits"].assign(log_weights)
        self._layer["loc"].assign(loc)
        self._layer["scale"].assign(scale)


class ClassExPostPrior(ExPostPrior):
    """The ex-post prior of a conditional model: K / classes components for each class, fitted to
    class y's aggregate posterior, and p(z | y) their mixture, the weights of class y's components
    normalized among them (bound to a batch's labels, a `ClassMixture`; the KL to q by Monte
    Carlo). A class without training images (--classes) holds N(0, I) components, never drawn: a
    label the run was not trained on is refused before any draw."""

    def __init__(self, latent_dim: int, components: int, classes: int, layer=None):
        if int(components) % int(classes) or int(components) < int(classes):
            from tfvae.errors import ConfigError

            raise ConfigError(f"the ex-post prior of a conditional model takes the same number of images from each "
                              f"of the {classes} classes: give a number of components that is a multiple of "
                              f"{classes} (e.g. {classes * max(1, int(components) // int(classes))})")
        super().__init__(latent_dim, components, layer)
        self.classes, self.per_class = int(classes), int(components) // int(classes)
        self.component_class = np.repeat(np.arange(self.classes, dtype=np.int32), self.per_class)
        self.description = (f"an ex-post mixture per class, {self.per_class} Gaussians for each of {self.classes} "
                            "classes, fitted to its aggregate posterior")

    def class_log_weights(self):
        """log w_k normalized within each class: (K,)."""
        logits = tf.reshape(self._layer["logits"], [self.classes, self.per_class])
        return tf.reshape(tf.nn.log_softmax(logits, axis=-1), [-1])

    def components(self):
        """Unbound: p(z) for equally frequent classes, each class's weights summing to 1/classes."""
        return self.class_log_weights(), self._layer["loc"], self._layer["scale"]

    def given(self, label):
        return ClassMixture(self._layer["loc"], self._layer["scale"], self.classes, label,
                            "p(z|y): an ex-post mixture per class", log_weights=self.class_log_weights())

    def kl(self, q, z=None):
        raise TfvaeError("the per-class ex-post prior's KL needs the labels: use prior.given(labels).kl(q, z)")

    def mixture(self) -> dict:
        out = super().mixture()
        out["component_class"] = self.component_class
        return out


class ClassMixture(Prior):
    """p(z | y_b) for each example b of a batch: the mixture of the components of class y_b
    (components grouped by class, K_y of each: loc and scale (classes * K_y, d)), equally weighted
    (a `ClassVampPrior` bound to the batch's labels) or by `log_weights` (classes * K_y,),
    normalized within each class (a `ClassExPostPrior`'s). log_prob takes z of shape (batch, d) or
    (batch, samples, d); the KL to q is the Monte Carlo estimate over the bound's samples."""

    def __init__(self, loc, scale, classes: int, label, description: str = "a mixture per class", log_weights=None):
        super().__init__(int(loc.shape[-1]))
        self.loc, self.scale, self.classes, self.description = loc, scale, int(classes), description
        self.per_class = int(loc.shape[0]) // self.classes
        self.label = tf.cast(tf.reshape(tf.convert_to_tensor(label), [-1]), tf.int32)
        # log w_{y,k}, normalized within each class (None: equal weights, 1/K_y)
        self.log_weights = None if log_weights is None else tf.reshape(log_weights, [self.classes, self.per_class])

    def _label_log_weights(self, labels):
        """(len(labels), K_y): the log weights of each label's components."""
        if self.log_weights is None:
            return tf.fill(tf.stack([tf.shape(labels)[0], self.per_class]), -float(np.log(self.per_class)))
        return tf.gather(self.log_weights, labels)

    def _labels(self, n):
        """The labels of n draws: the bound labels, or one label for every draw."""
        return tf.broadcast_to(self.label, tf.reshape(n, [1]))

    def distribution(self):
        k = self.per_class
        loc = tf.gather(tf.reshape(self.loc, [self.classes, k, -1]), self.label)  # (batch, K_y, d)
        scale = tf.gather(tf.reshape(self.scale, [self.classes, k, -1]), self.label)
        return tfd.MixtureSameFamily(tfd.Categorical(logits=self._label_log_weights(self.label)),
                                     tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1))

    def log_prob(self, z):
        """log sum_k w_{y,k} N(z; loc_{y,k}, scale_{y,k}) (w = 1/K_y unless weighted): for example b,
        the densities of class y_b's K_y components only (`log_diagonal_gaussians_per_example`),
        so the cost grows with K_y, not with every class's K."""
        z = tf.convert_to_tensor(z, tf.float32)
        k = self.per_class
        loc = tf.gather(tf.reshape(self.loc, [self.classes, k, -1]), self.label)  # (batch, K_y, d)
        scale = tf.gather(tf.reshape(self.scale, [self.classes, k, -1]), self.label)
        log_n = log_diagonal_gaussians_per_example(z, loc, scale)  # (batch[, samples], K_y)
        if self.log_weights is None:
            return tf.reduce_logsumexp(log_n, axis=-1) - float(np.log(k))
        log_w = tf.gather(self.log_weights, self.label)  # (batch, K_y)
        return tf.reduce_logsumexp(log_n + (log_w if z.shape.rank == 2 else log_w[:, None, :]), axis=-1)

    def kl(self, q, z=None):
        if z is None:
            raise ValueError("the per-class VampPrior has no closed-form KL: pass the samples z")
        zs = tf.transpose(z, [1, 0, 2])  # (samples, batch, latent): q's batch axis last
        return tf.reduce_mean(q.log_prob(zs) - tf.transpose(self.log_prob(z)), axis=0)

    def _draw(self, n, k, eps):
        index = self._labels(n) * self.per_class + k
        return tf.gather(self.loc, index) + tf.gather(self.scale, index) * eps

    def sample(self, n: int, seed):
        seeds = tf.random.experimental.stateless_split(tf.cast(tf.convert_to_tensor(seed), tf.int32), 2)
        if self.log_weights is None:
            k = tf.random.stateless_uniform([n], seeds[0], 0, self.per_class, dtype=tf.int32)
        else:  # a component of the label's by its weight
            k = tf.random.stateless_categorical(self._label_log_weights(self._labels(n)), 1, seeds[0],
                                                dtype=tf.int32)[:, 0]
        return self._draw(n, k, tf.random.stateless_normal([n, self.latent_dim], seeds[1]))

    def sample_in_graph(self, n):
        """A component of the label's K_y per draw, by weight (MULTINOMIAL), then loc + scale * eps
        (RANDOM_STANDARD_NORMAL): TFLite builtins."""
        if self.log_weights is None:
            k = tf.random.categorical(tf.zeros([1, self.per_class]), n, dtype=tf.int32)[0]
        else:
            k = tf.random.categorical(self._label_log_weights(self._labels(n)), 1, dtype=tf.int32)[:, 0]
        return self._draw(n, k, tf.random.normal(tf.stack([n, self.latent_dim])))


class DiagonalGaussianPrior(Prior):
    """p(z) = N(loc, diag(scale^2)) with parameters per example (loc, scale of shape (batch, d)):
    a `ClassPrior` bound to a batch's labels. log_prob takes z of shape (batch, d) or
    (batch, samples, d); KL to a diagonal-Gaussian posterior in closed form."""

    closed_form_kl = True

    def __init__(self, loc, scale, description: str = "a diagonal Gaussian"):
        super().__init__(int(loc.shape[-1]))
        self.loc, self.scale, self.description = loc, scale, description

    def distribution(self):
        return tfd.Independent(tfd.Normal(self.loc, self.scale), reinterpreted_batch_ndims=1)

    def log_prob(self, z):
        loc, scale = self.loc, self.scale
        if z.shape.rank == 3:  # (batch, samples, d): the same example's parameters for each sample
            loc, scale = loc[:, None, :], scale[:, None, :]
        return tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=-1)

    def sample(self, n: int, seed):
        eps = tf.random.stateless_normal(tf.shape(self.loc), tf.cast(tf.convert_to_tensor(seed), tf.int32))
        return self.loc + self.scale * eps

    def sample_in_graph(self, n):
        return self.loc + self.scale * tf.random.normal(tf.shape(self.loc))

    def kl(self, q, z=None):
        return tfd.kl_divergence(q, self.distribution())

    def kl_per_dimension(self, q):
        return tfd.kl_divergence(q.distribution, tfd.Normal(self.loc, self.scale))

    def marginal_quantiles(self, probabilities, dims) -> np.ndarray:
        """Of the first example's Gaussian: loc_j + scale_j * Phi^-1(p) (the manifold of one class)."""
        from statistics import NormalDist

        ticks = np.array([NormalDist().inv_cdf(p) for p in probabilities], np.float32)
        loc, scale = np.asarray(self.loc)[0, list(dims)], np.asarray(self.scale)[0, list(dims)]
        return (loc[None, :] + scale[None, :] * ticks[:, None]).astype(np.float32)


PRIORS = ("normal", "mog", "vamp", "class", "expost")


def standard_normal_prior(latent_dim: int):
    """The tfd distribution N(0, I) over `latent_dim` dimensions."""
    return StandardNormal(latent_dim).distribution()
