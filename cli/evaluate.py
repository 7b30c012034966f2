"""`tfvae evaluate` (the test-set likelihood people publish) and `tfvae score` (anomaly scores)."""

from __future__ import annotations

import json

import click

from tfvae.cli.common import RUN_DIR, load_run, output_path


@click.command()
@RUN_DIR
@click.option("-k", "k", type=click.IntRange(1, 10**8), default=5000, show_default=True,
              help="Importance samples per image for log p(x) (VAEs).")
@click.option("--max-test-examples", type=click.IntRange(min=1), default=None,
              help="Evaluate the first N test images only (a quick look).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the Monte Carlo samples (the same seed gives the same numbers).")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Images per batch.")
@click.option("--chunk", type=click.IntRange(min=1), default=None,
              help="Importance samples per step; memory grows with batch-size x chunk, not with k.  "
                   "[default: 500; 100 for a conv network]")
@click.option("--jit/--no-jit", default=False, show_default=True,
              help="Compile the sampling step with XLA (faster for MLP networks; a conv network's steps are "
                   "capped at 10,000 samples to bound memory).")
@click.option("--fidelity-samples", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="A conditional run's samples for the label fidelity (classified by the run's classifier, "
                   "trained on its training images on first use); 0: none.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as JSON to this file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate(run_dir, k, max_test_examples, seed, batch_size, chunk, jit, fidelity_samples, json_path, quiet):
    """Test-set reconstruction, ELBO (reconstruction term and KL) and, for VAEs, log p(x).

    \b
    log p(x) is estimated by importance sampling with k samples from
    q(z|x), as papers report it; the test set is binarized once with a
    fixed seed when the run used binarization. A conditional run
    (--condition label) reports log p(x|y) and the label fidelity.
    Example:
      tfvae evaluate runs/fmnist -k 5000 --json report.json
    """
    if json_path:
        output_path(json_path, ".json")
    trained = load_run(run_dir)
    from tfvae.evaluation import evaluate as evaluate_run, format_report
    from tfvae.progress import Progress
    from tfvae.rundir import atomic_write_text

    report = evaluate_run(trained, k=k, max_test_examples=max_test_examples, seed=seed, batch_size=batch_size,
                          chunk=chunk, jit=jit, progress=Progress(enabled=not quiet),
                          fidelity_samples=fidelity_samples)
    click.echo(format_report(report))
    if json_path:
        atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


def _classes(value, option):
    from tfvae.config import parse_int_list

    return parse_int_list(value, option) if value is not None else None


@click.command()
@RUN_DIR
@click.option("--dataset", "-d", default=None, help="Source to score [default: the run's dataset].")
@click.option("--out", "-o", default="scores.csv", show_default=True, type=click.Path(dir_okay=False),
              help="CSV of one score per test image.")
@click.option("--normal-class", default=None, help="Label(s) of normal images; every other label is an anomaly.")
@click.option("--anomaly-class", default=None, help="Label(s) of anomalies; every other label is normal.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the Monte Carlo samples (the same seed gives the same numbers).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the summary as JSON.")
def score(run_dir, dataset, out, normal_class, anomaly_class, seed, json_path):
    """Anomaly score per image: negative ELBO (VAEs) or reconstruction loss (AEs).

    \b
    With labels and --normal-class C (or --anomaly-class C), also the ROC
    AUC of telling the anomalies from the normal images on the test split,
    and a threshold chosen on the validation split, applied to the test.
    Examples:
      tfvae fit -d /usr/share/datasets/fashion-mnist --exclude-classes 1 \\
          -o runs/no-trousers
      tfvae score runs/no-trousers --anomaly-class 1 -o scores.csv
    """
    if normal_class is not None and anomaly_class is not None:
        raise click.UsageError("--normal-class and --anomaly-class contradict each other; give one")
    output_path(out, ".csv")
    if json_path:
        output_path(json_path, ".json")
    trained = load_run(run_dir)
    import numpy as np

    from tfvae import anomaly
    from tfvae.errors import TfvaeError
    from tfvae.rundir import atomic_write_text

    splits = trained.splits(dataset=dataset, class_filter=False)
    if tuple(splits.image_shape) != tuple(trained.image_shape):
        raise TfvaeError(f"the images of {dataset} are {splits.image_shape}, the model takes {trained.image_shape}")
    def own_labels(labels):  # a conditional run scores each image given its own label
        if not trained.conditional:
            return None
        if labels is None:
            raise TfvaeError(f"{trained.run_dir} is conditioned on the label and scores each image given its own; "
                             f"{dataset} has no labels")
        return labels.astype(np.int32)

    test_scores = anomaly.scores(trained.model, splits.test, seed=seed, labels=own_labels(splits.test_labels))
    summary = {"run_dir": trained.run_dir, "dataset": dataset or trained.config.dataset,
               "score": trained.model.score_description,
               "test_images": int(len(test_scores)), "mean_score": float(test_scores.mean())}
    anomalies = None
    if normal_class is not None or anomaly_class is not None:
        if splits.test_labels is None:
            raise TfvaeError("--normal-class/--anomaly-class need labels, and this dataset has none")
        # no validation images (--validation-split 0): the AUC still, but no threshold
        has_validation = len(splits.validation) > 0
        val_labels = splits.validation_labels if has_validation else None
        labels = np.concatenate([splits.test_labels] + ([val_labels] if has_validation else []))
        anomalies = anomaly.anomaly_classes(labels, normal=_classes(normal_class, "normal_class"),
                                            anomalous=_classes(anomaly_class, "anomaly_class"))
        val_scores = anomaly.scores(trained.model, splits.validation, seed=seed + 1,
                                    labels=own_labels(val_labels)) if has_validation else None
        summary["separation"] = anomaly.separation(val_scores, val_labels, test_scores, splits.test_labels,
                                                   anomalies)
    threshold = summary.get("separation", {}).get("threshold")
    atomic_write_text(out, anomaly.scores_csv(test_scores, splits.test_labels, anomalies, threshold))
    click.echo(f"wrote {out}: {summary['test_images']} scores ({summary['score']}), mean {summary['mean_score']:.3f}")
    if "separation" in summary:
        sep = summary["separation"]
        at = sep.get("test_at_threshold")
        click.echo(f"anomalies = class(es) {','.join(map(str, sep['anomaly_classes']))}: "
                   f"{sep['test_anomalies']} of {sep['test_anomalies'] + sep['test_normal']} test images")
        click.echo(f"ROC AUC (test)          {sep['roc_auc']:.4f}")
        if threshold is None:
            click.echo("threshold: none, the run has no validation split to choose it on "
                       "(train with --validation-split above 0 for one)")
        else:
            click.echo(f"threshold (validation)  {threshold:.3f}  ->  test accuracy {at['accuracy']:.3f}, "
                       f"precision {at['precision']:.3f}, recall {at['recall']:.3f}, F1 {at['f1']:.3f}")
    if json_path:
        atomic_write_text(json_path, json.dumps(summary, indent=2) + "\n")


COMMANDS = [evaluate, score]
