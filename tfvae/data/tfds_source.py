"""TensorFlow Datasets as a source: any TFDS image dataset, downloaded on first use.

Offline, `tfds.load` retries for minutes before it fails. Before a download starts, tfvae checks
that the network answers (a few seconds at most) and otherwise says so in one line, naming the
offline sources.
"""

from __future__ import annotations

import os
import socket
import threading

import numpy as np

from tfvae.errors import DataError, NetworkError

OFFLINE_HINT = (
    "use an offline source instead: idx:DIR (MNIST-format IDX files), npz:FILE (x_train, x_test "
    "arrays) or folder:DIR (image files)"
)
# Where an offline copy of a dataset can come from, by TFDS name.
OFFLINE_COPIES = {
    "fashion_mnist": "Debian/Ubuntu ship Fashion-MNIST's IDX files: apt-get install dataset-fashion-mnist, "
                     "then --dataset idx:/usr/share/datasets/fashion-mnist",
}


def offline_hint(name: str) -> str:
    copy = OFFLINE_COPIES.get(name.split("/")[0].split(":")[0])
    return f"{OFFLINE_HINT}; {copy}" if copy else OFFLINE_HINT


def close_names(name: str, known) -> list:
    """Known TFDS names a mistyped one is near: fashion-mnist, FashionMNIST -> fashion_mnist."""
    import difflib
    import re

    base, sep, rest = name.partition("/")
    known = list(known)
    norm = lambda n: re.sub(r"[^a-z0-9]", "", n.lower())  # noqa: E731
    exact = [k for k in known if norm(k) == norm(base)]
    near = exact or difflib.get_close_matches(base.lower().replace("-", "_"), known, n=3, cutoff=0.8)
    return [k + sep + rest for k in near]

# TFDS fetches prepared datasets from Google Cloud Storage, and raw files from the dataset's home.
_PROBE_HOSTS = (("storage.googleapis.com", 443),)


def _proxy_host():
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        value = os.environ.get(var)
        if value:
            from urllib.parse import urlparse

            u = urlparse(value if "://" in value else "http://" + value)
            if u.hostname:
                return u.hostname, u.port or 8080
    return None


def network_reachable(timeout: float = 3.0) -> bool:
    """True when a TCP connection to the download host (or the configured proxy) opens in time.

    Name resolution has no timeout of its own, so the probe runs in a daemon thread.
    """
    proxy = _proxy_host()
    targets = [proxy] if proxy else list(_PROBE_HOSTS)
    result = {"ok": False}

    def probe():
        for host, port in targets:
            try:
                with socket.create_connection((host, port), timeout=timeout):
                    result["ok"] = True
                    return
            except OSError:
                continue

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout * len(targets) + 1.0)
    return result["ok"]


def _builder(name: str, data_dir):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError, DatasetVariantBlockedError, ...
        kind = type(e).__name__
        if "NotFound" in kind or "not found" in str(e).lower() or "Parsing builder name" in str(e):
            try:
                near = close_names(name, tfds.list_builders())
            except Exception:
                near = []
            if near:
                options = near[0] if len(near) == 1 else ", ".join(near[:-1]) + " or " + near[-1]
                raise DataError(f"unknown dataset {name!r}; did you mean {options}?") from None
            raise DataError(
                f"unknown dataset {name!r}: it is neither a TFDS dataset (mnist, fashion_mnist, kmnist, "
                "emnist, cifar10, ...) nor idx:DIR, npz:FILE or folder:DIR"
            ) from None
        raise DataError(f"TFDS cannot open dataset {name!r}: {str(e).splitlines()[0]}") from None


def _is_prepared(builder) -> bool:
    try:
        return bool(builder.is_prepared())
    except Exception:
        return False


def _to_arrays(builder, split: str, image_key: str, label_key):
    ds = builder.as_dataset(split=split, shuffle_files=False).batch(4096)
    xs, ys = [], []
    import tensorflow_datasets as tfds

    for batch in tfds.as_numpy(ds):
        xs.append(batch[image_key])
        if label_key:
            ys.append(batch[label_key])
    if not xs:
        raise DataError(f"TFDS dataset {builder.name} split {split!r} is empty")
    x = np.concatenate(xs)
    y = np.concatenate(ys).astype(np.int64) if label_key else None
    return x, y


def load_tfds(name: str, data_dir=None):
    """Returns (x_train, y_train, x_test, y_test, info) for TFDS dataset `name`."""
    builder = _builder(name, data_dir)
    features = builder.info.features
    keys = list(features.keys()) if hasattr(features, "keys") else []
    if "image" not in keys:
        raise DataError(
            f"TFDS dataset {name!r} has no 'image' feature (it has: {', '.join(keys) or 'none'}); "
            "tfvae trains on image datasets"
        )
    shape = tuple(features["image"].shape)
    if any(d is None for d in shape):
        raise DataError(
            f"TFDS dataset {name!r} has images of varying size {shape}; choose a dataset with "
            "fixed-size images or resize them into a folder:DIR source"
        )
    label_key = "label" if "label" in keys else None
    if not _is_prepared(builder):
        if not network_reachable():
            raise NetworkError(
                f"cannot download TFDS dataset {name!r}: the network is unreachable; {offline_hint(builder.name)}"
            )
        try:
            builder.download_and_prepare()
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NetworkError(
                f"downloading TFDS dataset {name!r} failed ({type(e).__name__}: {first[:200]}); "
                f"check the network or {offline_hint(builder.name)}"
            ) from None
    splits = list(builder.info.splits.keys()) if builder.info.splits else []
    x_train, y_train = _to_arrays(builder, "train", "image", label_key)
    test_split = "test" if "test" in splits or not splits else ("validation" if "validation" in splits else None)
    if test_split is None:
        x_test, y_test = None, None
    else:
        x_test, y_test = _to_arrays(builder, test_split, "image", label_key)
    names = None
    if label_key is not None and hasattr(features[label_key], "names"):
        try:
            names = list(features[label_key].names)
        except Exception:
            names = None
    return x_train, y_train, x_test, y_test, names
