"""The configuration of a run, as data: every option of `tfvae fit`, its default and its check.

A `Config` is enough to rebuild everything about a run (data, network, objective, optimizer,
seed); it is written to `config.json` in the run directory. The command line and `tfvae.fit`
both build one with `make_config`, so they accept the same names and give the same errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from tfvae.errors import ConfigError

MODELS = ("ae", "sae", "dae", "cae", "vae", "iwae")
VARIATIONAL = ("vae", "iwae")
NETWORKS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
BINARIZATIONS = ("none", "static", "dynamic")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
LR_SCHEDULES = ("constant", "iwae")
GAUSSIAN_VARIANCES = ("pixel", "image", "fixed")
NOISES = ("masking", "gaussian")
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus", "sigmoid", "swish", "gated")
CODE_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu")
JIT_CHOICES = ("auto", "on", "off")

# Options that only mean something for some models: option name -> the models it applies to.
MODEL_OPTIONS = {
    "l1": ("sae",),
    "noise": ("dae",),
    "noise_level": ("dae",),
    "contractive": ("cae",),
    "code_activation": ("ae", "sae", "dae", "cae"),
    "beta": ("vae",),
    "kl_warmup": ("vae",),
    "free_bits": ("vae",),
    "mc_samples": ("vae",),
    "iw_samples": ("iwae",),
    "gaussian_variance": VARIATIONAL,
    "min_scale": VARIATIONAL,
    "gaussian_scale": VARIATIONAL,
}

# Fields that may change when a run is resumed: how long, how fast, where; not what is trained.
RUNTIME_FIELDS = frozenset(
    {"epochs", "learning_rate", "strategy", "jit", "data_dir", "image_every", "steps_per_call",
     "checkpoint_every", "worker_timeout", "early_stopping"}
)


def option_name(name: str) -> str:
    """The command-line spelling of a config field: latent_dim -> --latent-dim."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Config:
    """Everything `tfvae fit` needs. Field names are the command-line options with '_' for '-'."""

    # Data
    dataset: str = "mnist"
    data_dir: Optional[str] = None
    binarize: Optional[str] = None  # None: dynamic for a Bernoulli likelihood, none for Gaussian
    validation_split: float = 0.1
    max_train_examples: Optional[int] = None
    classes: Optional[tuple] = None  # train only on images of these labels
    exclude_classes: Optional[tuple] = None  # train on all labels but these

    # Model
    model: str = "vae"
    network: str = "mlp"
    hidden: tuple = (400,)
    activation: str = "relu"
    latent_dim: int = 20
    likelihood: str = "bernoulli"
    gaussian_variance: str = "pixel"
    gaussian_scale: float = 0.1
    min_scale: float = 1e-3
    code_activation: str = "linear"
    l1: float = 0.01
    noise: str = "masking"
    noise_level: float = 0.25
    contractive: float = 0.01
    beta: float = 1.0
    kl_warmup: int = 0
    free_bits: float = 0.0
    mc_samples: int = 1
    iw_samples: int = 5

    # Training
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # "iwae": Burda et al.'s 3^i epochs at lr * 10^(-i/7), i = 0..7
    adam_epsilon: float = 1e-7
    seed: int = 0
    strategy: str = "auto"
    jit: str = "auto"
    mixed_precision: bool = False
    steps_per_call: int = 0  # 0: chosen from the epoch length
    checkpoint_every: int = 0  # steps; 0: at the end of each epoch only
    worker_timeout: float = 60.0  # seconds a multi-worker collective may wait for a lost worker
    image_every: int = 1
    early_stopping: int = 0  # epochs without a better validation loss before stopping; 0: off

    # ------------------------------------------------------------------ derived values
    @property
    def variational(self) -> bool:
        return self.model in VARIATIONAL

    @property
    def binarization(self) -> str:
        """The binarization in effect (resolves the default)."""
        if self.binarize is not None:
            return self.binarize
        return "dynamic" if self.likelihood == "bernoulli" else "none"

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in ("hidden", "classes", "exclude_classes"):
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "config") -> "Config":
        return make_config(d, where=where)

    def replace(self, **changes) -> "Config":
        return make_config({**self.to_dict(), **changes})

    # ------------------------------------------------------------------ checks
    def validate(self) -> "Config":
        """Raises ConfigError, with the option name and the fix, for a value that cannot work."""

        def choice(name, choices):
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(
                    f"unknown {option_name(name)} {value!r}: choose one of {', '.join(choices)}"
                )

        def positive(name, integer=True, allow_zero=False):
            value = getattr(self, name)
            kind = "an integer" if integer else "a number"
            ok = isinstance(value, int) and not isinstance(value, bool) if integer else (
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            )
            if not ok or value < 0 or (value == 0 and not allow_zero):
                bound = ">= 0" if allow_zero else "> 0"
                raise ConfigError(f"{option_name(name)} must be {kind} {bound}, got {value!r}")

        choice("model", MODELS)
        choice("network", NETWORKS)
        choice("likelihood", LIKELIHOODS)
        if self.binarize is not None:
            choice("binarize", BINARIZATIONS)
        choice("strategy", STRATEGIES)
        choice("gaussian_variance", GAUSSIAN_VARIANCES)
        choice("noise", NOISES)
        choice("activation", ACTIVATIONS)
        choice("code_activation", CODE_ACTIVATIONS)
        choice("jit", JIT_CHOICES)
        choice("lr_schedule", LR_SCHEDULES)
        if not isinstance(self.mixed_precision, bool):
            raise ConfigError(f"--mixed-precision is a flag (true or false), got {self.mixed_precision!r}")
        for name in ("latent_dim", "epochs", "batch_size", "mc_samples", "iw_samples", "image_every"):
            positive(name)
        for name in ("kl_warmup", "steps_per_call", "checkpoint_every", "early_stopping"):
            positive(name, allow_zero=True)
        if self.max_train_examples is not None:
            positive("max_train_examples")
        for name in ("learning_rate", "gaussian_scale", "min_scale", "adam_epsilon", "worker_timeout"):
            positive(name, integer=False)
        for name in ("l1", "contractive", "beta", "free_bits", "noise_level"):
            positive(name, integer=False, allow_zero=True)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.validation_split, (int, float)) or not 0 <= self.validation_split < 1:
            raise ConfigError(
                f"--validation-split must be a fraction in [0, 1), got {self.validation_split!r}"
            )
        if self.early_stopping and self.validation_split == 0:
            raise ConfigError("--early-stopping watches the validation loss; hold images out with "
                              "--validation-split (e.g. 0.1)")
        if self.early_stopping and self.strategy == "multiworker":
            raise ConfigError("--early-stopping is not available with --strategy multiworker (only the "
                              "chief sees the validation loss); train without it or on one machine")
        if any((not isinstance(h, int)) or isinstance(h, bool) or h <= 0 for h in self.hidden):
            raise ConfigError(
                f"--hidden must be positive layer sizes separated by commas (e.g. 400 or 200,200), "
                f"got {','.join(map(str, self.hidden))!r}"
            )
        for name in ("classes", "exclude_classes"):
            value = getattr(self, name)
            if value is not None and (not value or any(
                    not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in value)):
                raise ConfigError(f"{option_name(name)} must be class labels >= 0 separated by commas, got {value!r}")
        if self.classes is not None and self.exclude_classes is not None:
            raise ConfigError("--classes and --exclude-classes contradict each other; give one")
        if self.network == "conv" and len(self.hidden) > 1:
            raise ConfigError(
                "--network conv takes one --hidden size (the dense layer between the convolutions "
                f"and the code), got {','.join(map(str, self.hidden))}"
            )
        if self.model == "dae" and self.noise == "masking" and not self.noise_level < 1:
            raise ConfigError(
                f"--noise masking drops each input with probability --noise-level, which must be "
                f"below 1, got {self.noise_level}"
            )
        if self.model == "dae" and self.noise_level == 0:
            raise ConfigError("--model dae needs --noise-level > 0 (with 0 it is a plain --model ae)")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ConfigError("--dataset is empty: give a TFDS name (e.g. mnist) or idx:DIR, npz:FILE, folder:DIR")
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def parse_hidden(value) -> tuple:
    """'400' -> (400,), '200,200' -> (200, 200), '' or 'none' -> () ; lists pass through."""
    if value is None:
        return ()
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "0"):
            return ()
        try:
            return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
        except ValueError:
            raise ConfigError(
                f"--hidden must be layer sizes separated by commas (e.g. 400 or 200,200), got {value!r}"
            ) from None
    try:
        return tuple(value)
    except TypeError:
        raise ConfigError(f"--hidden must be a list of layer sizes, got {value!r}") from None


def parse_int_list(value, name: str) -> tuple:
    """'1,3' -> (1, 3); lists pass through (as a tuple)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, str):
        try:
            return tuple(int(p) for p in value.replace(" ", "").split(",") if p)
        except ValueError:
            raise ConfigError(f"{option_name(name)} must be integers separated by commas, got {value!r}") from None
    try:
        return tuple(value)
    except TypeError:
        raise ConfigError(f"{option_name(name)} must be a list of integers, got {value!r}") from None


def make_config(values: Mapping[str, Any], *, where: str = "options") -> Config:
    """Builds and validates a Config from a mapping (a recipe, config.json, keyword arguments).

    Unknown names are refused with the list of known ones, so a typo never passes silently.
    """
    values = dict(values)
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}; "
            f"known options: {', '.join(sorted(_FIELDS))}"
        )
    if "hidden" in values:
        values["hidden"] = parse_hidden(values["hidden"])
    for name in ("classes", "exclude_classes"):
        if values.get(name) is not None:
            values[name] = parse_int_list(values[name], name)
    # JSON has no int/float distinction worth trusting: coerce integral floats for int fields.
    for name, value in list(values.items()):
        default = _FIELDS[name].default
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            if value.is_integer():
                values[name] = int(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
    if values.get("max_train_examples") is not None and isinstance(values["max_train_examples"], float):
        if values["max_train_examples"].is_integer():
            values["max_train_examples"] = int(values["max_train_examples"])
    return Config(**values).validate()


def check_model_options(config: Config, given: Mapping[str, Any]) -> None:
    """Refuses options that the configuration would silently ignore (e.g. --l1 with --model vae)."""
    for name in given:
        models = MODEL_OPTIONS.get(name)
        if models is not None and config.model not in models:
            raise ConfigError(
                f"{option_name(name)} applies to --model {'/'.join(models)}, not --model {config.model}; "
                "drop the option or change the model"
            )
        if name in ("gaussian_variance", "gaussian_scale") and config.likelihood != "gaussian":
            raise ConfigError(f"{option_name(name)} applies to --likelihood gaussian; drop it or change the likelihood")
        if name == "gaussian_scale" and config.gaussian_variance != "fixed":
            raise ConfigError("--gaussian-scale is the standard deviation of --gaussian-variance fixed; "
                              f"with --gaussian-variance {config.gaussian_variance} the scale is learned")


def resume_conflicts(saved: Config, given: Mapping[str, Any]) -> Optional[str]:
    """The first explicitly given option that differs from the saved run's config, as a message."""
    saved_d = saved.to_dict()
    for name, value in given.items():
        if name in RUNTIME_FIELDS:
            continue
        if name == "hidden":
            value = list(parse_hidden(value))
        elif name in ("classes", "exclude_classes") and value is not None:
            value = list(parse_int_list(value, name))
        if saved_d.get(name) != value:
            shown = saved_d.get(name)
            if isinstance(shown, list):
                shown = ",".join(map(str, shown))
            if isinstance(value, list):
                value = ",".join(map(str, value))
            return (
                f"the run was trained with {option_name(name)} {shown}, not {value}; drop the option "
                "to resume it, or train a new run with another --out"
            )
    return None


def field_names() -> list:
    return list(_FIELDS)
