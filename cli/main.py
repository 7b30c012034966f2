"""The `tfvae` command group and its entry point.

Every command is thin: it parses options, calls the library and reports. Errors the user can fix
(TfvaeError, bad options) are printed as one line, `Error: ...`, with a non-zero exit status; a
graceful stop (Ctrl-C, SIGTERM: status 75, checkpoint saved) is one line without `Error:`.
"""

from __future__ import annotations

import os
import sys

import click

import tfvae


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80})
@click.version_option(tfvae.__version__, prog_name="tfvae")
def cli():
    """Autoencoders and variational autoencoders in TensorFlow: train, evaluate, look, deploy.

    \b
    Start with:
      tfvae fit --dataset mnist                   a VAE on MNIST (downloaded once)
      tfvae fit -d /usr/share/datasets/fashion-mnist --model ae
      tfvae info RUN_DIR                          a run's config and last metrics
    """


# One line per command in `tfvae --help` (click would cut the docstrings' first sentences).
SUMMARIES = {
    "fit": "Train a model into a run directory.",
    "fit-prior": "A trained run with its prior fitted ex post (a new run).",
    "info": "A run's config and last metrics.",
    "recipes": "The shipped recipes, or one recipe's JSON.",
    "models": "The model families, or one family's options.",
    "evaluate": "Test-set terms, importance-sampled log p(x), active units.",
    "score": "An anomaly score per image; ROC AUC and a threshold.",
    "sample": "Images decoded from prior samples (PNG).",
    "reconstruct": "Test images above their reconstructions (PNG).",
    "manifold": "Decoded images on a grid of the 2-d latent space (PNG).",
    "latents": "Test-set codes coloured by class (PNG).",
    "interpolate": "Decoded images between two test images' codes (PNG).",
    "curves": "Loss, reconstruction, KL and ELBO per epoch (PNG).",
    "export": "SavedModel for TF Serving, TFLite decoders, edge runner.",
}


def _register():
    from tfvae.cli import deploy, evaluate, pictures, train

    for module in (train, evaluate, pictures, deploy):
        for command in module.COMMANDS:
            command.short_help = command.short_help or SUMMARIES.get(command.name)
            cli.add_command(command)


_register()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> None:
    """Runs the command line; exits with 0 on success, the error's status otherwise."""

    from tfvae.cli.common import CREATED, report_created_folders

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    CREATED.clear()
    try:
        _main(argv)
    except SystemExit as e:  # every path ends here: a failed command leaves no empty output folders
        report_created_folders(failed=e.code not in (0, None))
        raise
    except BaseException:
        report_created_folders(failed=True)
        raise


def _main(argv) -> None:
    from tfvae.errors import Interrupted, TfvaeError, system_failure

    try:
        code = cli.main(args=argv, prog_name="tfvae", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # bare `tfvae`: show the help, not an error
        click.echo(e.ctx.get_help())
        sys.exit(0)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"Error: {_one_line(e.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"Error: {_one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except Interrupted as e:  # a graceful stop, not a failure: the checkpoint is saved
        click.echo(_one_line(e), err=True)  # "stopped by SIGINT at epoch ...; continue with ..."
        sys.exit(e.exit_code)
    except TfvaeError as e:
        click.echo(f"Error: {_one_line(e)}", err=True)
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as e:  # a full disk, a read-only folder, a permission, however it is wrapped
        failure = system_failure(e)
        if failure is None:
            raise
        click.echo(f"Error: {failure}", err=True)
        sys.exit(failure.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
