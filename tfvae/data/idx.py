"""Reader for MNIST's IDX format (gzipped or not), with errors that say which file is wrong and how."""

from __future__ import annotations

import gzip
import os
import re
import zlib

import numpy as np

from tfvae.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# train-images-idx3-ubyte, t10k-labels-idx1-ubyte.gz, emnist-letters-test-images-idx3-ubyte, ...
_NAME = re.compile(
    r"(?:^|[-_.])(?P<split>train|t10k|test)[-_.](?P<kind>images|labels)[-_.]idx(?P<ndim>\d)[-_.]ubyte(?:\.gz)?$"
)


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file into an array of its own shape and type."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"IDX file {path} does not exist") from None
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path} is a corrupt or truncated gzip file ({e}); download it again"
            ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(
            f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); "
            "idx:DIR expects MNIST-format files such as train-images-idx3-ubyte.gz"
        )
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header is incomplete; download it again")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise DataError(
            f"{path} is truncated: its header promises {dims} values ({expected} bytes) but it holds "
            f"{found} bytes; download it again"
        )
    if found > expected:
        raise DataError(
            f"{path} is corrupt: {found - expected} bytes follow the {dims} values its header "
            "announces; download it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]


def holds_idx_files(directory: str) -> bool:
    """Whether `directory` holds a train images file in IDX format (by its name)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return any((m := _NAME.search(n)) and m.group("split") == "train" and m.group("kind") == "images"
               for n in names)


def idx_class_names(directory: str, labels) -> list | None:
    """Class names of an IDX folder: one per line in a `classes.txt` beside the files when there is
    one, Fashion-MNIST's ten names for a folder named after it (IDX files carry no names), else
    None (the labels are shown as numbers)."""
    path = os.path.join(directory, "classes.txt")
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read {path}: {e}; write one class name per line (UTF-8)") from None
        return names or None
    top = int(np.max(labels)) if labels is not None and len(labels) else -1
    if "fashion" in os.path.basename(os.path.normpath(directory)).lower() and top < 10:
        return list(FASHION_MNIST_CLASSES)
    return None


def find_idx_files(directory: str) -> dict:
    """Maps ('train'|'test', 'images'|'labels') to the IDX file for it in `directory`."""
    if not os.path.isdir(directory):
        raise DataError(
            f"idx:{directory}: no such directory; give the folder that holds train-images-idx3-ubyte[.gz]"
        )
    found: dict = {}
    for name in sorted(os.listdir(directory)):
        m = _NAME.search(name)
        if not m:
            continue
        split = "train" if m.group("split") == "train" else "test"
        key = (split, m.group("kind"))
        if key in found:
            # Prefer the uncompressed copy when both are present; otherwise refuse to guess.
            if found[key].endswith(".gz") and not name.endswith(".gz"):
                found[key] = os.path.join(directory, name)
                continue
            if not found[key].endswith(".gz") and name.endswith(".gz"):
                continue
            raise DataError(
                f"idx:{directory} holds two {split} {m.group('kind')} files "
                f"({os.path.basename(found[key])}, {name}); keep one dataset per folder"
            )
        found[key] = os.path.join(directory, name)
    for split, example in (("train", "train-images-idx3-ubyte"), ("test", "t10k-images-idx3-ubyte")):
        if (split, "images") not in found:
            raise DataError(
                f"idx:{directory}: no {split} images file (like {example} or {example}.gz) found; "
                "idx:DIR needs the train and test image files"
            )
    return found


def load_idx_dir(directory: str):
    """Returns (x_train, y_train, x_test, y_test); labels are None when their files are absent."""
    files = find_idx_files(directory)
    arrays = {key: read_idx(path) for key, path in files.items()}
    out = []
    for split in ("train", "test"):
        x = arrays[(split, "images")]
        if x.ndim not in (3, 4):
            raise DataError(
                f"{files[(split, 'images')]} holds an array of shape {x.shape}; images must be "
                "(count, height, width) or (count, height, width, channels)"
            )
        y = arrays.get((split, "labels"))
        if y is not None:
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(
                    f"{files[(split, 'labels')]} holds {y.shape} labels for {len(x)} images; "
                    "the label and image files do not belong together"
                )
            y = y.astype(np.int64)
        out += [x, y]
    return tuple(out)
