"""Modules imported on first use, so that importing tfvae (and its model families) imports no TensorFlow.

    from tfvae.lazy import tf, keras, tfd

`tf.reduce_sum(...)` imports TensorFlow the first time an attribute is read; afterwards the proxy
forwards to the module. The command line builds its options from the model families without
starting TensorFlow, and starts it quietly (tfvae.runtime) once it is needed.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """A stand-in for `module` (optionally one of its attributes, `attribute`), imported when used."""

    def __init__(self, module: str, attribute: str = ""):
        self._module_name = module
        self._attribute = attribute
        self._target = None

    def _load(self):
        if self._target is None:
            target = importlib.import_module(self._module_name)
            for part in filter(None, self._attribute.split(".")):
                target = getattr(target, part)
            self._target = target
        return self._target

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)

    def __repr__(self):
        return f"<lazy {self._module_name}{'.' + self._attribute if self._attribute else ''}>"


tf = LazyModule("tensorflow")
keras = LazyModule("keras")
tfd = LazyModule("tensorflow_probability", "distributions")
