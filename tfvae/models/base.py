"""The model-family protocol: what the trainer, evaluation, pictures and export ask of a family.

A family is a class registered with `@register` (usually one file in this package, found there
automatically). It owns:

- its name (`--model NAME`), a one-line summary, its options (`Option`s: the command line,
  the config check and config.json are derived from them) and extra checks of a config;
- its networks (an encoder head on tfvae.networks' features, the decoder) and distributions
  (likelihood; posterior and prior for the variational kinds), and the Keras `parts` that hold
  its variables (checkpoints, model.keras, early stopping's weights and exports track them all);
- the noise a batch needs (`draw_noise`), per-step values such as a KL weight (`schedule`),
  and its objective: `loss(x, noise, schedule) -> (loss per example, {metric: per example})`
  with the metric names it declares (`metric_names`, "loss" first);
- whether XLA suits its training step, its epoch picture, its held-out terms and anomaly score,
  and its SavedModel signatures.

Two kinds share most of that: `Autoencoder` (a deterministic code h, a reconstruction loss)
and `Variational` (q(z|x), a prior p(z), the ELBO). Module-level code here imports no
TensorFlow (tfvae.lazy), so the command line can read the registry before TensorFlow starts.
"""

from __future__ import annotations

import abc
import copy
import math
import os
from typing import ClassVar

import numpy as np

from tfvae.config import Option
from tfvae.errors import ConfigError
from tfvae.lazy import keras, tf

FAMILIES: dict = {}  # name -> family class, in registration order

# The layers that produce distribution parameters compute in float32 even under a mixed-precision
# policy (--mixed-precision): probabilities, KL and losses stay in float32.
HEAD = "float32"


def register(cls):
    """Class decorator: adds a family to the registry under `cls.name`.

    Refuses a second family of the same name, and an option name that another family declares
    differently (one option, one meaning, on the command line).
    """
    name = cls.__dict__.get("name")
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__name__} needs a class attribute `name` (its --model value)")
    if name in FAMILIES and FAMILIES[name] is not cls:
        raise ValueError(f"a model family named {name!r} is already registered ({FAMILIES[name].__name__})")
    seen = {o.name: o for family in FAMILIES.values() if family is not cls for o in family.options}
    for option in cls.options:
        if option.name in seen and seen[option.name] != option:
            raise ValueError(f"option {option.name!r} of {name!r} differs from the one another family declares")
    if "loss" != cls.metric_names[0]:
        raise ValueError(f"{name!r}: metric_names must start with 'loss'")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"model family {name!r} ({cls.__name__}) must define {', '.join(missing)}")
    FAMILIES[name] = cls
    return cls


class Family(abc.ABC):
    """The base of every model family; see the module docstring for the protocol.

    Args:
      config: a `tfvae.config.Config` whose `model` is this family.
      image_shape: (height, width, channels).
      parts: existing Keras parts by name (from a saved model); built from the config if None.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    options: ClassVar[tuple] = ()
    metric_names: ClassVar[tuple] = ("loss",)
    variational: ClassVar[bool] = False  # a posterior and a prior: samples, log p(x), the ELBO as a score
    score_description: ClassVar[str] = ""
    # whether --network conv takes several --hidden sizes (dense layers beside the convolutions)
    conv_takes_hidden_layers: ClassVar[bool] = False
    # whether --condition label works: the family uses tfvae.networks' encoder and decoder, which
    # then take the label, and calls them only through self.encoder / self.decoder (see `given`)
    takes_condition: ClassVar[bool] = True
    _bound = False  # a view bound to labels (`given`)

    # ------------------------------------------------------------------ config
    @classmethod
    def check_config(cls, config) -> None:
        """Extra checks of a config of this family (each option's own check has run)."""

    @classmethod
    def check_given(cls, config, given) -> None:
        """Refuses explicitly given options that this config would ignore."""

    @classmethod
    def implied_options(cls, config) -> set:
        """Options that mean nothing in this config and hold their defaults: config.json leaves
        them out (a run with the N(0, I) prior writes no prior size, so earlier versions read it)."""
        return set()

    @classmethod
    def unused_options(cls, config) -> set:
        """The family's options that this config ignores whatever their values (a Gaussian
        likelihood's scale in a Bernoulli run): `tfvae info` leaves them out."""
        return set()

    @classmethod
    def warmup_epochs(cls, config) -> int:
        """Epochs during which the loss falls by design (a KL warm-up): early stopping does not
        count them."""
        return 0

    @classmethod
    def uses_xla(cls, network: str, on_gpu: bool) -> bool:
        """Whether `--jit auto` compiles this family's step with XLA: MLPs; convolutions on GPUs
        only (on CPUs XLA made the conv step many times slower)."""
        return network == "mlp" or on_gpu

    # ------------------------------------------------------------------ construction
    def __init__(self, config, image_shape, parts=None):
        if config.model != self.name:
            raise ConfigError(f"a --model {config.model} config cannot build a --model {self.name} family")
        self.config = config
        self.image_shape = tuple(int(d) for d in image_shape)
        self.likelihood = self.make_likelihood()
        self.posterior_dist = self.make_posterior()
        parts = dict(parts or {})
        self.encoder = parts.pop("encoder", None) or self.build_encoder()
        self.decoder = parts.pop("decoder", None) or self.build_decoder()
        self.build_extra(parts)
        self._keras_model = None

    def build_encoder(self):
        """The encoder network (tfvae.networks' mlp or conv, ending in `encoder_head`)."""
        from tfvae.networks import build_encoder

        return build_encoder(self.config, self.image_shape, self.encoder_head)

    def build_decoder(self):
        """The decoder network: z -> the likelihood's parameters (tfvae.networks)."""
        from tfvae.networks import build_decoder

        return build_decoder(self.config, self.image_shape, self.likelihood)

    @abc.abstractmethod
    def make_likelihood(self):
        """p(x|z): the `tfvae.probability.Likelihood` the decoder parameterises."""

    def make_posterior(self):
        """q(z|x) for the variational kinds (its head ends the encoder); None for autoencoders."""
        return None

    @abc.abstractmethod
    def encoder_head(self, features) -> dict:
        """The encoder's last layer(s) on the features: the outputs the family reads."""

    def build_extra(self, parts: dict) -> None:
        """Builds (or takes from `parts`) whatever else holds variables, e.g. a learned prior."""

    def initialize(self, images, seed: int, labels=None) -> None:
        """Sets variables from the training images (and their labels) before a new run's first
        step (a VampPrior's pseudo-inputs); a function of (images, labels, seed) alone. Nothing by
        default."""

    @property
    def extra_parts(self) -> dict:
        """Keras layers beyond the encoder and decoder that hold variables, by name."""
        return {}

    # ------------------------------------------------------------------ conditioning on the label
    @property
    def conditional(self) -> bool:
        """Whether the model is conditioned on the label (--condition label): q(z|x, y), p(x|z, y)."""
        return self.config.condition == "label"

    def given(self, label, one_per_row: bool = False):
        """This model with its networks and prior bound to integer labels y (one per example):
        every method of the view (loss, encode, decode_mean, sample, held_out_terms, ...) computes
        the conditional quantity (q(z|x, y), p(x|z, y), p(z|y)). A model without --condition label
        returns itself for label None. The view shares the model's variables; it is for computing,
        not for saving. `one_per_row`: every call of the decoder has one code per label (an
        export's programs: no shape arithmetic, which TFLite's 16x8 quantization lacks); otherwise
        a decoder call with L codes per label (L Monte Carlo samples, batch-major) repeats each
        label L times."""
        if not self.conditional or self._bound:
            if label is not None and not self._bound:
                raise ConfigError("this model was trained without --condition label; it takes no label")
            return self
        if label is None:
            raise ConfigError("this model is conditioned on the label (--condition label): give the label of each "
                              "image or sample (e.g. label=3, or --label 3)")
        view = copy.copy(self)
        view._bound, view._unbound = True, self
        # the one-hot rows of an identity matrix: a GATHER, which every TFLite quantization supports
        # (ONE_HOT has no 16x8 kernel)
        onehot = tf.gather(tf.eye(self.config.label_classes), tf.cast(label, tf.int32))
        encoder, decoder = self.encoder, self.decoder

        def encode(x, training=False):
            return encoder([tf.convert_to_tensor(x, tf.float32), onehot], training=training)

        def decode(z, training=False):  # z may hold several samples per label, batch-major
            z = tf.convert_to_tensor(z, tf.float32)
            n_z, n_y = z.shape[0], onehot.shape[0]
            if one_per_row or (n_z is not None and n_z == n_y):
                return decoder([z, onehot], training=training)
            rows = n_z // n_y if n_z is not None and n_y is not None else tf.shape(z)[0] // tf.shape(onehot)[0]
            return decoder([z, tf.repeat(onehot, rows, axis=0)], training=training)

        view.encoder, view.decoder = encode, decode
        if getattr(self, "prior", None) is not None:
            view.prior = self.prior.given(label)
        return view

    def label_rows(self, per_class: int):
        """Labels for a picture with a row per class: each class the model was trained on, repeated
        `per_class` times (numpy int32)."""
        classes = self.config.classes if self.config.classes is not None else range(self.config.label_classes)
        return np.repeat(np.asarray(sorted(classes), np.int32), per_class)

    @property
    def parts(self) -> dict:
        """Every Keras part holding variables, by name: encoder, decoder, then the extras (a view
        bound to labels has its model's)."""
        if self._bound:
            return self._unbound.parts
        return {"encoder": self.encoder, "decoder": self.decoder, **self.extra_parts}

    @property
    def trainable_variables(self) -> list:
        return [v for part in self.parts.values() for v in part.trainable_variables]

    # ------------------------------------------------------------------ training
    def draw_noise(self, batch_size: int, seed) -> dict:
        """All random numbers one training step needs for a batch, batch axis first.

        `binarize` (uniforms, dynamic binarization) or `dequantize` (uniforms, uniform
        dequantization) for every family; the family's own noise (`family_noise`) from two more
        stateless seeds.
        """
        seeds = tf.random.experimental.stateless_split(seed, num=3)
        noise = {}
        pixels = [batch_size, math.prod(self.image_shape)]  # flat: elementwise work on (batch, pixels) is fastest
        if self.config.binarization == "dynamic":
            noise["binarize"] = tf.random.stateless_uniform(pixels, seeds[0])
        elif self.config.dequantization == "uniform":
            noise["dequantize"] = tf.random.stateless_uniform(pixels, seeds[0])
        noise.update(self.family_noise(batch_size, seeds[1], seeds[2]))
        return noise

    def family_noise(self, batch_size: int, seed_a, seed_b) -> dict:
        """The family's own random numbers for a batch (corruption, eps, ...), from two seeds."""
        return {}

    def schedule(self, step, steps_per_epoch: int) -> dict:
        """Per-step values the loss depends on (e.g. a KL weight), computed outside the compiled
        step from the global step; their values at an epoch's last step go into metrics.csv."""
        return {}

    def eval_schedule(self) -> dict:
        """The schedule's values for held-out metrics (the end of any warm-up)."""
        return {}

    def loss(self, x, noise, schedule=None):
        """(loss per example, {metric: value per example}) on the batch x with the drawn noise.

        Dynamic binarization and uniform dequantization happen here; `objective` is the family's
        own formula.
        """
        if "binarize" in noise:
            from tfvae.objectives import binarize

            x = binarize(x, noise["binarize"])
        if "dequantize" in noise:
            from tfvae.objectives import dequantize

            x = dequantize(x, noise["dequantize"])
        return self.objective(x, noise, schedule if schedule is not None else self.eval_schedule())

    @abc.abstractmethod
    def objective(self, x, noise, schedule):
        """The family's formula: (loss, metrics) per example on the (binarized or dequantized) batch x."""

    # ------------------------------------------------------------------ using a model
    @abc.abstractmethod
    def code(self, encoder_outputs):
        """The point an image is encoded to: the code h, or the posterior mean."""

    def encode(self, x):
        """The code h (autoencoders) or the posterior mean (variational families)."""
        return self.code(self.encoder(x, training=False))

    def decode(self, z):
        """p(x|z) as a tfd distribution over images."""
        return self.likelihood.distribution(self.decoder(z, training=False))

    def decode_mean(self, z):
        """Pixel means E[x|z]."""
        return self.likelihood.mean(self.decoder(z, training=False))

    def reconstruct(self, x):
        """Pixel means of the reconstruction of x (through the code / the posterior mean)."""
        return self.decode_mean(self.encode(x))

    def encode_levels(self, x) -> dict:
        """{layer: posterior means} for a family with several stochastic layers (per-layer active
        units); empty for one layer."""
        return {}

    def posterior(self, x):
        raise ConfigError(f"--model {self.name} has no posterior; it encodes to a code h")

    def sample(self, n: int, seed, mean: bool = True):
        raise ConfigError(f"--model {self.name} has no prior to sample from; use a variational run")

    def reference_codes(self, n: int, seed: int, labels=None) -> np.ndarray:
        """n codes (numpy) the exports calibrate and measure the TFLite decoders on (a conditional
        model's for `reference_labels`)."""
        return np.random.default_rng(seed).standard_normal((n, self.config.latent_dim)).astype(np.float32)

    def reference_labels(self, n: int, seed: int):
        """n labels (int32, the trained classes in turn, shuffled by seed) to go with the reference
        codes of a conditional model; None for an unconditioned one."""
        if not self.conditional:
            return None
        classes = self.label_rows(1)
        return np.random.default_rng([seed, 17]).permutation(np.resize(classes, n)).astype(np.int32)

    @abc.abstractmethod
    def held_out_terms(self, x, seed, samples: int = 1) -> dict:
        """Per-image terms on held-out images (no training-time corruption), including `score`,
        the anomaly score (higher = explained worse). `seed` is a stateless seed tensor."""

    # ------------------------------------------------------------------ pictures
    def reconstruction_rows(self, x, seed: int = 0) -> list:
        """Rows of the reconstruction picture: the images, then their reconstructions."""
        return [x, self.reconstruct(x).numpy()]

    def epoch_image(self, images, seed, labels=None) -> np.ndarray:
        """The picture written after an epoch (uint8): prior samples, or images above their
        reconstructions; `images` are held-out images (`labels` theirs, for a conditional model),
        `seed` a stateless seed."""
        from tfvae import images as img

        return img.rows_grid(self.given(labels).reconstruction_rows(np.asarray(images, np.float32)))

    # ------------------------------------------------------------------ export
    def export_endpoints(self) -> dict:
        """{signature: (function, input signature)} of the SavedModel, serving_default first."""
        images = tf.TensorSpec([None, *self.image_shape], tf.float32, name="images")
        z = tf.TensorSpec([None, self.config.latent_dim], tf.float32, name="z")
        labels = self.export_label_spec()

        def reconstruct(images, label=None):
            return {"reconstructions": self.given(label, one_per_row=True).reconstruct(images)}

        def encode(images, label=None):
            out = self.given(label, one_per_row=True).encoder(images, training=False)
            return {k: tf.identity(v, name=k) for k, v in out.items()}

        def decode(z, label=None):
            return {"images": self.given(label, one_per_row=True).decode_mean(z)}

        return {"serving_default": (reconstruct, [images, *labels]), "encode": (encode, [images, *labels]),
                "decode": (decode, [z, *labels])}

    def export_label_spec(self) -> list:
        """[the `label` input of every signature] for a conditional model (an int32 per row), else []."""
        return [tf.TensorSpec([None], tf.int32, name="label")] if self.conditional else []

    def signature_descriptions(self) -> dict:
        """{signature: "inputs | outputs"} for the export's README (Markdown)."""
        (h, w, c), d = self.image_shape, self.config.latent_dim
        y = ", `label` int32 (N,)" if self.conditional else ""
        return {
            "serving_default": f"`images` float32 (N, {h}, {w}, {c}) in [0, 1]{y} | `reconstructions` (N, {h}, {w}, "
                               f"{c}) pixel means",
            "encode": f"`images`{y} | `code` (N, {d})",
            "decode": f"`z` float32 (N, {d}){y} | `images` (N, {h}, {w}, {c}) pixel means",
        }

    # ------------------------------------------------------------------ saving
    @property
    def keras_model(self):
        """One functional model: images -> encoder outputs, the reconstruction's pixel means, and
        the extra parts (a learned prior's variables) so that one file holds every variable."""
        if self._keras_model is None:
            x = keras.Input(self.image_shape, name="images")
            # a conditional model's one-hot label is the second input of both networks
            label = keras.Input((self.config.label_classes,), name="label") if self.conditional else None
            with_label = (lambda t: t) if label is None else (lambda t: [t, label])  # noqa: E731
            enc = self.encoder(with_label(x))
            code = self.code(enc)
            dec = self.decoder(with_label(code))
            inputs = with_label(x)
            if self.likelihood.kind == "bernoulli":
                mean = keras.layers.Activation("sigmoid", name="reconstruction")(dec["logits"])
            else:
                mean = keras.layers.Identity(name="reconstruction")(dec["loc"])
            extras = {name: layer(code) for name, layer in self.extra_parts.items()}
            self._keras_model = keras.Model(inputs, {**enc, "reconstruction": mean, **extras}, name="autoencoder")
        return self._keras_model

    def save(self, path: str) -> None:
        """Writes the model as a `.keras` file, atomically (a temporary file, then a rename)."""
        tmp = f"{path}.tmp-{os.getpid()}.keras"
        try:
            self.keras_model.save(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def from_keras_file(cls, path: str, config, image_shape):
        import tfvae.layers  # noqa: F401  (registers the custom layers)

        full = keras.models.load_model(path, compile=False)
        names = [layer.name for layer in full.layers]
        parts = {name: full.get_layer(name) for name in ("encoder", "decoder", *cls.extra_part_names(config))
                 if name in names}
        model = cls(config, image_shape, parts=parts)
        model._keras_model = full
        return model

    @classmethod
    def extra_part_names(cls, config) -> tuple:
        """The names of the extra parts a model of this config has (to find them in a file)."""
        return ()


# ====================================================================================== autoencoders
class Autoencoder(Family):
    """Deterministic autoencoders: a code h = f(x), a reconstruction g(h), a loss to minimise.

    The likelihood only names the reconstruction loss: summed cross-entropy (Bernoulli) or
    summed squared error (Gaussian).
    """

    options = (
        Option("code_activation", "linear", "activation of the code h.",
               choices=("linear", "sigmoid", "tanh", "relu")),
    )
    metric_names = ("loss", "reconstruction")
    score_description = "reconstruction loss"

    @classmethod
    def check_config(cls, config) -> None:
        if config.likelihood == "logistic":
            raise ConfigError(f"--likelihood logistic is a likelihood of the variational models; --model {config.model} "
                              "minimises a reconstruction loss: use --likelihood bernoulli (cross-entropy) or gaussian "
                              "(squared error)")

    def make_likelihood(self):
        from tfvae.probability import Likelihood

        return Likelihood(self.config.likelihood, "fixed")

    def encoder_head(self, features) -> dict:
        activation = None if self.config.code_activation == "linear" else self.config.code_activation
        return {"code": keras.layers.Dense(self.config.latent_dim, activation=activation, name="code",
                                           dtype=HEAD)(features)}

    def code(self, encoder_outputs):
        return encoder_outputs["code"]

    def reconstruction_loss(self, code, x):
        """L(x, g(h)) per example: the likelihood's loss of the decoded code against x."""
        return self.likelihood.reconstruction_loss(self.decoder(code), x)

    def objective(self, x, noise, schedule):
        code = self.encoder(x, training=True)["code"]
        loss = self.reconstruction_loss(code, x)
        return loss, {"loss": loss, "reconstruction": loss}

    def held_out_terms(self, x, seed, samples: int = 1) -> dict:
        recon = self.likelihood.reconstruction_loss(self.decoder(self.encode(x)), x)
        return {"reconstruction": recon, "score": recon}


# ====================================================================================== variational
class Variational(Family):
    """Variational autoencoders: q(z|x) a diagonal Gaussian, a prior p(z), z = loc + scale * eps.

    Subclasses set `samples_option` (the option naming how many eps a batch needs) and write
    their bound with the prior as an argument (tfvae.objectives).
    """

    options = (
        Option("gaussian_variance", "pixel", "Gaussian or logistic p(x|z): a learned scale per pixel, one per "
               "image, or fixed.", choices=("pixel", "image", "fixed")),
        Option("gaussian_scale", 0.1, "the fixed scale of --gaussian-variance fixed (the Gaussian's standard "
               "deviation, the logistic's scale)."),
        Option("min_scale", 1e-3, "floor of every learned standard deviation."),
        Option("prior", "normal", "p(z): N(0, I), a learned mixture of Gaussians, the VampPrior (a mixture "
               "of the posteriors of learned pseudo-inputs; with --condition label, a VampPrior per class, "
               "p(z|y)), or class: a learned Gaussian per class, p(z|y) (with --condition label). expost is "
               "not trained: `tfvae fit-prior RUN` fits it to a trained run (a mixture of training images' "
               "posteriors).", choices=("normal", "mog", "vamp", "class", "expost")),
        Option("prior_components", 500, "components K of --prior mog or vamp (pseudo-inputs of the VampPrior; "
               "with --condition label split equally among the classes; the training images of expost)."),
        Option("prior_init", "data", "the VampPrior's pseudo-inputs start as random training images or as "
               "noise.", choices=("data", "noise")),
    )
    variational = True
    samples_option: ClassVar[str] = ""
    score_description = "negative ELBO (nats)"

    # the prior options a prior does not use (a N(0, I) prior has no size, only the VampPrior has
    # pseudo-inputs to initialize)
    PRIOR_UNUSED: ClassVar[dict] = {"normal": ("prior_components", "prior_init"), "mog": ("prior_init",),
                                    "class": ("prior_components", "prior_init"), "expost": ("prior_init",)}

    @classmethod
    def check_config(cls, config) -> None:
        if config.prior == "class" and config.condition != "label":
            raise ConfigError("--prior class learns p(z|y), a Gaussian per class: it needs --condition label")

    @classmethod
    def implied_options(cls, config) -> set:
        defaults = {o.name: o.default for o in cls.options}
        unused = cls.PRIOR_UNUSED.get(config.prior, ()) + (("prior",) if config.prior == "normal" else ())
        return {name for name in unused if name in defaults and config.options.get(name) == defaults[name]}

    @classmethod
    def unused_options(cls, config) -> set:
        unused = set()
        if config.likelihood == "bernoulli":
            unused |= {"gaussian_variance", "gaussian_scale"}
        elif config.gaussian_variance != "fixed":
            unused.add("gaussian_scale")
        unused |= set(cls.PRIOR_UNUSED.get(config.prior, ()))
        return {name for name in unused if name in config.options}

    @classmethod
    def check_given(cls, config, given) -> None:
        for name in ("gaussian_variance", "gaussian_scale"):
            if name in given and config.likelihood == "bernoulli":
                raise ConfigError(f"--{name.replace('_', '-')} applies to --likelihood gaussian or logistic; drop "
                                  "it or change the likelihood")
        if "prior_components" in given and config.prior in ("normal", "class"):
            has = "N(0, I) has none" if config.prior == "normal" else "--prior class has one per class"
            raise ConfigError(f"--prior-components is the size of --prior mog or vamp; {has}: drop it "
                              "or choose --prior mog or vamp")
        if "prior_init" in given and config.prior != "vamp":
            raise ConfigError(f"--prior-init sets the VampPrior's pseudo-inputs; --prior {config.prior} has none: "
                              "drop it or choose --prior vamp")
        if "gaussian_scale" in given and config.gaussian_variance != "fixed":
            raise ConfigError("--gaussian-scale is the standard deviation of --gaussian-variance fixed; "
                              f"with --gaussian-variance {config.gaussian_variance} the scale is learned")

    def make_likelihood(self):
        from tfvae.probability import Likelihood

        c = self.config
        return Likelihood(c.likelihood, c.gaussian_variance, c.gaussian_scale, c.min_scale)

    def make_posterior(self):
        from tfvae.probability import DiagonalGaussianPosterior

        return DiagonalGaussianPosterior(self.config.latent_dim, self.config.min_scale)

    def make_prior(self, layer=None):
        """p(z) of `--prior` over the latent z (the top layer's, in a hierarchy); a learned prior
        takes its variables from `layer` when given (a saved model)."""
        from tfvae.probability import priors

        c = self.config
        if c.prior == "mog":
            return priors.MixtureOfGaussians(c.latent_dim, c.prior_components, c.min_scale, layer)
        if c.prior == "vamp" and c.condition == "label":
            eye = tf.eye(c.label_classes)

            def class_posterior(u, labels):
                out = self.encoder([u, tf.gather(eye, labels)])
                return out["loc"], out["scale"]

            return priors.ClassVampPrior(c.latent_dim, c.prior_components, self.image_shape, class_posterior,
                                         c.label_classes, c.prior_init, layer)
        if c.prior == "vamp":
            def posterior(u):
                out = self.encoder(u)
                return out["loc"], out["scale"]

            return priors.VampPrior(c.latent_dim, c.prior_components, self.image_shape, posterior,
                                    c.prior_init, layer)
        if c.prior == "class":
            return priors.ClassPrior(c.latent_dim, c.label_classes, c.min_scale, layer)
        if c.prior == "expost" and c.condition == "label":
            return priors.ClassExPostPrior(c.latent_dim, c.prior_components, c.label_classes, layer)
        if c.prior == "expost":
            return priors.ExPostPrior(c.latent_dim, c.prior_components, layer)
        return priors.StandardNormal(c.latent_dim)

    def initialize(self, images, seed: int, labels=None) -> None:
        self.prior.initialize(images, seed, labels)

    def encoder_head(self, features) -> dict:
        return self.posterior_dist.head(features, dtype=HEAD)

    def build_extra(self, parts: dict) -> None:
        self.prior = self.make_prior(parts.pop("prior", None))
        if self.kl_metric != "kl":  # the metrics say that the KL is a Monte Carlo estimate
            self.metric_names = tuple(self.kl_metric if m == "kl" else m for m in self.metric_names)

    @property
    def kl_metric(self) -> str:
        """The metric name of the KL term: `kl` in closed form, `kl_mc` for a Monte Carlo estimate."""
        return self.prior.kl_metric

    @property
    def extra_parts(self) -> dict:
        return {"prior": self.prior.layer} if self.prior.layer is not None else {}

    @classmethod
    def extra_part_names(cls, config) -> tuple:
        return ("prior",)

    @property
    def samples(self) -> int:
        return int(self.config.options[self.samples_option])

    @property
    def eps_dim(self) -> int:
        """The size of one sample's standard-normal noise eps (the latent size here; a family with
        several stochastic layers draws them all from one eps)."""
        return self.config.latent_dim

    def family_noise(self, batch_size: int, seed_a, seed_b) -> dict:
        return {"eps": tf.random.stateless_normal([batch_size, self.samples, self.eps_dim], seed_b)}

    def elbo(self, x, eps, training=True) -> dict:
        """E_q[log p(x|z)] - KL(q(z|x) || p(z)) and its terms, per example (tfvae.objectives.elbo)."""
        from tfvae.objectives import elbo

        return elbo(self.encoder, self.decoder, self.likelihood, self.prior, x, eps, training, self.posterior_dist)

    def log_importance_weights(self, x, eps, training=True):
        """log p(x|z_i) + log p(z_i) - log q(z_i|x), shape (batch, k) (tfvae.objectives)."""
        from tfvae.objectives import log_importance_weights

        return log_importance_weights(self.encoder, self.decoder, self.likelihood, self.prior, x, eps, training,
                                      self.posterior_dist)

    # ------------------------------------------------------------------ using a model
    def code(self, encoder_outputs):
        return self.posterior_dist.mean(encoder_outputs)

    def posterior(self, x):
        """q(z|x) as a tfd distribution."""
        return self.posterior_dist.distribution(self.encoder(x, training=False))

    def sample(self, n: int, seed, mean: bool = True):
        """n images from the prior: pixel means, or images sampled from p(x|z) when mean=False."""
        seeds = tf.random.experimental.stateless_split(tf.cast(tf.convert_to_tensor(seed), tf.int32), 2)
        z = self.prior.sample(n, seeds[0])
        if mean:
            return self.decode_mean(z)
        return self.decode(z).sample(seed=seeds[1])

    def reference_codes(self, n: int, seed: int, labels=None) -> np.ndarray:
        """n draws from the prior (numpy), as the edge runner draws them (from p(z|y) for the
        `labels` of a per-class prior)."""
        from tfvae.export.tflite import draw_prior

        return draw_prior(self.prior.mixture(), n, seed, labels)

    def held_out_terms(self, x, seed, samples: int = 1) -> dict:
        eps = tf.random.stateless_normal([tf.shape(x)[0], samples, self.eps_dim], seed)
        terms = self.elbo(x, eps)
        return {**terms, "score": -terms["elbo"]}

    # ------------------------------------------------------------------ pictures and export
    def epoch_image(self, images, seed, labels=None) -> np.ndarray:
        from tfvae import images as img

        if self.conditional:  # a row of samples per class
            rows = self.label_rows(8)
            return img.grid(self.given(rows).sample(len(rows), seed).numpy(), columns=8)
        return img.grid(self.sample(64, seed).numpy())

    def export_endpoints(self) -> dict:
        from tfvae.export.savedmodel import SCORE_SEED

        endpoints = super().export_endpoints()
        inputs = endpoints["serving_default"][1]  # images (and labels)

        def score(images, label=None):
            eps = tf.random.stateless_normal([tf.shape(images)[0], 1, self.eps_dim], SCORE_SEED)
            return {"score": -self.given(label, one_per_row=True).elbo(images, eps)["elbo"]}

        if self.conditional:  # one sample per label given
            def sample(label):
                model = self.given(label, one_per_row=True)
                z = model.prior.sample_in_graph(tf.shape(label)[0])
                return {"images": model.decode_mean(z), "z": z}

            endpoints["sample"] = (sample, self.export_label_spec())
        else:
            def sample(n):
                z = self.prior.sample_in_graph(n)
                return {"images": self.decode_mean(z), "z": z}

            endpoints["sample"] = (sample, [tf.TensorSpec([], tf.int32, name="n")])
        endpoints["score"] = (score, inputs)
        return endpoints

    def signature_descriptions(self) -> dict:
        (h, w, c), d = self.image_shape, self.config.latent_dim
        if self.conditional:
            y, q = ", `label` int32 (N,)", "q(z|x, y)"
            sample = (f"`label` int32 (n,) | `images` (n, {h}, {w}, {c}), `z` (n, {d}): one sample per label, z drawn "
                      f"from the prior ({self.prior.description}) in the graph")
        else:
            y, q = "", "q(z|x)"
            sample = (f"`n` int32 scalar | `images` (n, {h}, {w}, {c}), `z` (n, {d}) drawn from the prior "
                      f"({self.prior.description}) in the graph")
        return {**super().signature_descriptions(),
                "encode": f"`images`{y} | `loc`, `scale` (N, {d}): {q}",
                "sample": sample,
                "score": f"`images`{y} | `score` (N,): negative ELBO in nats (one seeded sample; higher = more "
                         "anomalous)"}
