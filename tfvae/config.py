"""The configuration of a run, as data, split by concern: the data, the architecture (networks and likelihood), the training, and
the options of the chosen model family (declared by the family itself, in `tfvae.models`).

A `Config` is enough to rebuild everything about a run (data, network, objective, optimizer,
seed); it is written flat to `config.json` in the run directory (one key per option, the family's
own options only). The command line and `tfvae.fit` both build one with `make_config`, so they
accept the same names and give the same errors.

    >>> config = make_config({"model": "vae", "latent_dim": 2, "beta": 4.0})
    >>> config.architecture.latent_dim, config.options["beta"], config.training.epochs
    (2, 4.0, 10)

Fields read as attributes too (`config.latent_dim`, `config.beta`): each name lives in one
section.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from tfvae.errors import ConfigError

NETWORKS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian", "logistic")
BINARIZATIONS = ("none", "static", "dynamic")
DEQUANTIZATIONS = ("none", "uniform")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
LR_SCHEDULES = ("constant", "iwae")
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus", "sigmoid", "swish", "gated")
JIT_CHOICES = ("auto", "on", "off")
CONDITIONS = ("none", "label")
# fields config.json leaves out at these values, so that earlier versions read an unconditioned run
SAVED_ONLY_IF_SET = {"condition": "none", "label_classes": 0, "dequantize": "none"}

# Fields that may change when a run is resumed: how long, how fast, where; not what is trained.
RUNTIME_FIELDS = frozenset(
    {"epochs", "learning_rate", "strategy", "jit", "data_dir", "image_every", "steps_per_call",
     "checkpoint_every", "worker_timeout", "early_stopping"}
)


def option_name(name: str) -> str:
    """The command-line spelling of a config field: latent_dim -> --latent-dim."""
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split and binarized."""

    dataset: str = "mnist"
    data_dir: Optional[str] = None
    binarize: Optional[str] = None  # None: dynamic for a Bernoulli likelihood, none for Gaussian
    # "uniform": 8-bit pixels k become (k + u) / 256, u ~ U(0, 1), a fresh u per training batch and the
    # evaluation sets once (seeded). None: chosen by fit from the data (uniform for a Gaussian
    # likelihood on 8-bit images); a config.json without the key was trained on raw pixels ("none").
    dequantize: Optional[str] = None
    validation_split: float = 0.1
    max_train_examples: Optional[int] = None
    classes: Optional[tuple] = None  # train only on images of these labels
    exclude_classes: Optional[tuple] = None  # train on all labels but these


@dataclass(frozen=True)
class ArchitectureConfig:
    """The networks every family is built from, and the likelihood p(x|z) they parameterise."""

    network: str = "mlp"
    hidden: tuple = (400,)
    activation: str = "relu"
    latent_dim: int = 20
    likelihood: str = "bernoulli"
    condition: str = "none"  # "label": q(z|x, y) and p(x|z, y), the label one-hot beside the input
    label_classes: int = 0  # the one-hot's size with --condition label (set by fit from the data)


@dataclass(frozen=True)
class TrainingConfig:
    """The optimizer, the loop and the devices."""

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


SECTIONS = {"data": DataConfig, "architecture": ArchitectureConfig, "training": TrainingConfig}
_SECTION_OF = {f.name: section for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
_DEFAULTS = {f.name: f.default for cls in SECTIONS.values() for f in dataclasses.fields(cls)}


# ----------------------------------------------------------------------------------- family options
@dataclass(frozen=True)
class Option:
    """An option a model family declares (`--l1` for the sparse AE, `--beta` for the VAE, ...).

    Args:
      name: the config field (`mc_samples`; on the command line `--mc-samples`).
      default: its default; its type (int, float, str) is the option's type.
      help: one line for `tfvae fit --help` (the families that take it are prefixed there).
      choices: the allowed values of a str option.
      minimum: "positive" (> 0), "non_negative" (>= 0) or None for numbers.
      flag: a short spelling, e.g. "-L".
    """

    name: str
    default: Any
    help: str = ""
    choices: Optional[tuple] = None
    minimum: Optional[str] = "positive"
    flag: Optional[str] = None

    @property
    def type(self) -> type:
        return type(self.default)

    def check(self, value) -> None:
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(f"unknown {option_name(self.name)} {value!r}: choose one of "
                                  f"{', '.join(self.choices)}")
            return
        if self.minimum is not None:
            check_number(self.name, value, integer=self.type is int, allow_zero=self.minimum == "non_negative")


def check_number(name: str, value, integer: bool = True, allow_zero: bool = False) -> None:
    """Raises ConfigError unless value is a finite number (an integer if asked) > 0 (>= 0)."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{option_name(name)} must be {kind} {bound}, got {value!r}")


def _registry():
    from tfvae import models

    return models


# ----------------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class Config:
    """Everything `tfvae fit` needs: the family's name, three sections and the family's options.

    Build one with `make_config` (which checks it). Every field also reads as an attribute:
    `config.latent_dim` is `config.architecture.latent_dim`, `config.beta` is `config.options["beta"]`.
    """

    model: str = ""  # make_config fills in the registry's default family
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    architecture: ArchitectureConfig = dataclasses.field(default_factory=ArchitectureConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    options: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))

    def __getattr__(self, name):
        if name in ("model", "data", "architecture", "training", "options") or name.startswith("__"):
            raise AttributeError(name)
        section = _SECTION_OF.get(name)
        if section is not None:
            return getattr(getattr(self, section), name)
        options = self.options
        if name in options:
            return options[name]
        raise AttributeError(f"Config has no field {name!r}"
                             + ("" if name not in _registry().all_options() else
                                f" (it is an option of --model {'/'.join(_registry().families_with(name))}, "
                                f"not of --model {self.model})"))

    # ------------------------------------------------------------------ derived values
    @property
    def family(self):
        """The model family class (`tfvae.models`) this config trains."""
        return _registry().get(self.model)

    @property
    def binarization(self) -> str:
        """The binarization in effect (resolves the default)."""
        if self.data.binarize is not None:
            return self.data.binarize
        return "dynamic" if self.architecture.likelihood == "bernoulli" else "none"

    @property
    def dequantization(self) -> str:
        """The dequantization in effect: "uniform" or "none" (an unresolved default, which fit
        resolves from the data, counts as none)."""
        return self.data.dequantize or "none"

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        """Flat: {field: value}, the model first, then data, network, training and the family's options."""
        d = {"model": self.model}
        for section in SECTIONS:
            d.update(dataclasses.asdict(getattr(self, section)))
        d.update(self.options)
        for name in ("hidden", "classes", "exclude_classes"):
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    def to_saved_dict(self) -> dict:
        """`to_dict` less the options this config implies at their defaults (the family's
        `implied_options`: a N(0, I) prior's size): what config.json holds, which earlier versions
        read as long as the run uses nothing they lack."""
        implied = self.family.implied_options(self)
        return {k: v for k, v in self.to_dict().items()
                if k not in implied and not (k in SAVED_ONLY_IF_SET and v in (SAVED_ONLY_IF_SET[k], None))}

    def to_json(self) -> str:
        return json.dumps(self.to_saved_dict(), indent=2, sort_keys=True) + "\n"

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

        choice("network", NETWORKS)
        choice("likelihood", LIKELIHOODS)
        if self.binarize is not None:
            choice("binarize", BINARIZATIONS)
        if self.dequantize is not None:
            choice("dequantize", DEQUANTIZATIONS)
        if self.dequantize == "uniform" and self.likelihood != "gaussian":
            why = ("a Bernoulli likelihood models binary pixels" if self.likelihood == "bernoulli" else
                   "the discretized logistic is already a probability of the 8-bit levels themselves")
            raise ConfigError(f"--dequantize uniform is for a continuous likelihood (--likelihood gaussian); {why}: "
                              "drop --dequantize")
        if self.dequantize == "uniform" and self.binarization != "none":
            raise ConfigError(f"--dequantize uniform and --binarize {self.binarization} contradict each other (noise "
                              "within a pixel's 8-bit level, or pixels of 0 and 1): give one")
        choice("strategy", STRATEGIES)
        choice("activation", ACTIVATIONS)
        choice("jit", JIT_CHOICES)
        choice("lr_schedule", LR_SCHEDULES)
        choice("condition", CONDITIONS)
        check_number("label_classes", self.label_classes, allow_zero=True)
        if self.condition == "label" and not self.family.takes_condition:
            raise ConfigError(f"--condition label is not available for --model {self.model} (it builds its own "
                              "networks, which take no label); use --model "
                              f"{'/'.join(n for n, f in _registry().families().items() if f.takes_condition)}")
        if not isinstance(self.mixed_precision, bool):
            raise ConfigError(f"--mixed-precision is a flag (true or false), got {self.mixed_precision!r}")
        for name in ("latent_dim", "epochs", "batch_size", "image_every"):
            check_number(name, getattr(self, name))
        for name in ("steps_per_call", "checkpoint_every", "early_stopping"):
            check_number(name, getattr(self, name), allow_zero=True)
        if self.max_train_examples is not None:
            check_number("max_train_examples", self.max_train_examples)
        for name in ("learning_rate", "adam_epsilon", "worker_timeout"):
            check_number(name, getattr(self, name), integer=False)
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
        if self.network == "conv" and len(self.hidden) > 1 and not self.family.conv_takes_hidden_layers:
            raise ConfigError(
                "--network conv takes one --hidden size (the dense layer between the convolutions "
                f"and the code), got {','.join(map(str, self.hidden))}"
            )
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ConfigError("--dataset is empty: give a TFDS name (e.g. mnist) or idx:DIR, npz:FILE, folder:DIR")
        family = self.family
        for option in family.options:
            option.check(self.options[option.name])
        family.check_config(self)
        return self


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


def _coerce(value, default):
    """JSON has no int/float distinction worth trusting: integral floats for int fields, ints for floats."""
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def field_names() -> list:
    """Every option name a Config accepts: the sections' fields, `model` and every family's options."""
    return ["model", *_SECTION_OF, *_registry().all_options()]


def make_config(values: Mapping[str, Any], *, where: str = "options") -> Config:
    """Builds and validates a Config from a flat mapping (a recipe, config.json, keyword arguments).

    Unknown names are refused with the list of known ones, so a typo never passes silently.
    Options of other families than the chosen one are left out (config.json files written
    before the families owned their options hold every family's, at their defaults).
    """
    registry = _registry()
    values = dict(values)
    known = field_names()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}; "
            f"known options: {', '.join(sorted(known))}"
        )
    model = values.pop("model", registry.DEFAULT)
    family = registry.get(model)  # an unknown family is an error, never a fallback
    if "hidden" in values:
        values["hidden"] = parse_hidden(values["hidden"])
    for name in ("classes", "exclude_classes"):
        if values.get(name) is not None:
            values[name] = parse_int_list(values[name], name)
    if isinstance(values.get("max_train_examples"), float) and values["max_train_examples"].is_integer():
        values["max_train_examples"] = int(values["max_train_examples"])
    sections = {name: {} for name in SECTIONS}
    for name, value in values.items():
        if name in _SECTION_OF:
            sections[_SECTION_OF[name]][name] = _coerce(value, _DEFAULTS[name])
    own = {o.name: o for o in family.options}
    options = {name: _coerce(values.get(name, o.default), o.default) for name, o in own.items()}
    config = Config(
        model=model,
        **{name: cls(**sections[name]) for name, cls in SECTIONS.items()},
        options=types.MappingProxyType(options),
    )
    return config.validate()


def check_model_options(config: Config, given: Mapping[str, Any]) -> None:
    """Refuses options that the configuration would silently ignore (e.g. --l1 with --model vae)."""
    registry = _registry()
    own = {o.name for o in config.family.options}
    for name in given:
        if name in registry.all_options() and name not in own:
            raise ConfigError(
                f"{option_name(name)} applies to --model {'/'.join(registry.families_with(name))}, not "
                f"--model {config.model}; drop the option or change the model"
            )
    config.family.check_given(config, given)


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
