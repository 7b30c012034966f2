"""The registry: families are found by file, named once, and everything that lists or checks
families (the command line, the config check, the docs) is derived from it."""

import os
import re
import sys

import pytest

from tfvae import models
from tfvae.config import make_config
from tfvae.errors import ConfigError

from conftest import ROOT, run_cli


def test_the_course_s_families_in_the_course_s_order():
    assert models.names()[:6] == ("ae", "sae", "dae", "cae", "vae", "iwae")
    for name, family in models.families().items():
        assert family.name == name and family.summary and family.metric_names[0] == "loss"
    assert [n for n, f in models.families().items() if f.variational][:2] == ["vae", "iwae"]


def test_an_unknown_family_is_an_error_never_a_fallback(capsys):
    with pytest.raises(ConfigError, match=r"unknown --model 'gan': choose one of ae, sae, dae, cae, vae, iwae"):
        models.get("gan")
    with pytest.raises(ConfigError, match="unknown --model 'gan'"):
        make_config({"model": "gan"})
    code, _, err = run_cli(capsys, "fit", "-d", "mnist", "--model", "gan")
    assert code == 2 and "Invalid value for '--model'" in err


def test_a_new_file_in_the_models_folder_is_a_new_family(tmp_path, monkeypatch):
    (tmp_path / "plain_ae.py").write_text(
        "from tfvae.models.ae import AE\n"
        "from tfvae.models.base import register\n\n"
        "@register\n"
        "class PlainAE(AE):\n"
        "    name = 'ae-plain'\n"
        "    summary = 'an autoencoder found by its file'\n")
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(tmp_path)])
    monkeypatch.setattr(models, "_discovered", False)
    try:
        assert "ae-plain" in models.names()
        config = make_config({"model": "ae-plain", "code_activation": "tanh"})
        assert config.family.__name__ == "PlainAE" and config.code_activation == "tanh"
    finally:
        models.FAMILIES.pop("ae-plain", None)
        sys.modules.pop("tfvae.models.plain_ae", None)


def test_register_refuses_a_duplicate_name_and_a_clashing_option():
    from tfvae.config import Option
    from tfvae.models.ae import AE

    with pytest.raises(ValueError, match="already registered"):
        models.register(type("Again", (AE,), {"name": "vae"}))
    with pytest.raises(ValueError, match="option 'l1'"):
        models.register(type("Clash", (AE,), {"name": "clash", "options": (Option("l1", 0.5, "other"),)}))
    assert "clash" not in models.FAMILIES
    from tfvae.models.base import Variational

    with pytest.raises(TypeError, match="model family 'half' \\(Half\\) must define objective"):
        models.register(type("Half", (Variational,), {"name": "half", "metric_names": ("loss",)}))
    assert "half" not in models.FAMILIES


FAMILY_TEST = re.compile(r"model\s*(==|!=)|\.model\s+in\b|(==|!=|\bin)\s*\(?\s*[\"'](%s)[\"']"
                         % "|".join(map(re.escape, models.names())))


def test_no_code_outside_the_models_package_names_a_family():
    found = []
    for top in ("tfvae", "cli", "export"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            if os.path.join(ROOT, "tfvae", "models") in folder:
                continue
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    for i, line in enumerate(open(path, encoding="utf-8"), 1):
                        if FAMILY_TEST.search(line):
                            found.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_options_on_the_command_line_come_from_the_families(capsys):
    code, out, _ = run_cli(capsys, "fit", "--help")
    assert code == 0
    for option in models.all_options().values():
        assert f"--{option.name.replace('_', '-')}" in out
    assert "--mc-samples, -L" in out.replace("-L, --mc-samples", "--mc-samples, -L") or "-L" in out
    code, _, err = run_cli(capsys, "fit", "-d", "mnist", "--model", "vae", "--l1", "0.1")
    assert code == 2 and "--l1 applies to --model sae, not --model vae" in err


def test_tfvae_models_lists_and_describes_the_families(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == list(models.names())
    code, out, _ = run_cli(capsys, "models", "vae")
    assert code == 0 and "--kl-warmup int, default 0" in out and "metrics: loss, log_px_z, kl, elbo" in out


def test_docs_models_md_is_the_registry_s_table(capsys):
    from tfvae.models.docs import family_table

    with open(os.path.join(ROOT, "docs", "MODELS.md"), encoding="utf-8") as f:
        assert f.read() == family_table(), "regenerate it: tfvae models --markdown > docs/MODELS.md"


def test_recipes_name_registered_families(capsys):
    from tfvae.recipes import available, load_recipe

    for name in available():
        assert load_recipe(name)["model"] in models.names()
    code, out, _ = run_cli(capsys, "recipes")
    assert code == 0
    listed = {line.split()[0]: line.split()[1] for line in out.splitlines()}
    assert listed == {name: load_recipe(name)["model"] for name in available()}
    code, out, _ = run_cli(capsys, "models", "iwae")
    assert code == 0 and "recipes: fmnist-iwae, mnist-iwae-paper" in out


def test_reading_the_registry_imports_no_tensorflow():
    import subprocess

    example = os.path.join(ROOT, "docs", "examples", "capacity_vae.py")
    code = ("import sys, runpy; from tfvae import models; from tfvae.config import make_config; "
            "models.all_options(); make_config({'model': 'dae'}); import tfvae.cli.train; "
            f"runpy.run_path({example!r}); make_config({{'model': 'vae-capacity'}}); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tensorflow_probability') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    # the command line checks options before TensorFlow starts, the docs' example family included
    assert proc.stdout.strip() == "[]"
