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
    from tfvae.rundir import first_missing, why_not_creatable

    folder = os.path.dirname(os.path.abspath(path))
    reason = why_not_creatable(folder)
    if reason:
        raise TfvaeError(f"cannot write {path}: {reason}; choose another output path")
    if not os.path.isdir(folder):  # made when the file is written (atomic_write_bytes)
        CREATED.append((first_missing(folder), folder))
    return path


# Output folders that did not exist (the highest missing one, the file's folder): made by the
# first write into them, said when the command succeeds, removed if empty when it fails.
CREATED = []


def report_created_folders(failed: bool) -> None:
    from tfvae.rundir import remove_if_empty, shown_path

    while CREATED:
        top, folder = CREATED.pop(0)
        if failed:
            remove_if_empty(top)
        elif os.path.isdir(folder):
            click.echo(f"created folder {shown_path(folder)}", err=True)

