"""Property: whatever arrays an npz:FILE holds and whatever files a folder:DIR holds, `tfvae.fit`
either trains to finite metrics or refuses in one line (a TfvaeError) that says what is wrong.

The strategies generate datasets (dtypes, shapes, channel counts, NaN/inf and out-of-range values,
labels, PNG folders of one or several sizes and kinds, non-image and corrupt files) and an oracle
says what the README promises for each: the reasons a dataset must be refused (the refusal must
name one of them), or none, and then it must train. Every fit is tiny (hidden 8-16, z = 2, one
epoch, XLA off); TFVAE_PROPERTY_EXAMPLES sets the examples per source (default 20).

bench/source_properties.py runs the same properties with a bigger budget and counts the outcomes.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("TFVAE_PROPERTY_EXAMPLES", "20"))

DTYPES = ("uint8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64", "bool")
EXOTIC_DTYPES = ("complex64", "timedelta64[s]", "<U2", "object")  # numbers to numpy, not pixels
FLOAT_SPECIALS = (np.nan, np.inf, -np.inf, 1e30, -1e30, 1e39, -1e300, -0.5, 1.5, 255.0, -0.0, 1.0, 0.0)
INT_SPECIALS = (-1, 256, 1000, 65535, -32768, 2**31 - 1, 2**62, 0, 255)
SIZES = (1, 2, 3, 3, 4, 5, 5, 8)  # image heights and widths
COUNTS = (2, 3, 4, 5, 6, 8, 12)  # image counts of a clean dataset

# what a refusal must say, by reason (regular expressions, matched case-insensitively)
REASONS = {
    "not npz": r"not an \.npz|single \.npy|corrupt or truncated|is empty",
    "missing key": r"has no x_(train|test)",
    "dtype": r"numeric arrays|python objects",
    "labels": r"y_(train|test) (has shape|must hold)|python objects",
    "channels": r"\d+ channels",
    "shape": r"shape",
    "no images": r"holds no images",
    "empty dimension": r"empty dimension",
    "non-finite": r"nan or infinite",
    "range": r"must lie in",
    "test size": r"one image size",
    "too few": r"--validation-split .* leaves no training images|at least 2",
    "no image files": r"no image files|class subfolders .* beside them",
    "undecodable": r"cannot decode|cannot read|empty file",
    "mixed sizes": r"mismatched sizes",
    "class mismatch": r"different class subfolders",
}


# ----------------------------------------------------------------------------------- fit options
def fit_options():
    """Tiny fits: vae (mostly) or ae, 8-16 hidden units, z = 2, one epoch, XLA off."""
    return st.fixed_dictionaries({
        "model": st.sampled_from(["vae", "vae", "ae"]),
        "hidden": st.sampled_from(["8", "16"]),
        "batch_size": st.sampled_from([1, 2, 4, 8]),
        "validation_split": st.sampled_from([0.1, 0.1, 0.0, 0.5]),
        "binarize": st.sampled_from([None, None, "static", "none"]),
    })


def _fit_kwargs(options: dict) -> dict:
    kwargs = dict(options, latent_dim=2, epochs=1, jit="off", seed=0)
    if kwargs.get("binarize") is None:
        kwargs.pop("binarize", None)
    return kwargs


def too_few(n_train: int, validation_split: float) -> bool:
    """Whether the seeded validation split leaves no training image (README: 10% is held out, at
    least one image when the split is not 0)."""
    n_val = int(round(validation_split * n_train))
    if validation_split > 0 and n_val == 0:
        n_val = 1
    return n_val >= n_train


# ----------------------------------------------------------------------------------- arrays
def _fill(rng, dtype: str, shape: tuple, mode: str) -> np.ndarray:
    """An array of `dtype` and `shape` whose values follow `mode` (unit: valid pixels)."""
    if dtype in EXOTIC_DTYPES:
        base = rng.integers(0, 2, shape)
        if dtype == "object":
            return base.astype(object)
        return base.astype(dtype)
    kind = np.dtype(dtype).kind
    if kind == "b":
        return (rng.random(shape) < 0.5) if mode != "constant" else np.ones(shape, bool)
    if kind == "f":
        with np.errstate(over="ignore"):
            values = {"unit": lambda: rng.random(shape), "constant": lambda: np.full(shape, rng.choice([0.0, 1.0])),
                      "x255": lambda: rng.random(shape) * 255, "signed": lambda: rng.normal(size=shape),
                      "huge": lambda: rng.random(shape) * 1e30}[mode]()
            return np.asarray(values).astype(dtype)
    info = np.iinfo(dtype)
    lo, hi = {"unit": (0, 256), "constant": (255, 256), "x255": (0, 256),
              "signed": (max(info.min, -128), 128), "huge": (max(info.min, info.max - 1000), info.max)}[mode]
    return rng.integers(lo, hi, shape, endpoint=mode == "huge").astype(dtype)


def _insert_specials(rng, x: np.ndarray, specials) -> np.ndarray:
    """Puts the special values (NaN, inf, 1e30, -1, 256, ...) at random places, as the dtype holds them."""
    if x.size == 0 or x.dtype.kind not in "iuf" or not specials:
        return x
    x = x.copy()
    flat = x.reshape(-1)
    for value in specials:
        if x.dtype.kind == "f":
            if isinstance(value, int):
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                flat[rng.integers(flat.size)] = np.asarray(value).astype(x.dtype)  # float16: 1e30 -> inf
        elif isinstance(value, int):
            info = np.iinfo(x.dtype)
            if info.min <= value <= info.max:
                flat[rng.integers(flat.size)] = value
    return x


ARRAY_FAULTS = ("dtype", "shape", "count", "empty dimension", "channels", "range", "non-finite", "specials")


@st.composite
def images_array(draw, n: Optional[int] = None, image_shape: Optional[tuple] = None, wild: bool = True,
                 dtype: Optional[str] = None):
    """Images (N, H, W) or (N, H, W, C) of any pixel dtype; wild: with one fault of ARRAY_FAULTS (a
    non-pixel dtype, a shape (N, D), (N,), () or 5-d, N = 0 or 1, H = 0, C = 5 or 6, values out of
    range, NaN/inf, or a few special values: NaN, inf, 1e30, -1, 256, ... some of them valid)."""
    fault = draw(st.sampled_from(ARRAY_FAULTS)) if wild else None
    if dtype is None:
        dtype = draw(st.sampled_from(EXOTIC_DTYPES if fault == "dtype" else
                                     ("float16", "float32", "float64") if fault == "non-finite" else DTYPES))
    if n is None:
        n = draw(st.sampled_from((0, 1) if fault == "count" else COUNTS))
    if image_shape is None:
        h, w = draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES))
        if fault == "empty dimension":
            h, w = draw(st.sampled_from([(0, w), (h, 0)]))
        c = draw(st.sampled_from((5, 6) if fault == "channels" else (1, 2, 3, 4)))
        layout = draw(st.sampled_from(["flat", "1d", "0d", "5d"] if fault == "shape" else
                                      ["nhwc"] if fault == "channels" else ["nhw", "nhwc"]))
        image_shape = {"nhw": (h, w), "nhwc": (h, w, c), "flat": (h * w,), "1d": (), "0d": None,
                       "5d": (h, w, c, 1)}[layout]
    shape = () if image_shape is None else (n, *image_shape)
    mode = draw(st.sampled_from(["x255", "signed", "huge"] if fault == "range" else ["unit", "unit", "constant"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = _fill(rng, dtype, shape, mode)
    if fault == "non-finite":
        x = _insert_specials(rng, x, draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=1, max_size=3)))
    elif fault == "specials":
        x = _insert_specials(rng, x, draw(st.lists(st.sampled_from(FLOAT_SPECIALS + INT_SPECIALS), min_size=1,
                                                   max_size=3)))
    return x


def labels_for(n: int, kind: str) -> Optional[np.ndarray]:
    return {
        "absent": None,
        "good": np.arange(n, dtype=np.int64) % 3,
        "uint8": (np.arange(n) % 3).astype(np.uint8),
        "negative": -np.arange(n, dtype=np.int32),
        "short": np.arange(max(n - 1, 0)),
        "long": np.arange(n + 1),
        "float": np.arange(n, dtype=np.float32),
        "2d": np.zeros((n, 2), np.int64),
        "bool": np.ones(n, bool),
        "object": np.array([str(i) for i in range(n)], dtype=object),
    }[kind]


# ----------------------------------------------------------------------------------- npz cases
def _describe(x) -> str:
    x = np.asarray(x)
    text = f"{x.dtype}{list(x.shape)}"
    if x.dtype.kind in "iuf" and x.size:
        with np.errstate(invalid="ignore"):
            finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x
        text += f" {finite.min():.3g}..{finite.max():.3g}" if finite.size else " -"
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            text += f" +{int((~np.isfinite(x)).sum())} non-finite"
    return text


@dataclass
class NpzCase:
    """The arrays of an .npz (as np.savez writes them), how the file is written, the fit's options."""

    arrays: dict
    file: str = "savez"  # savez, savez_compressed, truncated, npy, not_zip, empty
    options: dict = field(default_factory=dict)
    plain_path: bool = False  # --dataset PATH instead of npz:PATH

    def __repr__(self):
        arrays = ", ".join(f"{k}={_describe(v)}" for k, v in self.arrays.items())
        return f"NpzCase({self.file}, {arrays}, plain_path={self.plain_path}, options={self.options})"

    def write(self, root: str) -> str:
        path = os.path.join(root, "data.npz")
        if self.file == "npy":
            with open(path, "wb") as f:
                np.save(f, next(iter(self.arrays.values()), np.zeros(3)))
        elif self.file == "not_zip":
            with open(path, "wb") as f:
                f.write(b"x_train,x_test\n1,2\n")
        elif self.file == "empty":
            open(path, "wb").close()
        else:
            save = np.savez_compressed if self.file == "savez_compressed" else np.savez
            save(path, **self.arrays)
            if self.file == "truncated":
                data = open(path, "rb").read()
                with open(path, "wb") as f:
                    f.write(data[: max(30, len(data) // 2)])
        return path if self.plain_path else f"npz:{path}"


def _image_reasons(x: np.ndarray) -> set:
    """Why an array cannot be images (README: (N, H, W) or (N, H, W, C); uint8 0..255 or floats in [0, 1])."""
    if x.dtype.kind not in "biuf":
        return {"dtype"}
    if x.ndim not in (3, 4):
        return {"shape"}
    reasons = set()
    if x.shape[0] == 0:
        reasons.add("no images")
    if 0 in x.shape[1:]:
        reasons.add("empty dimension")
    if x.ndim == 4 and x.shape[3] > 4:
        reasons.add("channels")
    if reasons or x.dtype.kind == "b":
        return reasons
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            return {"non-finite"}
        with np.errstate(over="ignore"):  # as trained: in float32 (beyond its range: out of [0, 1])
            x32 = x.astype(np.float32)
        return {"range"} if x32.min() < 0 or x32.max() > 1 else set()
    return {"range"} if int(x.min()) < 0 or int(x.max()) > 255 else set()


def npz_reasons(case: NpzCase) -> set:
    """The reasons the README gives for refusing this npz dataset (empty: it must train)."""
    if case.file in ("truncated", "npy", "not_zip", "empty"):
        return {"not npz"}
    arrays = case.arrays
    missing = {"x_train", "x_test"} - set(arrays)
    if missing:
        return {"missing key"}
    # object arrays are refused as they are read (no unpickling), whatever else is wrong
    reasons = {"labels" if key.startswith("y") else "dtype" for key, a in arrays.items() if a.dtype == object}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays.get(f"y_{split}")
        if y is not None and x.ndim > 0:  # 0-d "images": their shape is what is wrong
            if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
                reasons.add("labels")
        reasons |= _image_reasons(x)
    if reasons:
        return reasons
    train, test = arrays["x_train"], arrays["x_test"]
    if (train.shape[1:] + (1,))[:3] != (test.shape[1:] + (1,))[:3]:
        return {"test size"}
    if too_few(len(train), case.options.get("validation_split", 0.1)):
        return {"too few"}
    return set()


WILD_NPZ_PARTS = ("x_train", "x_train", "x_test", "x_test", "labels", "file")  # the arrays twice as often


@st.composite
def npz_cases(draw):
    """npz datasets: half of them clean (every dtype, (N,H,W) or (N,H,W,C), C 1-4, N >= 2, labels
    or none), the others with one or two wild parts, so that each fault gets its turn: x_train or
    x_test (any shape and dtype, C = 5, N = 0, NaN/inf, huge and negative values), the labels
    (mismatched length, 2-d, float, bool, objects), the file (truncated, an .npy, not a zip, empty,
    a missing key)."""
    wild = draw(st.sets(st.sampled_from(WILD_NPZ_PARTS), min_size=1, max_size=2)) if draw(st.booleans()) else set()
    x_train = draw(images_array(wild="x_train" in wild))
    test_n = draw(st.sampled_from([1, 2, 3] + ([0] if "x_test" in wild else [])))
    same = x_train.ndim >= 1 and ("x_test" not in wild or draw(st.booleans()))
    if same:  # the train images' shape; mostly their dtype too
        dtype = str(x_train.dtype) if draw(st.sampled_from([True, True, True, False])) else None
        if dtype in EXOTIC_DTYPES or x_train.dtype == object or ("x_test" not in wild and dtype not in DTYPES):
            dtype = None
        x_test = draw(images_array(n=test_n, image_shape=x_train.shape[1:], wild="x_test" in wild, dtype=dtype))
    else:
        x_test = draw(images_array(n=test_n, wild="x_test" in wild))
    arrays = {"x_train": x_train, "x_test": x_test}
    label_kinds = (["absent", "good", "short", "long", "float", "2d", "bool", "object"] if "labels" in wild else
                   ["absent", "absent", "good", "uint8", "negative"])
    for split, x in (("train", x_train), ("test", x_test)):
        y = labels_for(len(x) if x.ndim else 3, draw(st.sampled_from(label_kinds)))
        if y is not None:
            arrays[f"y_{split}"] = y
    file = draw(st.sampled_from(["truncated", "npy", "not_zip", "empty", "no_x_test", "no_x_train"] if "file" in wild
                                else ["savez", "savez", "savez_compressed", "extra_key"]))
    if file == "no_x_test":
        arrays.pop("x_test")
    elif file == "no_x_train":
        arrays.pop("x_train")
    elif file == "extra_key":
        arrays["notes"] = np.arange(3)
    file = file if file in ("savez_compressed", "truncated", "npy", "not_zip", "empty") else "savez"
    return NpzCase(arrays, file, draw(fit_options()), plain_path=draw(st.booleans()))


# ----------------------------------------------------------------------------------- folder cases
@dataclass(frozen=True)
class Image:
    """A picture file: PNG (8 or 16 bits) or JPEG, (height, width, channels)."""

    shape: tuple
    bits: int = 8
    format: str = "png"
    seed: int = 0

    def encode(self) -> bytes:
        import tensorflow as tf

        rng = np.random.default_rng(self.seed)
        if self.format == "jpeg":
            return tf.io.encode_jpeg(rng.integers(0, 256, self.shape, dtype=np.uint8)).numpy()
        dtype = np.uint8 if self.bits == 8 else np.uint16
        return tf.io.encode_png(rng.integers(0, np.iinfo(dtype).max, self.shape, endpoint=True, dtype=dtype)).numpy()


# Files that are not pictures, (name, content; None: the first 30 bytes of a PNG). The scan skips
# other extensions and hidden files; the others are read as images and cannot be decoded.
JUNK = (
    ("notes.txt", b"not an image"),
    (".DS_Store", b"\x00\x00\x00\x01Bud1"),
    ("._hidden.png", b"\x00\x05\x16\x07AppleDouble"),  # macOS's resource fork of hidden.png
    ("labels.csv", b"file,label\n"),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n garbage"),
    ("empty.png", b""),
    ("text.jpg", b"this is text, not a JPEG"),
    ("truncated.png", None),
)


@dataclass
class FolderCase:
    """Files of an image folder: {relative path: Image, junk bytes, or None for an empty folder}."""

    files: dict
    options: dict = field(default_factory=dict)
    plain_path: bool = False  # --dataset DIR instead of folder:DIR

    def __repr__(self):
        def item(v):
            if isinstance(v, Image):
                return f"{v.format}{v.bits if v.format == 'png' else ''} {'x'.join(map(str, v.shape))}"
            return "dir" if v is None else f"{len(v)} bytes"
        files = ", ".join(f"{k}: {item(v)}" for k, v in sorted(self.files.items()))
        return f"FolderCase({{{files}}}, plain_path={self.plain_path}, options={self.options})"

    def write(self, root: str) -> str:
        directory = os.path.join(root, "images")
        os.makedirs(directory)
        for rel, content in self.files.items():
            path = os.path.join(directory, rel)
            if content is None:
                os.makedirs(path, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = content.encode() if isinstance(content, Image) else content
            with open(path, "wb") as f:
                f.write(data)
        return directory if self.plain_path else f"folder:{directory}"


def _folder_scan(files: dict, prefix: str = ""):
    """What the README's folder layout reads under `prefix`: (image paths, class names or None,
    whether image files lie beside class subfolders, unread)."""
    under = {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)}
    tops = {k.split("/")[0] for k in under}
    dirs = sorted(t for t in tops if any(k.startswith(t + "/") or (k == t and under[k] is None) for k in under))
    classes = [d for d in dirs if not d.startswith(".")]

    def is_image(rel):
        parts = rel.split("/")
        return (under[rel] is not None and rel.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".gif"))
                and not any(p.startswith(".") for p in parts))

    if classes:
        paths = [prefix + k for k in sorted(under) if k.split("/")[0] in classes and "/" in k and is_image(k)]
        top = [k for k in under if "/" not in k and is_image(k)]
        return paths, classes, bool(top)
    return [prefix + k for k in sorted(under) if "/" not in k and is_image(k)], None, False


def folder_reasons(case: FolderCase) -> set:
    """The reasons the README gives for refusing this folder (empty: it must train)."""
    files = case.files
    split = any(k.startswith("train/") or k == "train" for k in files) and \
        any(k.startswith("test/") or k == "test" for k in files)
    if split:
        (train, train_classes, _), (test, test_classes, _) = _folder_scan(files, "train/"), _folder_scan(files, "test/")
        if train_classes != test_classes:
            return {"class mismatch"}
        if not train or not test:
            return {"no image files"}
        n_train, paths = len(train), train + test
    else:
        paths, _, _ = _folder_scan(files)
        if not paths:
            return {"no image files"}
        if len(paths) < 2:
            return {"too few"}
        n_train = len(paths) - max(1, int(round(0.1 * len(paths))))
    reasons = set()
    if any(not isinstance(files[p], Image) for p in paths):
        reasons.add("undecodable")
    shapes = {files[p].shape for p in paths if isinstance(files[p], Image)}
    if len(shapes) > 1:
        reasons.add("mixed sizes")
    if reasons:
        return reasons
    return {"too few"} if too_few(n_train, case.options.get("validation_split", 0.1)) else set()


@st.composite
def image_files(draw, count: int, odd: bool, folder: str = "", shape: Optional[tuple] = None):
    """`count` pictures {name: Image} of one kind (grey, grey+alpha, RGB or RGBA; 8- or 16-bit PNG,
    or JPEG) and one size (`shape`, or drawn); odd: one or more of another size or channel count."""
    if shape is None:
        shape = (draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES)), draw(st.sampled_from([1, 2, 3, 4])))
    h, w, c = shape
    odd_one = draw(st.integers(0, max(count - 1, 0))) if odd else -1
    out = {}
    for i in range(count):
        this = shape
        if i == odd_one or (odd and draw(st.integers(0, 5)) == 0):  # another size or channel count
            this = draw(st.sampled_from([(h + 1, w, c), (h, w + 2, c), (h, w, 1 + c % 4), (h, w, 3)]))
        fmt = "jpeg" if this[2] in (1, 3) and draw(st.integers(0, 7)) == 0 else "png"
        name = f"{folder}img{i:02d}." + ("jpg" if fmt == "jpeg" else draw(st.sampled_from(["png", "png", "PNG"])))
        out[name] = Image(this, draw(st.sampled_from([8, 8, 16])), fmt, draw(st.integers(0, 2**16)))
    return out


def _junk(name: str, content):
    if content is None:  # half of a real PNG
        return Image((4, 4, 1), seed=1).encode()[:30]
    return content


WILD_FOLDER_PARTS = ("odd image", "junk", "empty folder", "few images")


@st.composite
def folder_cases(draw):
    """Image folders: flat, with class subfolders, or train/ and test/ splits (with or without
    classes). Half of them clean (one size and kind, grey to RGBA, 8/16-bit PNG or JPEG, >= 2
    images), the others with one or two faults: an image of another size or channel count among
    them, non-image, hidden, empty or corrupt files, an empty (class) folder, or 0-2 images."""
    wild = draw(st.sets(st.sampled_from(WILD_FOLDER_PARTS), min_size=1, max_size=2)) if draw(st.booleans()) else set()
    few, odd = "few images" in wild, "odd image" in wild
    layout = draw(st.sampled_from(["flat", "flat", "classes", "split"] + (["empty"] if few else [])))
    files = {}
    shape = (draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES)), draw(st.sampled_from([1, 2, 3, 4])))
    if layout == "flat":
        files.update(draw(image_files(draw(st.sampled_from((0, 1, 2) if few else COUNTS[1:])), odd, shape=shape)))
    elif layout == "classes":
        for cls in draw(st.sampled_from([["a"], ["cats", "dogs"], ["0", "1", "2"]])):
            count = draw(st.sampled_from([0, 1] if few else [1, 2, 3, 4]))
            files.update(draw(image_files(count, odd, folder=f"{cls}/", shape=shape)))
    elif layout == "split":
        with_classes = draw(st.booleans())
        for split, counts in (("train", [2, 3, 5]), ("test", [1, 2])):
            count = draw(st.sampled_from([0, 1] if few else counts))
            for i, (name, image) in enumerate(draw(image_files(count, odd, shape=shape)).items()):
                files[f"{split}/{'ab'[i % 2] + '/' if with_classes else ''}{name}"] = image
            if not count:
                files[split] = None  # an empty train/ or test/
    if "junk" in wild:
        for name, content in draw(st.lists(st.sampled_from(JUNK), min_size=1, max_size=2, unique=True)):
            where = draw(st.sampled_from({"classes": ["", "a/"], "split": ["", "train/", "test/"]}.get(layout, [""])))
            files[where + name] = _junk(name, content)
    if "empty folder" in wild:  # an empty class folder, or a hidden one (skipped)
        files[draw(st.sampled_from(["extra", ".cache"]))] = None
    files = {k: v for k, v in files.items() if not (v is None and any(o.startswith(k + "/") for o in files))}
    return FolderCase(files, draw(fit_options()), plain_path=draw(st.booleans()))


# ----------------------------------------------------------------------------------- the property
def check_message(message: str) -> None:
    """A refusal is one line, not empty, in words (no traceback, no TensorFlow op wrapping)."""
    assert message.strip(), "an empty error message"
    assert "\n" not in message and "\r" not in message, f"a message of several lines: {message!r}"
    assert len(message) >= 20, f"a message too short to say what is wrong: {message!r}"
    for leak in ("Traceback", "{{function_node", "[Op:", "Error:", "<built-in"):
        assert leak not in message, f"the message leaks internals ({leak}): {message}"


def check_metrics(metrics: dict) -> None:
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert "loss" in numbers, f"no loss in the final metrics {metrics}"
    bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
    assert not bad, f"trained into non-finite metrics: {bad}"


def run_case(case, reasons: set) -> tuple:
    """Writes the dataset, fits a tiny model on it: ("trained", metrics) or ("refused", message).

    Raises AssertionError when the outcome breaks the property (or the README's promise for the
    dataset); any exception but a TfvaeError propagates as the failure it is."""
    import tfvae
    from tfvae.errors import TfvaeError

    root = tempfile.mkdtemp(prefix="tfvae-property-")
    try:
        spec = case.write(root)
        note(f"dataset {spec}; expected refusal reasons: {sorted(reasons) or 'none (it must train)'}")
        try:
            result = tfvae.fit(spec, out=os.path.join(root, "run"), progress=False, **_fit_kwargs(case.options))
        except TfvaeError as e:
            message = str(e)
            note(f"refused ({type(e).__name__}): {message}")
            check_message(message)
            assert reasons, f"a valid dataset was refused: {message}"
            pattern = "|".join(f"({REASONS[r]})" for r in sorted(reasons))
            assert re.search(pattern, message, re.I), \
                f"the refusal does not say what is wrong ({', '.join(sorted(reasons))}): {message}"
            return "refused", message
        note(f"trained: {result.metrics}")
        check_metrics(result.metrics)
        assert not reasons, f"trained although the dataset should be refused ({', '.join(sorted(reasons))})"
        return "trained", result.metrics
    finally:
        shutil.rmtree(root, ignore_errors=True)


SOURCES = {"npz": (npz_cases, npz_reasons), "folder": (folder_cases, folder_reasons)}

# Datasets that once broke the property (a traceback instead of a line, a misleading line): always run.
REGRESSIONS = {
    "npz": [
        # 0-d images with labels: len() of an unsized object
        NpzCase({"x_train": np.array(3, np.uint8), "x_test": np.zeros((2, 4, 4), np.uint8), "y_train": np.arange(3)}),
        # 5 channels: trained, then EncodePng failed on the epoch picture
        NpzCase({"x_train": np.zeros((6, 4, 4, 5), np.uint8), "x_test": np.zeros((2, 4, 4, 5), np.uint8)}),
        # float64 beyond float32's range was called "NaN or infinite"
        NpzCase({"x_train": np.full((6, 3, 3), 1e39), "x_test": np.zeros((2, 3, 3))}),
        # complex pixels trained on their real part; time deltas: a TypeError
        NpzCase({"x_train": np.zeros((6, 3, 3), np.complex64), "x_test": np.zeros((2, 3, 3))}),
        NpzCase({"x_train": np.zeros((6, 3, 3), "m8[s]"), "x_test": np.zeros((2, 3, 3))}),
        # an .npy file named .npz: a TypeError from the context manager; an object array: "corrupt"
        NpzCase({"x_train": np.zeros((6, 3, 3), np.uint8)}, file="npy"),
        NpzCase({"x_train": np.array([None, 1], dtype=object), "x_test": np.zeros((2, 3, 3))}),
    ],
    "folder": [
        # class subfolders beside the images: "holds 0 image file(s)"
        FolderCase({**{f"img{i}.png": Image((3, 3, 1), seed=i) for i in range(4)}, "extra": None}),
        # a corrupt file: the decoder's words were cut off after TensorFlow's {{function_node ...}}
        FolderCase({**{f"img{i}.png": Image((3, 3, 1), seed=i) for i in range(4)},
                    "corrupt.png": b"\x89PNG\r\n\x1a\n garbage"}),
        # macOS's ._ files beside the pictures: refused as corrupt images
        FolderCase({**{f"img{i}.png": Image((3, 3, 3), seed=i) for i in range(4)}, "._img0.png": b"\x00\x05\x16\x07"}),
    ],
}


def source_property(source: str, examples: int, *, derandomize: bool = True, seed: Optional[int] = None,
                    report: Optional[Callable] = None, regressions: bool = True):
    """The property of one source as a callable test: `examples` generated datasets (derandomized,
    or from `seed`), plus the regression examples; report(source, case, outcome, detail) after each."""
    strategy, reasons_of = SOURCES[source]

    def check(case):
        outcome, detail = run_case(case, reasons_of(case))
        if report is not None:
            report(source, case, outcome, detail)

    test = given(strategy())(check)
    if regressions:
        for case in REGRESSIONS[source]:
            test = example(case)(test)
    test = settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
                    print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])(test)
    if seed is not None and not derandomize:
        test = hypothesis_seed(seed)(test)
    return test


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_fit_trains_or_refuses_in_one_line(source):
    outcomes = Counter()
    source_property(source, EXAMPLES, report=lambda s, case, outcome, detail: outcomes.update([outcome]))()
    assert outcomes["trained"] > 0 or EXAMPLES < 5, f"no generated {source} dataset trained: {dict(outcomes)}"


def test_oracle_agrees_with_the_readme():
    """A few hand-written datasets and what the oracle says of them (the oracle is code too)."""
    u8 = np.zeros((6, 4, 4), np.uint8)
    assert npz_reasons(NpzCase({"x_train": u8, "x_test": u8[:2]})) == set()
    assert npz_reasons(NpzCase({"x_train": u8[:1], "x_test": u8[:1]})) == {"too few"}
    assert npz_reasons(NpzCase({"x_train": u8[:1], "x_test": u8[:1]}, options={"validation_split": 0.0})) == set()
    assert npz_reasons(NpzCase({"x_train": u8.astype(np.float32) + np.nan, "x_test": u8[:2]})) == {"non-finite"}
    assert npz_reasons(NpzCase({"x_train": u8[..., None], "x_test": u8[:2]})) == set()  # (N,H,W,1) ~ (N,H,W)
    assert folder_reasons(FolderCase({"a.png": Image((2, 2, 1)), "b.png": Image((2, 2, 1)),
                                      "c.png": Image((2, 2, 1))})) == set()
    assert folder_reasons(FolderCase({"a.png": Image((2, 2, 1)), "b.png": Image((2, 2, 3)),
                                      "c.png": Image((2, 2, 1))})) == {"mixed sizes"}
    assert folder_reasons(FolderCase({"cls": None, "a.png": Image((2, 2, 1))})) == {"no image files"}
