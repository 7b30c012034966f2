"""Packaging: pyproject.toml (PEP 621 metadata, PEP 517 build) beside setup.py. The wheel that
`python -m build` makes holds every package under the one import name tfvae, installs into a fresh
environment and trains there; `pip install -e .` is a PEP 660 editable install exposing tfvae alone."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

import numpy as np
import pytest

from conftest import ROOT, make_bars


def _requirement_names(lines):
    return sorted(line.split(">")[0].split("<")[0].split("[")[0].split("=")[0].strip().lower()
                  for line in lines if line.strip() and not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel `python -m build --wheel` makes from a copy of the sources (no build/ or
    egg-info left by an earlier build can fill the gaps)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                                                "__pycache__", "runs", "exports", "tests", "bench"))
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (name,) = os.listdir(tmp / "dist")
    assert name.startswith("tfvae-") and name.endswith("-py3-none-any.whl"), name
    return tmp / "dist" / name


def test_the_wheel_holds_every_package_and_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = [os.path.relpath(folder, ROOT) for folder, _, files in os.walk(os.path.join(ROOT, "tfvae"))
                if "__init__.py" in files]
    for package in packages:
        assert f"{package}/__init__.py" in names, package
    for path in ("tfvae/models/vae.py", "tfvae/probability/priors.py", "tfvae/training/step.py",
                 "tfvae/cli/main.py", "tfvae/export/exporter.py", "tfvae/export/edge/tfvae_edge.py",
                 "tfvae/export/web.py", "tfvae/export/web/index.html", "tfvae/export/web/tfvae.js",
                 "tfvae/recipes/fmnist-vae.json"):
        assert path in names, path
    assert not any(n.startswith(("cli/", "export/", "tests/", "bench/")) for n in names)  # nothing generic


def test_the_wheel_metadata_comes_from_pyproject_and_matches_requirements_txt(wheel):
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    (meta_name,) = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA")]
    meta = zipfile.ZipFile(wheel).read(meta_name).decode()
    import tfvae

    assert f"Version: {tfvae.__version__}" in meta and "Name: tfvae" in meta
    required = [line.split(": ", 1)[1] for line in meta.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert _requirement_names(required) == _requirement_names(project["dependencies"])
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        runtime = f.read().split("# Tests")[0].splitlines()
    assert _requirement_names(runtime) == _requirement_names(project["dependencies"])
    entry = zipfile.ZipFile(wheel).read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert "tfvae = tfvae.cli.main:main" in entry


def test_the_wheel_installs_into_a_fresh_environment_and_trains_there(wheel, tmp_path):
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout in view
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
                           str(wheel)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # tfvae comes from the wheel; its dependencies (tensorflow, ...) from this environment, appended
    # after the fresh one's own site-packages by a .pth file (not re-downloaded: this is the wheel's test)
    fresh_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                capture_output=True, text=True, check=True).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    with open(os.path.join(fresh_site, "zz_dependencies.pth"), "w") as f:
        f.write("\n".join(ours) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    x, y = make_bars(96, seed=4)
    np.savez(work / "bars.npz", x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    where = subprocess.run([str(python), "-c", "import tfvae, tfvae.cli, tfvae.export, importlib.util as u; "
                            "print(tfvae.__file__); print(u.find_spec('cli'), u.find_spec('export'))"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.splitlines() == [os.path.join(fresh_site, "tfvae", "__init__.py"), "None None"]
    fit = subprocess.run([str(env_dir / "bin" / "tfvae"), "fit", "-d", "bars.npz", "-o", "run", "-e", "1",
                          "--hidden", "16", "-z", "2", "-b", "16", "-q"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert (work / "run" / "model.keras").is_file() and (work / "run" / "metrics.csv").is_file()
    info = subprocess.run([str(env_dir / "bin" / "tfvae"), "info", "run"], capture_output=True, text=True,
                          cwd=work, env=env, timeout=300)
    assert info.returncode == 0 and "vae" in info.stdout, info.stderr[-2000:]


def test_the_editable_install_is_pep_660_and_exposes_only_tfvae(tmp_path):
    # asked from a folder outside the checkout, without PYTHONPATH: what an installed tfvae exposes
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = ("import json, sys, importlib.util as u; from importlib import metadata\n"
             "try:\n    d = metadata.distribution('tfvae')\nexcept metadata.PackageNotFoundError:\n"
             "    print('not installed'); sys.exit()\n"
             "print(json.loads(d.read_text('direct_url.json') or '{}').get('dir_info', {}).get('editable', False))\n"
             "import tfvae, tfvae.cli, tfvae.export\n"
             "print(str(d._path).endswith('.dist-info'), tfvae.cli.__file__)\n"
             f"print({ROOT!r} in sys.path, [u.find_spec(n) for n in ('cli', 'export', 'tests', 'bench')])")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    if lines == ["not installed"] or lines[0] != "True":
        pytest.skip("tfvae is not installed with pip install -e . here (README's setup does that)")
    # PEP 660: a .dist-info with an import finder (no egg-link), no repository root on sys.path
    assert lines[1:] == [f"True {os.path.join(ROOT, 'cli', '__init__.py')}", "False [None, None, None, None]"]
