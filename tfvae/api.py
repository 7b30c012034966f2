"""The Python API, mirroring the command line: `tfvae.fit(...)` and `tfvae.load(run_dir)`."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from tfvae.config import Config, check_model_options, make_config, resume_conflicts
from tfvae.errors import ConfigError, RunDirError, system_failure
from tfvae.rundir import RunDir, RunLock, first_missing, remove_if_empty, shown_path


@dataclass
class FitResult:
    """What `fit` returns: where the run is, its config and its last metrics row."""

    run_dir: str
    config: Config
    metrics: dict

    def load(self) -> "TrainedModel":
        return load(self.run_dir)


def default_run_dir(config: Config) -> str:
    """runs/<dataset's short name>-<model>-<time>, e.g. runs/fashion-mnist-vae-20261202-101500."""
    from tfvae.data import short_name

    return os.path.join("runs", f"{short_name(config.dataset)}-{config.model}-{time.strftime('%Y%m%d-%H%M%S')}")


def resolve_config(options: dict, recipe: Optional[str] = None) -> Config:
    """Defaults, then the recipe's values, then the explicitly given options."""
    values = {}
    if recipe:
        from tfvae.recipes import load_recipe

        values.update(load_recipe(recipe))
    values.update(options)
    if "dataset" in values:  # a plain path: its kind written out (idx:, npz:, folder:)
        from tfvae.data import canonical_spec

        values["dataset"] = canonical_spec(values["dataset"])
    config = make_config(values)
    check_model_options(config, options)
    return config


def run_config(options: dict, recipe: Optional[str] = None, out: Optional[str] = None,
               resume: bool = False, overwrite: bool = False) -> Config:
    """The config a fit trains with: a resumed run's saved config (with the options that may
    change), else the defaults, the recipe and the options. Checks the options, and a resume
    against its saved run, without importing TensorFlow."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; choose one")
    if not resume:
        config = resolve_config(options, recipe)
        if config.options.get("prior") == "expost":
            raise ConfigError("--prior expost is not trained: train with another prior, then fit it to the trained "
                              "run with: tfvae fit-prior RUN_DIR --out NEW_RUN_DIR")
        return config
    if recipe:
        raise ConfigError("--config starts a new run; --resume continues one with its saved config")
    if not out:
        raise ConfigError("--resume needs --out RUN_DIR, the run to continue")
    run = RunDir(out)
    saved, saved_meta = run.read()
    if saved.options.get("prior") == "expost":
        source = (saved_meta.get("prior_of") or {}).get("run", "the run it was fitted to")
        raise RunDirError(f"{run.path} is an ex-post prior fitted to {source} (tfvae fit-prior); it has no training "
                          "to continue: resume that run, then fit the prior again")
    run.read_metrics()  # a damaged metrics.csv is said before any work is done
    check_model_options(saved, options)
    if options.get("early_stopping") and saved.validation_split == 0:
        raise ConfigError(f"{run.path} was trained with --validation-split 0, so --early-stopping has no "
                          "validation loss to watch; start a new run with --validation-split (e.g. 0.1)")
    conflict = resume_conflicts(saved, options)
    if conflict:
        raise RunDirError(f"cannot resume {run.path}: {conflict}")
    return saved.replace(**options) if options else saved


def label_classes(config: Config, splits) -> int:
    """The size of a conditional model's one-hot label: the source's class count (its class names,
    else the largest label + 1). A source without labels, or a class filter that leaves one class,
    is a DataError that says why."""
    from tfvae.errors import DataError

    if splits.train_labels is None:
        raise DataError(f"--condition label needs labels, and {config.dataset} has none (an npz needs y_train, a "
                        "folder one subfolder per class); drop --condition or use a labelled source")
    present = np.unique(splits.train_labels)
    if len(present) < 2:
        which = f"--classes {','.join(map(str, config.classes))} leaves" if config.classes else "the training images have"
        raise DataError(f"--condition label needs at least two classes to condition on; {which} one ({present[0]}): "
                        "drop --condition or train on more classes")
    labels = [a for a in (splits.train_labels, splits.validation_labels, splits.test_labels) if a is not None and len(a)]
    largest = int(max(int(np.max(a)) for a in labels)) + 1
    return max(len(splits.class_names or ()), largest)


def _resume_hint(run: RunDir) -> str:
    steps = run.checkpoint_steps()
    kept = f"checkpoint ckpt-{steps[-1]} is intact" if steps else "no checkpoint had been written yet"
    return f"{kept}: fix that, then continue with: tfvae fit --out {run.path} --resume"


def fit(dataset: Optional[str] = None, *, out: Optional[str] = None, resume: bool = False,
        overwrite: bool = False, recipe: Optional[str] = None, progress: bool = True,
        stream=None, **options: Any) -> FitResult:
    """Trains a model, as `tfvae fit` does, and returns a FitResult.

    Args:
      dataset: a source spec: a TFDS name (mnist, ...), idx:DIR, npz:FILE or folder:DIR.
      out: the run directory (default runs/<dataset>-<model>-<time>).
      resume: continue the run in `out` from its last checkpoint (options given must match it,
        except epochs, learning_rate and runtime options).
      overwrite: replace an existing run directory.
      recipe: a shipped recipe name (see `tfvae.recipes`) or a JSON file whose values are the
        defaults for the options given here.
      progress: show the progress bar on stderr.
      **options: any Config field (model, network, hidden, latent_dim, epochs, ...).

    Example:
      >>> run = tfvae.fit("idx:/usr/share/datasets/fashion-mnist", model="vae", epochs=1)
      >>> run.metrics["val_elbo"]
    """
    from tfvae.progress import Progress
    from tfvae.strategy import worker_info

    if dataset is not None:
        options["dataset"] = dataset
    stream = stream or sys.stderr

    config = run_config(options, recipe, out, resume, overwrite)
    run = RunDir(out or default_run_dir(config))
    # In a multi-worker job only the chief writes the run directory; the others read it.
    worker = worker_info() if config.strategy == "multiworker" else None
    chief = worker is None or worker.is_chief
    bar = Progress(stream=stream, enabled=progress and chief)
    # One writer per run directory: a second `tfvae fit` on it is refused while this one runs (a
    # lock the system drops when the process ends, however it ends). Multi-worker: the chief's.
    parent = os.path.dirname(run.path)
    parent_missing = not os.path.isdir(parent)
    created = first_missing(parent) if chief else None
    try:
        return _fit_locked(config, run, worker, chief, bar, stream, resume, overwrite, parent, parent_missing)
    except BaseException:
        remove_if_empty(created)  # a fit that failed leaves no empty folders behind
        raise


def _fit_locked(config, run, worker, chief, bar, stream, resume, overwrite, parent, parent_missing) -> FitResult:
    with RunLock(run.path) if chief else contextlib.nullcontext():  # a second writer is refused before TF starts
        from tfvae.runtime import import_tensorflow_quietly

        # as quiet as the command line: TensorFlow's C++ start-up lines are dropped, its log level is
        # ERROR (unless TFVAE_VERBOSE=1 or TF_CPP_MIN_LOG_LEVEL is set); the user's logging is untouched
        import_tensorflow_quietly(strategy=config.strategy, worker_timeout=config.worker_timeout)
        if not resume and chief:
            if run.exists() and not overwrite:
                hint = "pass --resume to continue it or --overwrite to replace it" if run.is_run() else \
                    "choose another --out or pass --overwrite"
                raise RunDirError(f"{run.path} already exists; {hint}")
            RunDir.check_writable(run.path)

        from tfvae.data import load_splits

        splits = load_splits(config)
        if config.data.dequantize is None:  # chosen from the data: config.json records it
            config = config.replace(dequantize=splits.dequantization)
        if config.condition == "label":
            classes = label_classes(config, splits)
            if not resume:
                config = config.replace(label_classes=classes)
        if not resume and 0 < len(splits.train) < config.batch_size:  # a handful of own images
            n, asked = len(splits.train), config.batch_size
            config = config.replace(batch_size=n)
            bar.message(f"note: {n} training images, fewer than --batch-size {asked}: the batch is clipped to {n} "
                        "(config.json records it)")
        import tfvae
        from tfvae.runtime import mark

        mark("data loaded")
        meta = {"image_shape": list(splits.image_shape), "class_names": splits.class_names,
                "tfvae_version": tfvae.__version__}

        from tfvae.training import build

        if resume:
            _, saved_meta = run.read()
            if chief:  # what a writer killed mid-write left (this process holds the lock)
                swept = run.sweep_leftovers()
                if swept:
                    bar.message(f"removed {len(swept)} unfinished file(s) of an interrupted write: "
                                f"{', '.join(sorted(swept)[:4])}{' ...' if len(swept) > 4 else ''}")
            if list(saved_meta.get("image_shape", [])) != list(splits.image_shape):
                raise RunDirError(
                    f"cannot resume {run.path}: it was trained on {saved_meta.get('image_shape')} images, "
                    f"the data now has {list(splits.image_shape)}"
                )
            trainer = build(config, splits, run, progress=bar)
            restored = trainer.restore()
            if chief:
                run.write_config(config, meta)
            bar.message(f"resuming {run.path} from "
                        + (f"epoch {int(trainer.epoch.numpy())}, step {int(trainer.step.numpy())}" if restored else "the start"))
        else:
            trainer = build(config, splits, run, progress=bar)  # fails before anything is written
            if chief:
                if parent_missing:
                    bar.message(f"created folder {shown_path(parent)}")
                run.create(config, meta, overwrite=overwrite)
            prior = getattr(trainer.model, "prior", None)
            what = f"{config.network}" + (f", prior {prior.description}" if prior is not None else "")
            if config.condition == "label":
                what += f", conditioned on the label ({config.label_classes} classes)"
            bar.message(f"training {config.model} ({what}) on {config.dataset}: "
                        f"{len(splits.train)} train / {len(splits.validation)} validation / {len(splits.test)} test "
                        f"images {'x'.join(map(str, splits.image_shape))}, {trainer.replicas} replica(s)"
                        + (f" on {worker.count} workers" if worker else "")
                        + f", XLA {'on' if trainer.jit else 'off'}"
                        + (f", {trainer.policy}" if config.mixed_precision else "") + f" -> {run.path}")
        mark("model built")
        warmup = config.family.warmup_epochs(config)
        if warmup > config.epochs:
            bar.message(f"note: the KL weight rises from 0 to its full value over {warmup} epochs (--kl-warmup) and "
                        f"reaches only {config.epochs / warmup:.0%} of it after these {config.epochs}; until then the "
                        "loss is not the negative ELBO (the elbo column is)")
        try:
            metrics = trainer.train()
        except Exception as e:  # a full disk, a folder made read-only, ... while training: one line
            failure = system_failure(e, resume_hint=_resume_hint(run))
            if failure is None:
                raise
            raise failure from None
        digest = metrics.pop("weights_sha256", "")
        if worker is not None:
            print(f"worker {worker.index}/{worker.count}: done, {int(trainer.epoch.numpy())} epochs, "
                  f"weights sha256 {digest}", file=stream, flush=True)
        done = int(trainer.epoch.numpy())
        bar.message(f"done: {run.path} ({done} epoch{'' if done == 1 else 's'})")
        return FitResult(run.path, config, metrics)


class TrainedModel:
    """A trained model loaded from a run directory; numpy in, numpy out.

    Images are (count, height, width, channels) floats in [0, 1] (uint8 0..255 and
    (count, height, width) for one channel are accepted too).
    """

    def __init__(self, model, config: Config, run_dir: str, meta: dict):
        self.model = model
        self.config = config
        self.run_dir = run_dir
        self.meta = meta
        self._splits = {}

    def splits(self, dataset: Optional[str] = None, class_filter: bool = True):
        """The run's data splits (`tfvae.data.Splits`), loaded once and shared by evaluation,
        pictures and scores. `dataset` reads another source with the run's protocol;
        class_filter=False keeps the classes the run was trained without."""
        key = (dataset, class_filter)
        if key not in self._splits:
            from tfvae.data import load_splits

            self._splits[key] = load_splits(self.config, dataset=dataset, class_filter=class_filter)
        return self._splits[key]

    @property
    def image_shape(self) -> tuple:
        return self.model.image_shape

    @property
    def keras_model(self):
        return self.model.keras_model

    def _images(self, x) -> "np.ndarray":
        from tfvae.data import as_float, as_images

        x = as_float(as_images(x, "images"))
        if tuple(x.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"images are {'x'.join(map(str, x.shape[1:]))} but the model takes "
                f"{'x'.join(map(str, self.image_shape))}"
            )
        return x

    # ------------------------------------------------------------------ labels (--condition label)
    @property
    def conditional(self) -> bool:
        """Whether the model is conditioned on the label (trained with --condition label)."""
        return self.model.conditional

    @property
    def class_names(self) -> Optional[list]:
        """The source's class names (TFDS, folder names, classes.txt), or None."""
        return self.meta.get("class_names")

    @property
    def classes(self) -> list:
        """The labels a conditional model was trained on (every class of the source unless --classes)."""
        return [int(c) for c in self.model.label_rows(1)] if self.conditional else []

    def class_name(self, label: int) -> str:
        names = self.class_names
        return str(names[label]) if names and 0 <= label < len(names) else str(label)

    def labels(self, label, n: int) -> Optional[np.ndarray]:
        """`label` (an int, a class name, or one per row) as n int32 labels for a conditional
        model; None for an unconditioned one (a label given to it is an error)."""
        if label is None:
            if self.conditional:
                raise ConfigError("this model is conditioned on the label (--condition label): pass label= (a class, "
                                  f"one of {', '.join(map(str, self.classes))}, or one per row)")
            return None
        if not self.conditional:
            raise ConfigError(f"{self.run_dir} was trained without --condition label; it takes no label")
        if isinstance(label, str):
            label = self.label_of(label)
        y = np.asarray(label)
        if y.ndim == 0:
            y = np.full(n, int(y))
        if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(f"label must be one class or {n} integer labels (one per row), got shape {y.shape}")
        unknown = sorted(set(int(v) for v in y) - set(self.classes))
        if unknown:
            raise ConfigError(f"label {unknown[0]} is not one the model was trained on; choose one of "
                              + ", ".join(f"{c} ({self.class_name(c)})" if self.class_names else str(c)
                                          for c in self.classes))
        return y.astype(np.int32)

    def label_of(self, name: str) -> int:
        """The label of a class given by name (case-insensitive) or by number as text."""
        text = name.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        names = [str(n).lower() for n in (self.class_names or [])]
        if text.lower() in names:
            return names.index(text.lower())
        known = ", ".join(f"{c} ({self.class_name(c)})" for c in self.classes)
        raise ConfigError(f"unknown class {name!r}: give a label or a class name, one of {known}")

    def _model(self, label, n: int):
        y = self.labels(label, n)
        return self.model if y is None else self.model.given(y)

    # ------------------------------------------------------------------ using the model
    def encode(self, x, label=None) -> np.ndarray:
        """Codes h (autoencoders) or posterior means (variational models); a conditional model
        takes the images' labels (`label`: one class, or one per image)."""
        x = self._images(x)
        return self._model(label, len(x)).encode(x).numpy()

    def posterior(self, x, label=None):
        """q(z|x) (q(z|x, y) for a conditional model) as a tfd distribution (variational models)."""
        x = self._images(x)
        return self._model(label, len(x)).posterior(x)

    def decode(self, z, label=None) -> np.ndarray:
        """Pixel means of p(x|z) (p(x|z, y): `label`, for a conditional model) for codes z of
        shape (count, latent_dim)."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ConfigError(f"z must have shape (count, {self.config.latent_dim}), got {z.shape}")
        return self._model(label, len(z)).decode_mean(z).numpy()

    def reconstruct(self, x, label=None) -> np.ndarray:
        x = self._images(x)
        return self._model(label, len(x)).reconstruct(x).numpy()

    def score(self, x, seed: int = 0, label=None) -> np.ndarray:
        """Anomaly score per image (higher = more anomalous): the negative ELBO in nats for
        variational models, the reconstruction loss for autoencoders (`tfvae score`); a
        conditional model's is given the images' labels."""
        from tfvae.anomaly import scores

        x = self._images(x)
        return scores(self.model, x, seed=seed, labels=self.labels(label, len(x)))

    def sample(self, n: int, seed: int = 0, mean: bool = True, label=None) -> np.ndarray:
        """n images from the prior (variational models): pixel means, or sampled pixels. A
        conditional model draws them for `label` (one class, e.g. 3 or "Sandal", or one per
        sample) from p(z|y) and p(x|z, y)."""
        if n < 1:
            raise ConfigError(f"the number of samples must be positive, got {n}")
        return self._model(label, int(n)).sample(int(n), [int(seed), 0], mean=mean).numpy()


def load(run_dir: str) -> TrainedModel:
    """Loads a run: its final model.keras, or its latest checkpoint if training did not finish."""
    from tfvae import models

    run = RunDir(run_dir)
    config, meta = run.read()
    image_shape = tuple(meta.get("image_shape") or ())
    if len(image_shape) != 3:
        raise RunDirError(f"{run.config_path} has no image_shape; the run directory is damaged")
    family = models.get(config.model)
    from tfvae.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()  # as quiet as the command line (see fit)
    if os.path.isfile(run.model_path):
        try:
            model = family.from_keras_file(run.model_path, config, image_shape)
        except Exception as e:  # a truncated zip, a failed CRC, a damaged HDF5 inside: never trusted
            if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EIO):
                raise system_failure(e) from None  # the file may be fine; the system refused it
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            if "File not found" in first or "zip" in type(e).__name__.lower():  # Keras's words for a cut zip
                first = "not a complete .keras zip file"
            raise RunDirError(f"{run.model_path} is damaged ({first}); write it again from "
                              f"the run's last checkpoint with: tfvae fit --out {run.path} --resume") from None
    else:
        import tensorflow as tf

        from tfvae.training.loop import restore_newest_intact

        model = family(config, image_shape)
        if not restore_newest_intact(tf.train.Checkpoint(**model.parts), run.checkpoint_dir, match="partial",
                                     doing="loading"):
            raise RunDirError(f"{run.path} has neither {os.path.basename(run.model_path)} nor a checkpoint; "
                              "train it first (tfvae fit --resume)")
    return TrainedModel(model, config, run.path, meta)
