"""Where tfvae's packages are (the metadata is in pyproject.toml): one import name, with the
top-level cli/ and export/ folders as its subpackages tfvae.cli and tfvae.export."""

from setuptools import find_packages, setup

setup(
    # every package under tfvae/ (models, probability, training, data, recipes, ...), then cli/ and export/
    packages=["tfvae", *(f"tfvae.{p}" for p in find_packages("tfvae")), "tfvae.cli", "tfvae.export"],
    package_dir={"tfvae": "tfvae", "tfvae.cli": "cli", "tfvae.export": "export"},
    package_data={"tfvae.recipes": ["*.json"], "tfvae.export": ["edge/*.py", "edge/*.txt", "web/*.html", "web/*.js"]},
)
