"""setup.py: the wheel holds every package of tfvae (the model families, probability and training
packages included), the command line and the export code, under the one import name."""

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_the_wheel_holds_every_package_and_the_package_data(tmp_path):
    # built from a copy of the sources: no build/ or egg-info left by an earlier build can fill the gaps
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                                                "__pycache__", "runs", "exports", "tests"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           "--disable-pip-version-check", "-w", str(tmp_path), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    packages = [os.path.relpath(folder, ROOT) for folder, _, files in os.walk(os.path.join(ROOT, "tfvae"))
                if "__init__.py" in files]
    for package in packages:
        assert f"{package}/__init__.py" in names, package
    for path in ("tfvae/models/vae.py", "tfvae/probability/priors.py", "tfvae/training/step.py",
                 "tfvae/cli/main.py", "tfvae/export/exporter.py", "tfvae/export/edge/tfvae_edge.py",
                 "tfvae/recipes/fmnist-vae.json"):
        assert path in names, path
    assert not any(n.startswith(("cli/", "export/", "tests/")) for n in names)  # nothing generic in site-packages
