"""Recipes: shipped configurations (JSON files in this folder) that reproduce published protocols.

`tfvae fit --config NAME` takes a recipe's values as the defaults; options given on the command
line override them. A recipe may also be a path to a JSON file of Config fields; keys starting
with '_' are comments.
"""

from __future__ import annotations

import json
import os

from tfvae.errors import ConfigError

HERE = os.path.dirname(os.path.abspath(__file__))


def available() -> dict:
    """{name: description} of the shipped recipes."""
    out = {}
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".json"):
            with open(os.path.join(HERE, name), encoding="utf-8") as f:
                out[name[:-5]] = json.load(f).get("_description", "")
    return out


def recipe_path(name_or_path: str) -> str:
    if os.path.isfile(name_or_path):
        return name_or_path
    shipped = os.path.join(HERE, f"{name_or_path}.json")
    if os.path.isfile(shipped):
        return shipped
    names = ", ".join(available()) or "none"
    raise ConfigError(f"unknown recipe {name_or_path!r}: not a file, nor a shipped recipe ({names})")


def load_recipe(name_or_path: str) -> dict:
    """The Config values of a recipe (comments, keys starting with '_', removed)."""
    path = recipe_path(name_or_path)
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except ValueError as e:
        raise ConfigError(f"recipe {path} is not valid JSON ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"recipe {path} must hold a JSON object of options")
    return {k: v for k, v in values.items() if not k.startswith("_")}
