"""Helpers the commands share: loading a run quietly, checking output paths."""

from __future__ import annotations

import os

import click

from tfvae.errors import TfvaeError

RUN_DIR = click.argument("run_dir", type=click.Path(exists=True, file_okay=False))


def load_run(run_dir: str):
    """The run's TrainedModel, with TensorFlow imported without its start-up chatter."""
    from tfvae.rundir import RunDir

    RunDir(run_dir).read()  # a clear error for a folder that is not a run, before TensorFlow starts
    from tfvae.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tfvae

    return tfvae.load(run_dir)


def output_path(path: str, suffix: str) -> str:
    """Checks an output file path: the right extension, a writable folder (created if missing)."""
    if not path.lower().endswith(suffix):
        raise TfvaeError(f"{path}: the output file must end in {suffix}")
    from tfvae.rundir import why_not_creatable

    folder = os.path.dirname(os.path.abspath(path))
    reason = why_not_creatable(folder)
    if reason:
        raise TfvaeError(f"cannot write {path}: {reason}; choose another output path")
    if not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
        click.echo(f"created folder {os.path.relpath(folder)}", err=True)
    return path
