"""The families' documentation, derived from the registry: `tfvae models` and docs/MODELS.md."""

from __future__ import annotations

from tfvae.config import option_name


def _option_line(option) -> str:
    kind = "|".join(option.choices) if option.choices else option.type.__name__
    flag = f" ({option.flag})" if option.flag else ""
    return f"{option_name(option.name)}{flag} {kind}, default {option.default}: {option.help}"


def describe(family) -> str:
    """A family's summary, its kind, its metrics and its options with their defaults."""
    kind = "variational (a posterior q(z|x) and a prior p(z))" if family.variational else "autoencoder (a code h)"
    lines = [f"{family.name}: {family.summary}", f"  kind: {kind}",
             f"  metrics: {', '.join(family.metric_names)}", "  options:"]
    lines += [f"    {_option_line(o)}" for o in family.options] or ["    (none)"]
    return "\n".join(lines)


def family_table() -> str:
    """docs/MODELS.md: one row per family of the tfvae.models package (`tfvae models --markdown`)."""
    from tfvae import models

    def cell(text):
        return str(text).replace("|", "\\|")

    out = ["# Model families", "",
           "Generated from the registry by `tfvae models --markdown`; a test checks that this file is current.",
           "`tfvae models NAME` shows a family's options with their help.",
           "", "| `--model` | what it is | metrics | options (default) |", "| --- | --- | --- | --- |"]
    for name, family in models.families().items():
        if not family.__module__.startswith("tfvae.models."):
            continue  # a family registered from elsewhere documents itself
        options = ", ".join(f"`{option_name(o.name)}` ({o.default})" for o in family.options)
        out.append(f"| `{name}` | {cell(family.summary)} | {', '.join(family.metric_names)} | {options} |")
    return "\n".join(out) + "\n"
