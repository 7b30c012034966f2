"""Offline sources: `npz:FILE` (NumPy arrays) and `folder:DIR` (image files)."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from tfvae.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_npz(path: str):
    """Returns (x_train, y_train, x_test, y_test) from an .npz holding x_train and x_test."""
    if not os.path.isfile(path):
        raise DataError(f"npz:{path}: no such file; give an .npz holding x_train and x_test arrays")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = [k for k in ("x_train", "x_test") if k not in keys]
            if missing:
                raise DataError(
                    f"npz:{path} has no {' or '.join(missing)} array (it has: {', '.join(sorted(keys)) or 'none'}); "
                    "save it with np.savez(path, x_train=..., x_test=..., y_train=..., y_test=...)"
                )
            arrays = {k: f[k] for k in ("x_train", "x_test", "y_train", "y_test") if k in keys}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise DataError(f"npz:{path} is corrupt or truncated ({e}); write it again with np.savez") from None
    out = []
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        y = arrays.get(f"y_{split}")
        if y is not None:
            y = np.asarray(y)
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(
                    f"npz:{path}: y_{split} has shape {y.shape} for {len(x)} images in x_{split}; "
                    "labels must be one integer per image"
                )
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"npz:{path}: y_{split} must hold integer class labels, not {y.dtype}")
            y = y.astype(np.int64)
        out += [x, y]
    return tuple(out)


def _decode(path: str) -> np.ndarray:
    import tensorflow as tf

    try:
        data = tf.io.read_file(path)
        img = tf.io.decode_image(data, expand_animations=False)
    except Exception as e:  # InvalidArgumentError from the decoders
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"folder: cannot decode image {path} ({msg[:120]}); remove or replace it") from None
    return img.numpy()


def _scan(directory: str):
    """Image paths and class names: class subfolders when there are any, else files at the top."""
    entries = sorted(os.listdir(directory))
    classes = [e for e in entries if os.path.isdir(os.path.join(directory, e)) and not e.startswith(".")]
    pairs = []
    if classes:
        for label, cls in enumerate(classes):
            for root, _, files in sorted(os.walk(os.path.join(directory, cls))):
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        pairs.append((os.path.join(root, name), label))
    else:
        for name in entries:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                pairs.append((os.path.join(directory, name), -1))
    return pairs, (classes or None)


def load_folder(directory: str, seed: int, test_fraction: float = 0.1):
    """Returns (x_train, y_train, x_test, y_test, class_names) from a folder of images.

    `DIR/train/` and `DIR/test/` are used as the splits when both exist; otherwise a seeded
    `test_fraction` of the images is held out as the test split. Class subfolders become labels.
    """
    if not os.path.isdir(directory):
        raise DataError(f"folder:{directory}: no such directory")
    train_dir, test_dir = os.path.join(directory, "train"), os.path.join(directory, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        parts = [_scan(train_dir), _scan(test_dir)]
        if parts[0][1] != parts[1][1]:
            raise DataError(
                f"folder:{directory}: train/ and test/ have different class subfolders "
                f"({parts[0][1]} vs {parts[1][1]})"
            )
        names = parts[0][1]
        split_pairs = [parts[0][0], parts[1][0]]
    else:
        pairs, names = _scan(directory)
        if len(pairs) < 2:
            raise DataError(
                f"folder:{directory} holds {len(pairs)} image file(s) ({', '.join(IMAGE_EXTENSIONS)}); "
                "it needs at least 2 (some for training, some for testing)"
            )
        order = np.random.default_rng(seed).permutation(len(pairs))
        n_test = max(1, int(round(test_fraction * len(pairs))))
        split_pairs = [[pairs[i] for i in sorted(order[n_test:])], [pairs[i] for i in sorted(order[:n_test])]]
    out = []
    first = None
    for pairs in split_pairs:
        if not pairs:
            raise DataError(f"folder:{directory}: a split has no image files")
        images = []
        for path, _ in pairs:
            img = _decode(path)
            if first is None:
                first = (path, img.shape)
            elif img.shape != first[1]:
                raise DataError(
                    f"folder:{directory}: images of mismatched sizes: {first[0]} is "
                    f"{'x'.join(map(str, first[1]))} but {path} is {'x'.join(map(str, img.shape))}; "
                    "resize them to one size (height x width x channels)"
                )
            images.append(img)
        x = np.stack(images)
        y = np.array([label for _, label in pairs], dtype=np.int64) if names else None
        out += [x, y]
    return (*out, names)
