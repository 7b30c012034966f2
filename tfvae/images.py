"""Image grids as PNG files (tf.io.encode_png), written atomically."""

from __future__ import annotations

import math

import numpy as np


def to_uint8(images) -> np.ndarray:
    """Floats in [0, 1] (count, height, width, channels) -> uint8, clipped."""
    x = np.asarray(images, dtype=np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def grid(images, columns: int | None = None, pad: int = 2, background: int = 255) -> np.ndarray:
    """Tiles (count, height, width, channels) images into one (H, W, channels) uint8 image."""
    x = to_uint8(images)
    if x.ndim == 3:
        x = x[..., None]
    n, h, w, c = x.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    out = np.full((rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad, c), background, np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[top:top + h, left:left + w] = x[i]
    return out


def rows_grid(rows_of_images, pad: int = 2) -> np.ndarray:
    """One grid row per array in `rows_of_images` (e.g. originals above reconstructions)."""
    columns = max(len(r) for r in rows_of_images)
    stacked = []
    for r in rows_of_images:
        r = np.asarray(r, dtype=np.float32)
        if len(r) < columns:  # pad short rows with white
            r = np.concatenate([r, np.ones((columns - len(r),) + r.shape[1:], np.float32)])
        stacked.append(r)
    return grid(np.concatenate(stacked), columns=columns, pad=pad)


def encode_png(image: np.ndarray) -> bytes:
    import tensorflow as tf

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    return tf.io.encode_png(image).numpy()


def write_png(path: str, image: np.ndarray) -> None:
    from tfvae.rundir import atomic_write_bytes

    atomic_write_bytes(path, encode_png(image))
