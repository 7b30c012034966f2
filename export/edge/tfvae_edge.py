#!/usr/bin/env python3
"""Sample images on a device from a tfvae TFLite decoder. Needs only numpy and ai-edge-litert.

    pip install numpy ai-edge-litert
    python tfvae_edge.py --model decoder_int8.tflite -n 16 --seed 5 -o samples.png
    python tfvae_edge.py --model decoder_float16.tflite --z codes.npy -o decoded.npy

A conditional decoder (exported from a `--condition label` run) takes the class: `--label 5`
or `--label Sandal` (the names in labels.json beside the decoder).

It draws z from the model's prior with numpy (seeded, so the same seed gives the same images):
the prior.json beside the decoder (a mixture of diagonal Gaussians; N(0, I) is one component),
or N(0, I) when there is none. It quantizes z
and dequantizes the images with the model's own parameters when the decoder is full-integer
(int8), and writes a PNG grid (encoded here with zlib and struct; no Pillow needed) or a .npy
array of pixel means in [0, 1].
"""

import argparse
import io
import json
import math
import os
import struct
import sys
import time
import zlib

import numpy as np


def load_interpreter(path, threads=None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        sys.exit("error: the LiteRT runtime is missing; install it with: pip install numpy ai-edge-litert")
    try:
        interpreter = Interpreter(model_path=path, num_threads=threads)
    except (ValueError, RuntimeError) as e:
        sys.exit(f"error: cannot load {path}: {e}")
    interpreter.allocate_tensors()
    return interpreter


def inputs_of(interpreter):
    """(the codes' input, the label's input or None): a conditional decoder also takes an int32
    label per row."""
    details = interpreter.get_input_details()
    labels = [d for d in details if d["dtype"] == np.int32 and len(d["shape"]) == 1]
    codes = [d for d in details if d not in labels]
    return codes[0], (labels[0] if labels else None)


def decode(interpreter, z, labels=None):
    """Pixel means for codes z (count, latent_dim) (and labels (count,), a conditional decoder),
    whatever the model's input/output types."""
    inp, lab = inputs_of(interpreter)
    if list(inp["shape"]) != [len(z), z.shape[1]]:
        interpreter.resize_tensor_input(inp["index"], [len(z), z.shape[1]])
        if lab is not None:
            interpreter.resize_tensor_input(lab["index"], [len(z)])
        interpreter.allocate_tensors()
        inp, lab = inputs_of(interpreter)
    if lab is not None:
        if labels is None:
            raise ValueError("this decoder is conditioned on the label: give one per code")
        interpreter.set_tensor(lab["index"], np.asarray(labels, np.int32))
    out = interpreter.get_output_details()[0]
    x = z.astype(np.float32)
    if inp["dtype"] == np.int8:  # full-integer model: quantize with its own scale and zero point
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return np.clip(y.astype(np.float32), 0.0, 1.0)


def standard_normal(latent):
    """N(0, I) as a one-component mixture."""
    return {"weights": [1.0], "loc": [[0.0] * latent], "scale": [[1.0] * latent]}


def draw_prior(mixture, n, seed, labels=None):
    """n draws (float32) from a mixture of diagonal Gaussians {"weights" (K,), "loc", "scale" (K, latent)}:
    eps ~ N(0, I), then (for K > 1) a component k per draw, z = loc[k] + scale[k] * eps. A prior
    with one component per class ("per_class": p(z|y)) takes component k = the draw's label; one
    whose components belong to classes ("component_class": the class of each component, a
    VampPrior per class) draws k among the components of the draw's label, by their weights."""
    rng = np.random.default_rng(seed)
    loc = np.asarray(mixture["loc"], np.float32)
    scale = np.asarray(mixture["scale"], np.float32)
    weights = np.asarray(mixture["weights"], np.float64)
    eps = rng.standard_normal((n, loc.shape[1])).astype(np.float32)
    if "component_class" in mixture and labels is not None:
        owner, labels = np.asarray(mixture["component_class"], np.int64), np.asarray(labels, np.int64)
        k = np.empty(n, np.int64)
        for c in np.unique(labels):
            rows, mine = np.flatnonzero(labels == c), np.flatnonzero(owner == c)
            if not len(mine):
                raise ValueError(f"the prior has no component of class {c}; give a label the model was trained on")
            k[rows] = rng.choice(mine, size=len(rows), p=weights[mine] / weights[mine].sum())
    elif mixture.get("per_class") and labels is not None:
        k = np.asarray(labels, np.int64)
    elif len(weights) == 1:
        k = np.zeros(n, np.int64)
    else:
        k = rng.choice(len(weights), size=n, p=weights / weights.sum())
    return (loc[k] + scale[k] * eps).astype(np.float32)


def read_prior(path, latent):
    """The prior a decoder was exported with (prior.json), checked against the decoder's input."""
    try:
        with open(path, encoding="utf-8") as f:
            mixture = json.load(f)
        loc = np.asarray(mixture["loc"], np.float32)
        ok = loc.ndim == 2 and loc.shape[1] == latent and np.shape(mixture["scale"]) == loc.shape \
            and np.shape(mixture["weights"]) == (loc.shape[0],)
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"error: cannot read the prior {path}: {e}")
    if not ok:
        sys.exit(f"error: the prior {path} does not fit the decoder's {latent}-dimensional codes")
    return mixture


def read_label(given, conditional, path):
    """--label as an int, checked against labels.json ({"classes": [...], "names": [...]}) beside
    the decoder; None for a decoder that takes no label."""
    if not conditional:
        if given is not None:
            sys.exit("error: --label is for a conditional decoder (exported from a --condition label run); "
                     "this one takes no label")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            known = json.load(f)
        classes, names = [int(c) for c in known["classes"]], list(known.get("names") or [])
    except (OSError, ValueError, KeyError, TypeError):
        classes, names = None, []
    listed = ", ".join(f"{c} ({names[c]})" if c < len(names) else str(c) for c in classes) if classes else ""
    if given is None:
        sys.exit("error: this decoder is conditioned on the label: pass --label N" + (f" (one of {listed})" if listed else ""))
    text = str(given).strip()
    lowered = [str(n).lower() for n in names]
    if text.lstrip("-").isdigit():
        label = int(text)
    elif text.lower() in lowered:
        label = lowered.index(text.lower())
    else:
        sys.exit(f"error: unknown --label {given!r}" + (f"; give one of {listed}" if listed else "; give a number"))
    if classes is not None and label not in classes:
        sys.exit(f"error: --label {label} is not a class the model was trained on; give one of {listed}")
    return label


def grid(images, columns=None, pad=2):
    """(count, H, W, C) floats in [0, 1] -> one uint8 image (rows, cols, C), white gaps."""
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    out = np.full((rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad, c), 255, np.uint8)
    pixels = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[top:top + h, left:left + w] = pixels[i]
    return out


def png_bytes(image):
    """A PNG file of a uint8 (H, W, 1|3|4) image: signature, IHDR, one IDAT, IEND."""
    h, w, c = image.shape
    color_type = {1: 0, 3: 2, 4: 6}[c]

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(h))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def recommended_decoder():
    """The decoder the export recommends (report.json's recommended_decoder), beside edge/."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(root, "report.json"), encoding="utf-8") as f:
            name = json.load(f).get("recommended_decoder")
    except (OSError, ValueError):
        name = None
    path = os.path.join(root, "tflite", f"decoder_{name}.tflite") if name else None
    if path is None or not os.path.isfile(path):
        sys.exit("error: no --model given and no recommended decoder found in report.json beside edge/; "
                 "pass --model tflite/decoder_<variant>.tflite")
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description="Sample images from a tfvae TFLite decoder.")
    p.add_argument("--model", default=None, help="a decoder_*.tflite file (default: the export's recommended "
                   "decoder, named in report.json beside edge/)")
    p.add_argument("-n", type=int, default=16, help="number of images (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of z ~ p(z) (default 0)")
    p.add_argument("--prior", default=None, help="prior.json to draw z from (default: the one beside --model, "
                   "else N(0, I))")
    p.add_argument("--z", help="decode these codes (.npy of shape (count, latent_dim)) instead of sampling")
    p.add_argument("-o", "--out", default="samples.png", help="output: .png (a grid) or .npy (default samples.png)")
    p.add_argument("--columns", type=int, default=None, help="images per row of the grid")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads")
    p.add_argument("--label", default=None, help="a conditional decoder's class: a label or a class name (from "
                   "labels.json beside the decoder)")
    args = p.parse_args(argv)
    if args.model is None:
        args.model = recommended_decoder()
    if not args.out.endswith((".png", ".npy")):
        sys.exit("error: --out must end in .png or .npy")
    if args.n < 1:
        sys.exit("error: -n must be at least 1")

    interpreter = load_interpreter(args.model, args.threads)
    inp, label_input = inputs_of(interpreter)
    if len(inp["shape"]) != 2 or inp["dtype"] not in (np.float32, np.int8):
        sys.exit(f"error: {args.model} is not a decoder (its input is {inp['dtype'].__name__} "
                 f"{list(inp['shape'])}, not codes (count, latent_dim)); use a decoder_*.tflite")
    latent = int(inp["shape"][-1])
    label = read_label(args.label, label_input is not None, os.path.join(os.path.dirname(os.path.abspath(args.model)),
                                                                         "labels.json"))
    if args.z:
        try:
            z = np.load(args.z, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as e:
            sys.exit(f"error: cannot read --z {args.z}: {e}")
        if z.ndim != 2 or z.shape[1] != latent:
            sys.exit(f"error: --z must have shape (count, {latent}), got {z.shape}")
    else:
        beside = os.path.join(os.path.dirname(os.path.abspath(args.model)), "prior.json")
        path = args.prior or (beside if os.path.isfile(beside) else None)
        mixture = read_prior(path, latent) if path else standard_normal(latent)
        z = draw_prior(mixture, args.n, args.seed, None if label is None else np.full(args.n, label))
    t0 = time.perf_counter()
    images = decode(interpreter, z, None if label is None else np.full(len(z), label, np.int32))
    seconds = time.perf_counter() - t0
    buf = io.BytesIO()
    if args.out.endswith(".npy"):
        np.save(buf, images)
    else:
        buf.write(png_bytes(grid(images, args.columns)))
    tmp = f"{args.out}.tmp-{os.getpid()}"  # written whole, then renamed: never a half-written file
    try:
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, args.out)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        sys.exit(f"error: cannot write {args.out}: {e.strerror or e}")
    print(f"wrote {args.out}: {len(z)} images {'x'.join(map(str, images.shape[1:]))} "
          f"in {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
