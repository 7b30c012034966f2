"""Installs tfvae: one import name, with the top-level cli/ and export/ folders as
its subpackages tfvae.cli and tfvae.export."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "tfvae" / "__init__.py").read_text()).group(1)

INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.10,<4",
    "tensorflow-probability[tf]>=0.25,<0.26",
    "tensorflow-datasets>=4.9,<5",
    # tensorflow-datasets imports it on its download path without declaring it.
    "importlib_resources>=6",
    "click>=8.2,<9",
    "ai-edge-litert>=2.3,<3",
    "numpy>=1.26",
    "matplotlib>=3.8",
]

setup(
    name="tfvae",
    version=VERSION,
    description="Autoencoders and variational autoencoders in TensorFlow/Keras, "
    "from training to TF Serving and on-device sampling",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # every package under tfvae/ (models, probability, training, data, recipes, ...), then cli/ and export/
    packages=["tfvae", *(f"tfvae.{p}" for p in find_packages("tfvae")), "tfvae.cli", "tfvae.export"],
    package_dir={"tfvae": "tfvae", "tfvae.cli": "cli", "tfvae.export": "export"},
    package_data={"tfvae.recipes": ["*.json"], "tfvae.export": ["edge/*.py", "edge/*.txt"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=8"]},
    entry_points={"console_scripts": ["tfvae = tfvae.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
