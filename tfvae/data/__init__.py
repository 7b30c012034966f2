"""Data sources and splits.

A source spec names where images come from:

  NAME          a TFDS dataset (mnist, fashion_mnist, kmnist, emnist, cifar10, ...), downloaded once
  tfds:NAME     the same, explicitly
  idx:DIR       MNIST-format IDX files (train-images-idx3-ubyte[.gz], t10k-..., optional labels)
  npz:FILE      a NumPy .npz with x_train, x_test (and optional y_train, y_test)
  folder:DIR    image files; class subfolders optional; DIR/train and DIR/test used when present
  PATH          a plain path: an .npz file, a folder of IDX files, or a folder of images (the
                kind is recognised; `canonical_spec` writes it out, e.g. idx:PATH)

`load_source` returns the raw arrays; `prepare` turns them into float splits in [0, 1] with a
seeded validation split and the chosen binarization or dequantization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from tfvae.errors import DataError

# Binarized or dequantized evaluation sets (validation, test, static training sets) use this fixed
# seed, so numbers are comparable across runs and with published ones.
BINARIZATION_SEED = 20140101
# Sources without a test split (a plain folder, some TFDS datasets) hold one out with this fixed
# seed, so the test set is the same whatever a run's --seed.
TEST_SPLIT_SEED = 20140102

SOURCE_KINDS = ("idx", "npz", "folder", "tfds")
# Images hold 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA) channels: what a PNG picture holds.
MAX_CHANNELS = 4


@dataclass
class ImageData:
    """Images as loaded: (count, height, width, channels), uint8 0..255 (8-bit sources) or float32
    in [0, 1]; labels or None."""

    x_train: np.ndarray
    y_train: Optional[np.ndarray]
    x_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    class_names: Optional[list] = None


@dataclass
class Splits:
    """Images (count, height, width, channels), ready for training.

    `validation` and `test` are float32 in [0, 1] (binarized once unless --binarize none, or
    dequantized once with --dequantize uniform: the numbers are measured on them); `test_originals` and `validation_originals` are those images
    as the source holds them, for pictures. `train` stays uint8 (0..255) when the source is
    8-bit, a quarter of the memory; the trainer converts each batch. `as_float` converts either.
    """

    train: np.ndarray
    train_labels: Optional[np.ndarray]
    validation: np.ndarray
    validation_labels: Optional[np.ndarray]
    test: np.ndarray
    test_labels: Optional[np.ndarray]
    binarization: str
    dequantization: str = "none"
    class_names: Optional[list] = None
    # the test images before binarization (float32 in [0, 1]): what pictures show and encode
    test_originals: Optional[np.ndarray] = None
    validation_originals: Optional[np.ndarray] = None

    @property
    def image_shape(self) -> tuple:
        return tuple(self.train.shape[1:])


def parse_source(spec: str):
    """'idx:/data' -> ('idx', '/data'); 'mnist' -> ('tfds', 'mnist')."""
    spec = spec.strip()
    if ":" in spec:
        kind, _, rest = spec.partition(":")
        if kind in SOURCE_KINDS:
            if not rest:
                raise DataError(f"--dataset {spec!r} names no {'file' if kind == 'npz' else 'directory'} after '{kind}:'")
            return kind, rest
        if len(kind) > 1:  # not a Windows drive letter
            raise DataError(
                f"unknown dataset source {kind + ':'!r} in {spec!r}; use a TFDS name, tfds:NAME, "
                "idx:DIR, npz:FILE or folder:DIR"
            )
    return "tfds", spec


def _looks_like_path(spec: str) -> bool:
    import os

    return (os.sep in spec or "/" in spec or spec.startswith((".", "~")) or spec.endswith(".npz")
            or os.path.exists(spec))


def canonical_spec(spec: str) -> str:
    """A source spec with its kind written out: a plain path becomes npz:, idx: or folder:
    (an .npz file; a folder holding IDX files; another folder); other specs are unchanged."""
    import os

    if not isinstance(spec, str):
        return spec
    spec = spec.strip()
    kind, _, _ = spec.partition(":")
    if (":" in spec and kind in SOURCE_KINDS) or not _looks_like_path(spec):
        return spec
    path = os.path.expanduser(spec)
    if os.path.isfile(path):
        if path.lower().endswith(".npz"):
            return f"npz:{spec}"
        raise DataError(
            f"--dataset {spec}: a file tfvae cannot read as a dataset; give an .npz (npz:FILE), a "
            "folder of IDX files (idx:DIR) or a folder of images (folder:DIR)"
        )
    if os.path.isdir(path):
        from tfvae.data.idx import holds_idx_files

        return f"idx:{spec}" if holds_idx_files(path) else f"folder:{spec}"
    raise DataError(
        f"--dataset {spec}: no such file or directory; give a TFDS name (mnist, fashion_mnist, ...), "
        "an .npz file, a folder of IDX files or a folder of images"
    )


def short_name(spec: str) -> str:
    """A short name for a source, for run folder names: the last part of a path without its
    extension (idx:/usr/share/datasets/fashion-mnist -> fashion-mnist), the TFDS name otherwise."""
    import os
    import re

    kind, where = parse_source(spec)
    if kind == "tfds":
        name = where.replace("/", "-").replace(":", "-")
    else:
        name = os.path.basename(os.path.normpath(os.path.expanduser(where)))
        if kind == "npz":
            name = os.path.splitext(name)[0]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[-40:]
    return name or "data"


def load_source(spec: str, data_dir: Optional[str] = None, seed: int = TEST_SPLIT_SEED) -> ImageData:
    """Loads the images a source spec names; every failure is a one-line DataError.

    `seed` chooses the test images of a folder without train/ and test/ subfolders.
    """
    kind, where = parse_source(canonical_spec(spec))
    names = None
    if kind == "idx":
        from tfvae.data.idx import idx_class_names, load_idx_dir

        x_train, y_train, x_test, y_test = load_idx_dir(where)
        names = idx_class_names(where, y_train)
    elif kind == "npz":
        from tfvae.data.files import load_npz

        x_train, y_train, x_test, y_test = load_npz(where)
    elif kind == "folder":
        from tfvae.data.files import load_folder

        x_train, y_train, x_test, y_test, names = load_folder(where, seed)
    else:
        from tfvae.data.tfds_source import load_tfds

        x_train, y_train, x_test, y_test, names = load_tfds(where, data_dir)
    x_train = as_images(x_train, f"{spec} (train)")
    if x_test is not None:
        x_test = as_images(x_test, f"{spec} (test)")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(
                f"{spec}: test images are {'x'.join(map(str, x_test.shape[1:]))} but train images are "
                f"{'x'.join(map(str, x_train.shape[1:]))}; both splits must have one image size"
            )
    return ImageData(x_train, y_train, x_test, y_test, names)


def as_float(x) -> np.ndarray:
    """float32 pixels in [0, 1] from uint8 (0..255) or float images."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)


def as_images(x, where: str) -> np.ndarray:
    """Checks images and returns them as (count, height, width, channels): uint8 for integer pixels
    (read as 0..255), float32 in [0, 1] for float pixels (which must lie in [0, 1]).
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":  # complex, dates and time deltas count as numbers to numpy
        raise DataError(f"{where}: images must be numeric arrays (integers 0..255, floats in [0, 1] or bools), "
                        f"not {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(
            f"{where}: images have shape {x.shape}; expected (count, height, width) or "
            "(count, height, width, channels)"
        )
    if x.shape[0] == 0:
        raise DataError(f"{where}: holds no images")
    if min(x.shape[1:]) == 0:
        raise DataError(f"{where}: images have an empty dimension {x.shape[1:]}")
    if x.shape[3] > MAX_CHANNELS:  # pictures (PNG) hold 1 to 4 channels
        first = x.shape[1] <= MAX_CHANNELS < x.shape[3]
        raise DataError(
            f"{where}: images have shape {x.shape}, {x.shape[3]} channels; tfvae takes 1 (grey), 2 (grey and "
            "alpha), 3 (RGB) or 4 (RGBA) channels last: "
            + ("channels first? transpose them with x.transpose(0, 2, 3, 1)" if first else
               "keep some of them (e.g. x[..., :3]) or give (count, height, width) for one channel")
        )
    if x.dtype == bool:
        return x.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(x.dtype, np.integer):
        if x.dtype != np.uint8:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi > 255:
                raise DataError(
                    f"{where}: integer pixels must lie in 0..255, found {lo}..{hi}; rescale them"
                )
        return x.astype(np.uint8, copy=False)
    bad = ~np.isfinite(x)  # in the array's own precision: float64 beyond float32's range is not "infinite"
    if bad.any():
        raise DataError(
            f"{where}: {int(bad.sum())} pixel values are NaN or infinite (first in image "
            f"{int(np.argwhere(bad)[0][0])}); clean the data before training"
        )
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, refused below with the values
        x32 = x.astype(np.float32)
    if float(x32.min()) < 0 or float(x32.max()) > 1:  # in float32, as trained (1 + 1e-16 is 1)
        lo, hi = float(x.min()), float(x.max())
        raise DataError(
            f"{where}: float pixels must lie in [0, 1], found {lo:g}..{hi:g}; "
            + ("divide by 255" if hi <= 255 and lo >= 0 else "rescale them")
        )
    return x32


def binarize(x: np.ndarray, seed: int) -> np.ndarray:
    """One Bernoulli draw per pixel with the pixel intensity as probability (seeded): float32 0/1."""
    rng = np.random.default_rng(seed)
    return (rng.random(x.shape, dtype=np.float32) < as_float(x)).astype(np.float32)


def is_8bit(x: np.ndarray) -> bool:
    """Whether images hold 8-bit levels: uint8, or floats that are all multiples of 1/255."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return True
    scaled = x.astype(np.float64) * 255.0
    return bool(np.all(np.abs(scaled - np.round(scaled)) < 1e-3))


def require_8bit(x: np.ndarray, where: str) -> None:
    if not is_8bit(x):
        raise DataError(f"{where}: --dequantize uniform spreads each 8-bit level over its bin, and these float pixels "
                        "are not 8-bit levels (multiples of 1/255); use --dequantize none")


def dequantize(x: np.ndarray, seed: int, where: str = "images") -> np.ndarray:
    """Uniform dequantization, seeded: 8-bit levels k (x = k / 255) become (k + u) / 256, u ~ U(0, 1),
    float32 in (0, 1). Images that are not 8-bit levels are a DataError."""
    require_8bit(x, where)
    levels = np.round(as_float(x).astype(np.float64) * 255.0)
    u = np.random.default_rng(seed).random(x.shape)
    return ((levels + u) / 256.0).astype(np.float32)


def resolve_dequantization(dequantize: Optional[str], likelihood: str, binarization: str, x: np.ndarray) -> str:
    """The dequantization in effect: the one given, else uniform for a Gaussian likelihood on
    8-bit images that are not binarized (a density on the levels themselves would grow without
    bound) and none otherwise."""
    if dequantize is not None:
        return dequantize
    return "uniform" if likelihood == "gaussian" and binarization == "none" and is_8bit(x) else "none"


def prepare(data: ImageData, *, binarization: str, validation_split: float, seed: int,
            max_train_examples: Optional[int] = None, test_fraction: float = 0.1,
            classes=None, exclude_classes=None, dequantization: str = "none") -> Splits:
    """Float splits: a seeded validation split of the training images, the test set, binarized
    or dequantized.

    dynamic binarization leaves the training images grey (the trainer draws a fresh binary
    image each time a batch is drawn) and binarizes validation and test once, with a fixed seed;
    uniform dequantization likewise leaves the training images as 8-bit levels (the trainer adds
    fresh noise to each batch) and dequantizes validation and test once, with the same seeds.
    """
    x, y = as_images(data.x_train, "training images"), data.y_train
    x_test, y_test = (as_images(data.x_test, "test images") if data.x_test is not None else None), data.y_test
    if x_test is None:  # a source without a test split: hold out a fixed fraction
        order = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(x))
        n = max(1, int(round(test_fraction * len(x))))
        x_test, x = x[order[:n]], x[order[n:]]
        if y is not None:
            y_test, y = y[order[:n]], y[order[n:]]
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(validation_split * len(x)))
    if validation_split > 0 and n_val == 0:
        n_val = 1
    if n_val >= len(x):
        raise DataError(
            f"--validation-split {validation_split} leaves no training images out of {len(x)}; lower it"
        )
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if classes is not None or exclude_classes is not None:  # train (and validate) on some labels only
        if y is None:
            raise DataError("--classes/--exclude-classes need labels, and this dataset has none")
        keep = np.isin(y, classes) if classes is not None else ~np.isin(y, exclude_classes)
        train_idx, val_idx = train_idx[keep[train_idx]], val_idx[keep[val_idx]]
        if len(train_idx) == 0:
            present = ", ".join(map(str, np.unique(y)))
            raise DataError(f"no training images are left after the class filter; the labels are {present}")
    if max_train_examples is not None:
        train_idx = train_idx[:max_train_examples]
    pick = (lambda a, i: None if a is None else a[i])
    train, val, test = x[train_idx], x[val_idx], x_test
    if binarization in ("static", "dynamic"):
        if binarization == "static":
            train = binarize(train, BINARIZATION_SEED)
            if x.dtype == np.uint8:  # keep 8 bits: 0 or 255
                train = train.astype(np.uint8) * np.uint8(255)
        originals, val_originals = as_float(test), as_float(val)
        val = binarize(val, BINARIZATION_SEED + 1)
        test = binarize(test, BINARIZATION_SEED + 2)
    elif dequantization == "uniform":
        require_8bit(train, "training images")
        originals, val_originals = as_float(test), as_float(val)
        val = dequantize(val, BINARIZATION_SEED + 1, "validation images")
        test = dequantize(test, BINARIZATION_SEED + 2, "test images")
    else:  # the images are their own originals: the same arrays, no copies
        val, test = as_float(val), as_float(test)
        originals, val_originals = test, val
    return Splits(
        train=np.ascontiguousarray(train),
        train_labels=pick(y, train_idx),
        validation=np.ascontiguousarray(val),
        validation_labels=pick(y, val_idx),
        test=np.ascontiguousarray(test),
        test_labels=y_test,
        binarization=binarization,
        dequantization=dequantization,
        class_names=data.class_names,
        test_originals=np.ascontiguousarray(originals),
        validation_originals=np.ascontiguousarray(val_originals),
    )


def load_splits(config, max_test_examples: Optional[int] = None, dataset: Optional[str] = None,
                class_filter: bool = True) -> Splits:
    """The splits a Config asks for (dataset, binarization, validation split, seed).

    `dataset` reads another source with the same protocol; class_filter=False keeps every class
    (anomaly scoring needs the held-out ones). A config whose --dequantize is not yet chosen gets
    `resolve_dequantization`'s choice (`splits.dequantization` says which; fit records it).
    """
    data = load_source(dataset or config.dataset, config.data_dir)
    if not class_filter:
        config = config.replace(classes=None, exclude_classes=None)
    splits = prepare(
        data,
        binarization=config.binarization,
        dequantization=resolve_dequantization(config.data.dequantize, config.likelihood, config.binarization,
                                              data.x_train),
        validation_split=config.validation_split,
        seed=config.seed,
        max_train_examples=config.max_train_examples,
        classes=config.classes,
        exclude_classes=config.exclude_classes,
    )
    if max_test_examples is not None:
        splits.test = splits.test[:max_test_examples]
        splits.test_originals = splits.test_originals[:max_test_examples]
        if splits.test_labels is not None:
            splits.test_labels = splits.test_labels[:max_test_examples]
    return splits
