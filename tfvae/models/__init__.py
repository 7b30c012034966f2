"""Model families: one module per family, found and registered automatically.

    >>> from tfvae import models
    >>> models.names()
    ('ae', 'sae', 'dae', 'cae', 'vae', 'iwae')
    >>> model = models.build(config, image_shape=(28, 28, 1))   # the family config.model names

A family is a class decorated with `@register` (tfvae.models.base): a new file in this folder
is a new `--model` choice, with its options on the command line, in the config check and in
config.json. Families defined elsewhere (a user's module) register the same way once imported.
Importing this package imports no TensorFlow.
"""

from __future__ import annotations

import importlib
import pkgutil

from tfvae.errors import ConfigError
from tfvae.models.base import FAMILIES, Autoencoder, Family, Variational, register

__all__ = ["Family", "Autoencoder", "Variational", "register", "families", "names", "variational_names", "get",
           "build", "all_options", "families_with"]

# The course's order, for listings; families in other files follow in the order they register.
COURSE_ORDER = ("ae", "sae", "dae", "cae", "vae", "iwae")
DEFAULT = "vae"  # `tfvae fit` without --model
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def families() -> dict:
    """{name: family class}, the course's families first."""
    _discover()
    order = [n for n in COURSE_ORDER if n in FAMILIES] + [n for n in FAMILIES if n not in COURSE_ORDER]
    return {n: FAMILIES[n] for n in order}


def names() -> tuple:
    return tuple(families())


def variational_names() -> tuple:
    """The families with a posterior and a prior (what sampling, the manifold and log p(x) need)."""
    return tuple(n for n, f in families().items() if f.variational)


def get(name: str):
    """The family class registered as `name`; an unknown name is a ConfigError, never a fallback."""
    found = families().get(name)
    if found is None:
        raise ConfigError(f"unknown --model {name!r}: choose one of {', '.join(names())}")
    return found


def build(config, image_shape, parts=None):
    """The model of `config` (its family's class), for images of `image_shape`."""
    return get(config.model)(config, image_shape, parts=parts)


def all_options() -> dict:
    """{option name: Option} over every registered family."""
    out = {}
    for family in families().values():
        for option in family.options:
            out.setdefault(option.name, option)
    return out


def families_with(option: str) -> tuple:
    """The names of the families that take `option`."""
    return tuple(n for n, f in families().items() if option in {o.name for o in f.options})
