"""tfvae: autoencoders and variational autoencoders in TensorFlow/Keras.

    >>> import tfvae
    >>> run = tfvae.fit(dataset="idx:/usr/share/datasets/fashion-mnist", model="vae", epochs=5)
    >>> model = tfvae.load(run.run_dir)
    >>> images = model.sample(16, seed=0)

Importing tfvae is cheap: TensorFlow is imported the first time something needs it.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"


class _SourceCheckout:
    """In a source checkout, finds the top-level cli/ and export/ folders as the subpackages
    tfvae.cli and tfvae.export, exactly as setup.py installs them (and nothing else)."""

    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    names = {"tfvae.cli": "cli", "tfvae.export": "export"}

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        folder = cls.names.get(fullname)
        if folder is None:
            return None
        import importlib.util

        init = _os.path.join(cls.root, folder, "__init__.py")
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[_os.path.dirname(init)])


if _os.path.isfile(_os.path.join(_SourceCheckout.root, "setup.py")) and _os.path.isfile(
    _os.path.join(_SourceCheckout.root, "cli", "__init__.py")
):
    _sys.meta_path.append(_SourceCheckout)

__all__ = ["fit", "load", "fit_prior", "Config", "make_config", "TfvaeError", "__version__"]


def __getattr__(name):
    if name == "fit":
        from tfvae.api import fit

        return fit
    if name == "load":
        from tfvae.api import load

        return load
    if name == "fit_prior":
        from tfvae.expost import fit_prior

        return fit_prior
    if name in ("Config", "make_config"):
        from tfvae import config

        return getattr(config, name)
    if name == "TfvaeError":
        from tfvae.errors import TfvaeError

        return TfvaeError
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")
