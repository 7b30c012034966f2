"""tfvae: autoencoders and variational autoencoders in TensorFlow/Keras.

    >>> import tfvae
    >>> run = tfvae.fit(dataset="idx:/usr/share/datasets/fashion-mnist", model="vae", epochs=5)
    >>> model = tfvae.load(run.run_dir)
    >>> images = model.sample(16, seed=0)

Importing tfvae is cheap: TensorFlow is imported the first time something needs it.
"""

import os as _os

__version__ = "0.1.0"

# In a source checkout the top-level cli/ and export/ folders are the subpackages
# tfvae.cli and tfvae.export, exactly as setup.py installs them.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "setup.py")) and _os.path.isfile(
    _os.path.join(_root, "cli", "__init__.py")
):
    __path__.append(_root)  # noqa: F821  (module attribute of a package)

__all__ = ["fit", "load", "Config", "TfvaeError", "__version__"]


def __getattr__(name):
    if name == "fit":
        from tfvae.api import fit

        return fit
    if name == "load":
        from tfvae.api import load

        return load
    if name == "Config":
        from tfvae.config import Config

        return Config
    if name == "TfvaeError":
        from tfvae.errors import TfvaeError

        return TfvaeError
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")
