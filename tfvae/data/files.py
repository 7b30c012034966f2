"""Offline sources: `npz:FILE` (NumPy arrays) and `folder:DIR` (image files)."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from tfvae.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_CHANNELS = {1: "all grey", 2: "all grey with alpha", 3: "all RGB", 4: "all RGBA"}


def _npz_kind(path: str) -> str:
    """What the file's first bytes say it is: "npz" (a zip archive), "npy", "empty" or "other"."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"npz:{path} cannot be read ({e.strerror or e}); check its permissions") from None
    if not head:
        return "empty"
    if head.startswith(b"PK"):
        return "npz"
    return "npy" if head.startswith(b"\x93NUMPY") else "other"


def load_npz(path: str):
    """Returns (x_train, y_train, x_test, y_test) from an .npz holding x_train and x_test."""
    if not os.path.isfile(path):
        raise DataError(f"npz:{path}: no such file; give an .npz holding x_train and x_test arrays")
    save_hint = "save the arrays with np.savez(path, x_train=..., x_test=..., y_train=..., y_test=...)"
    kind = _npz_kind(path)
    if kind == "empty":
        raise DataError(f"npz:{path} is empty (0 bytes): corrupt or truncated; write it again with np.savez")
    if kind == "npy":
        raise DataError(f"npz:{path} holds a single .npy array, not an .npz archive of x_train and x_test; {save_hint}")
    if kind == "other":
        raise DataError(f"npz:{path} is not an .npz archive (a zip of .npy arrays); {save_hint}")
    key = None
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = [k for k in ("x_train", "x_test") if k not in keys]
            if missing:
                raise DataError(
                    f"npz:{path} has no {' or '.join(missing)} array (it has: {', '.join(sorted(keys)) or 'none'}); "
                    "save it with np.savez(path, x_train=..., x_test=..., y_train=..., y_test=...)"
                )
            arrays = {}
            for key in ("x_train", "x_test", "y_train", "y_test"):
                if key in keys:
                    arrays[key] = f[key]
    except DataError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) and key is not None:  # an object array: pickled Python objects
            what = ("integer class labels" if key.startswith("y") else
                    "numeric images (uint8 0..255 or floats in [0, 1])")
            raise DataError(f"npz:{path}: {key} holds Python objects (dtype object), which tfvae does not unpickle; "
                            f"save {what} with np.savez") from None
        raise DataError(f"npz:{path} is corrupt or truncated ({e}); write it again with np.savez") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"npz:{path} is corrupt or truncated ({e}); write it again with np.savez") from None
    out = []
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        y = arrays.get(f"y_{split}")
        if y is not None and x.ndim > 0:  # 0-d images: as_images refuses their shape
            y = np.asarray(y)
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(
                    f"npz:{path}: y_{split} has shape {y.shape} for {len(x)} images in x_{split}; "
                    "labels must be one integer per image"
                )
            if y.dtype.kind not in "iu":  # not bool, not time deltas (integers to numpy)
                raise DataError(f"npz:{path}: y_{split} must hold integer class labels, not {y.dtype}")
            y = y.astype(np.int64)
        out += [x, y]
    return tuple(out)


def _decoder_message(e: Exception) -> str:
    """The decoder's words without TensorFlow's wrapping ({{function_node ...}}, [Op:...])."""
    import re

    text = str(getattr(e, "message", None) or e).strip()
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*", "", text, flags=re.S)
    text = " ".join(text.split()).rstrip(". ")
    return (text[:160] or type(e).__name__)


def _decode(path: str) -> np.ndarray:
    import tensorflow as tf

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:  # a broken link, a file that may not be read, ...
        raise DataError(f"folder: cannot read image {path} ({e.strerror or e}); remove or replace it") from None
    if not data:
        raise DataError(f"folder: image {path} is an empty file (0 bytes); remove or replace it")
    try:
        img = tf.io.decode_image(data, expand_animations=False)
    except Exception as e:  # InvalidArgumentError from the decoders
        raise DataError(f"folder: cannot decode image {path} ({_decoder_message(e)}); remove or replace it") from None
    return img.numpy()


def _is_image_file(name: str) -> bool:
    """An image by its extension; hidden files (.DS_Store, macOS's ._photo.png) are not images."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _scan(directory: str):
    """Image paths and class names: class subfolders when there are any, else files at the top.
    Hidden files and folders (names starting with a dot) are skipped."""
    entries = sorted(os.listdir(directory))
    classes = [e for e in entries if os.path.isdir(os.path.join(directory, e)) and not e.startswith(".")]
    pairs = []
    if classes:
        for label, cls in enumerate(classes):
            walk = []
            for root, dirs, files in os.walk(os.path.join(directory, cls)):
                dirs[:] = [d for d in dirs if not d.startswith(".")]  # not into hidden folders
                walk.append((root, files))
            for root, files in sorted(walk):
                for name in sorted(files):
                    if _is_image_file(name):
                        pairs.append((os.path.join(root, name), label))
    else:
        for name in entries:
            if _is_image_file(name):
                pairs.append((os.path.join(directory, name), -1))
    return pairs, (classes or None)


def _top_level_images(directory: str) -> int:
    """How many image files lie directly in `directory` (not read when it has class subfolders)."""
    return sum(1 for e in os.listdir(directory)
               if _is_image_file(e) and not os.path.isdir(os.path.join(directory, e)))


def _no_images(directory: str, where: str, classes, needed: str) -> DataError:
    """The error for a folder without (enough) images, naming images the class layout leaves unread."""
    top = _top_level_images(directory) if classes else 0
    if top:
        return DataError(
            f"{where} has class subfolders ({', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''}) without "
            f"images and {top} image file(s) beside them, which are not read; move the images into the class "
            "subfolders, or remove the subfolders"
        )
    return DataError(f"{where} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); {needed}")


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
        for (pairs, classes), split, split_dir in zip(parts, ("train", "test"), (train_dir, test_dir)):
            if not pairs:
                raise _no_images(split_dir, f"folder:{directory}: {split}/", classes,
                                 f"put the {split} images there (or class subfolders of them)")
    else:
        pairs, names = _scan(directory)
        if not pairs:
            raise _no_images(directory, f"folder:{directory}", names,
                             "it needs at least 2 (some for training, some for testing)")
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
                same_size = img.shape[:2] == first[1][:2]
                raise DataError(
                    f"folder:{directory}: images of mismatched sizes: {first[0]} is "
                    f"{'x'.join(map(str, first[1]))} but {path} is {'x'.join(map(str, img.shape))} "
                    "(height x width x channels); "
                    + (f"convert them to one kind ({_CHANNELS.get(first[1][2], 'the same channels')} or "
                       f"{_CHANNELS.get(img.shape[2], 'the same channels')}, not both)" if same_size else
                       "resize them to one size")
                )
            images.append(img)
        x = np.stack(images)
        y = np.array([label for _, label in pairs], dtype=np.int64) if names else None
        out += [x, y]
    return (*out, names)
