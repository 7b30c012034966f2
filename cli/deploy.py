"""`tfvae export`: a SavedModel for TF Serving, TFLite decoders and the edge runner."""

from __future__ import annotations

import click

from tfvae.cli.common import RUN_DIR, load_run
from tfvae.export import TFLITE_VARIANTS as VARIANTS


@click.command("export")
@RUN_DIR
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="The export directory.")
@click.option("--name", default=None, help="Model name for TF Serving [default: the run directory's name].")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="SavedModel version [default: the next free one].")
@click.option("--quantize", "quantize", type=click.Choice(VARIANTS), multiple=True,
              help=f"TFLite decoder variant(s) to write; repeat for several [default: all {len(VARIANTS)}].")
@click.option("--force", is_flag=True, help="Replace an existing version.")
@click.option("--samples", type=click.IntRange(min=64), default=1000, show_default=True,
              help="Prior samples the TFLite errors are measured on.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the prior samples the decoders are calibrated and measured on.")
@click.option("--web-cdn", is_flag=True,
              help="web/ loads the LiteRT.js runtime from the jsDelivr CDN instead of a copy in the export "
                   "(about 19 MB smaller; the page then needs a network).")
@click.option("--no-web", is_flag=True, help="Write no web/ page.")
def export(run_dir, out, name, version, quantize, force, samples, seed, web_cdn, no_web):
    """Export a run: SavedModel (TF Serving), TFLite decoders, the edge runner, a report.

    \b
    Examples:
      tfvae export runs/fmnist -o exports/fmnist
      tfvae export runs/fmnist -o exports/fmnist --quantize int8 --version 2

    \b
    web/ is a static page that samples, explores and interpolates in the
    browser (LiteRT.js); serve it: cd exports/fmnist/web && python -m http.server
    """
    import os

    from tfvae.cli.common import output_path
    from tfvae.errors import TfvaeError

    if web_cdn and no_web:
        raise TfvaeError("--web-cdn and --no-web contradict each other: give one")
    if os.path.exists(out) and not os.path.isdir(out):
        raise TfvaeError(f"{out} is a file; -o must be a directory")
    output_path(os.path.join(out, "report.json"), ".json")  # writable, or a clear error
    trained = load_run(run_dir)
    from tfvae.export.exporter import check_same_model, export_run, format_table, interface_of

    check_same_model(out, name, interface_of(trained), trained.run_dir)  # one model per folder

    if not trained.model.variational:
        from tfvae import models

        click.echo(f"note: --model {trained.config.model} has no prior: the `sample` and `score` signatures and "
                   f"sampler.tflite are for {'/'.join(models.variational_names())} runs only, and are not written",
                   err=True)
    report = export_run(trained, out, name=name, version=version, force=force, quantize=quantize or VARIANTS,
                        n_eval=samples, seed=seed, web=None if no_web else ("cdn" if web_cdn else "vendor"),
                        log=lambda s: click.echo(f"  {s}", err=True))
    sm = report["saved_model"]
    click.echo(f"SavedModel  {out}/{sm['path']}  signatures: {', '.join(sm['signatures'])}")
    click.echo(f"TFLite      {out}/tflite/" + ("  (+ sampler.tflite)" if report["sampler"] else ""))
    click.echo(format_table(report))
    if report.get("web"):
        w = report["web"]
        click.echo(f"web page    {out}/web/index.html  decoder {w['chosen']} (batch {w['batch']}), "
                   f"{w['bytes'] / 1e6:.1f} MB with the runtime {'from the CDN' if w['runtime'] == 'cdn' else 'inside'}; "
                   f"serve it: cd {os.path.join(out, 'web')} && python -m http.server 8000")
    base = os.path.abspath(os.path.join(out, "saved_model", sm["name"]))
    click.echo(f"serve: docker run -p 8501:8501 --mount type=bind,source={base},target=/models/{sm['name']} "
               f"-e MODEL_NAME={sm['name']} -t tensorflow/serving   (more in {os.path.join(out, 'README.md')})")


COMMANDS = [export]
