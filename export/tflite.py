"""TFLite (LiteRT) decoders for on-device sampling, and their measurement.

Variants of the decoder z (N, latent_dim) float32 -> images (N, H, W, C) pixel means:
  none      float32
  dynamic   dynamic-range quantization (int8 weights, float activations)
  float16   float16 weights
  int8      full integer: int8 weights, activations, input and output; calibrated on z drawn from
            the prior (the representative dataset); quantization parameters are in the file
  int16     int8 weights, int16 activations (TFLite's 16x8 quantization), float32 input and
            output; calibrated like int8: a quarter of the float size, several times int8's accuracy

and a sampler: n (int32 scalar) -> images, drawing z from the prior with TFLite's builtin random
ops (RANDOM_STANDARD_NORMAL for N(0, I)).

Conversion is restricted to TFLite builtin ops, so a graph that would need the Flex delegate
(which the pip runtime cannot run) fails at conversion time, loudly.
"""

from __future__ import annotations

import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae.errors import TfvaeError
from tfvae.export import TFLITE_VARIANTS as VARIANTS
REPRESENTATIVE_SAMPLES = 500


def _saved_model_of(fn, input_signature, track, directory):
    archive = keras.export.ExportArchive()
    for t in track:
        archive.track(t)
    archive.add_endpoint("serving_default", fn, input_signature=input_signature)
    archive.write_out(directory, verbose=False)


def _calibration_rows(codes, labels, batch=None):
    """The representative inputs: [z (1, d)] per code, or {"z", "label"} by input name (a
    conditional decoder); for a program with a fixed batch, `batch` codes at a time."""
    step = batch or 1
    order = np.arange(-(-len(codes) // step) * step) % len(codes)  # every code (the extremes last), wrapped
    for i in range(0, len(order), step):
        rows = order[i:i + step]
        if labels is None:
            yield [codes[rows]]
        else:
            yield {"z": codes[rows], "label": np.asarray(labels[rows], np.int32)}


def _convert(saved_model_dir, variant: str, representative=None, float_io: bool = False) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not float_io:  # int8 in and out; float_io keeps float32 at the edges (the web runtime has no int8)
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif variant == "int16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    elif variant != "none":
        raise TfvaeError(f"unknown --quantize {variant!r}: choose {', '.join(VARIANTS)}")
    try:
        return converter.convert()
    except Exception as e:  # ConverterError: an op outside the builtin set, for instance
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfvaeError(f"TFLite conversion ({variant}) failed with builtin ops only: {first[:300]}") from None


def _edge_module():
    """export/edge/tfvae_edge.py, the on-device runner: its prior sampler is the one the exports use."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "edge", "tfvae_edge.py")
    spec = importlib.util.spec_from_file_location("tfvae_edge", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw_prior(mixture: dict, n: int, seed: int, labels=None) -> np.ndarray:
    """n draws (float32) from a prior given as a mixture of diagonal Gaussians (`Prior.mixture()`;
    a per-class prior's component by `labels`), exactly as the edge runner draws them on a device."""
    return _edge_module().draw_prior(mixture, n, seed, labels)


def calibration_inputs(model, seed: int = 0):
    """(codes, labels or None), the representative dataset of the integer decoders:
    REPRESENTATIVE_SAMPLES codes from the prior, and the draws that hold each dimension's smallest
    and largest value among 100,000, so that the quantized input's range holds the codes a device
    will draw (a code beyond it is clipped). Real draws, not a vector of every dimension's
    extreme: such a code drives the hidden layers far beyond their usual ranges and coarsens their
    quantization (on the fmnist-vamp decoder the int8 decoder's mean error rose from 0.012 to
    0.050 with it). A conditional model's come with a label per code (drawn from p(z|y) for that
    label where the prior is per class)."""
    labels = model.reference_labels(REPRESENTATIVE_SAMPLES, seed)
    codes = model.reference_codes(REPRESENTATIVE_SAMPLES, seed, labels)
    wide_labels = model.reference_labels(100_000, seed + 7919)
    wide = model.reference_codes(100_000, seed + 7919, wide_labels)
    extremes = np.unique(np.concatenate([wide.argmin(axis=0), wide.argmax(axis=0)]))
    codes = np.concatenate([codes, wide[extremes]])
    return codes, None if labels is None else np.concatenate([labels, wide_labels[extremes]])


def convert_decoder(model, variants=VARIANTS, seed: int = 0, batch=None, float_io: bool = False, extra=None) -> dict:
    """{variant: .tflite bytes} of the decoder z -> pixel means ((z, label) for a conditional
    model: an int32 label per row, one-hot inside the program). `batch`: a fixed batch size
    instead of any (the web runtime takes static shapes only); `float_io`: the int8 decoder takes
    and returns float32 (quantized inside), as the web runtime, which has no int8 tensors, needs;
    `extra`: (codes, labels or None) the integer decoders are calibrated on besides the prior's."""
    z_spec = tf.TensorSpec([batch, model.config.latent_dim], tf.float32, name="z")
    label_spec = [tf.TensorSpec([batch], tf.int32, name="label")] if model.conditional else []

    if model.conditional:
        def decode(z, label):
            return {"images": model.given(label, one_per_row=True).decode_mean(z)}
    else:
        def decode(z):
            return {"images": model.decode_mean(z)}

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        _saved_model_of(decode, [z_spec, *label_spec], list(model.parts.values()), tmp)
        codes, labels = calibration_inputs(model, seed)
        if extra is not None:
            codes = np.concatenate([extra[0], codes])
            labels = None if labels is None else np.concatenate([extra[1], labels])
        for variant in variants:
            out[variant] = _convert(tmp, variant, lambda: _calibration_rows(codes, labels, batch), float_io)
    return out


def convert_sampler(model) -> bytes:
    """A float32 TFLite program: n -> n images and their codes z, z drawn in the program from the
    model's prior (a conditional model's: label (n,) -> one image per label, z from p(z|y))."""
    if model.conditional:
        def sample(label):
            given = model.given(label, one_per_row=True)
            z = given.prior.sample_in_graph(tf.shape(label)[0])
            return {"images": given.decode_mean(z), "z": tf.identity(z)}

        spec = model.export_label_spec()
    else:
        def sample(n):
            z = model.prior.sample_in_graph(n)
            return {"images": model.decode_mean(z), "z": tf.identity(z)}

        spec = [tf.TensorSpec([], tf.int32, name="n")]
    with tempfile.TemporaryDirectory() as tmp:
        _saved_model_of(sample, spec, list(model.parts.values()), tmp)
        return _convert(tmp, "none")


# ---------------------------------------------------------------------------------- running
class LiteDecoder:
    """Runs a decoder .tflite through the LiteRT interpreter, quantizing int8 input and output."""

    def __init__(self, model_content: bytes = None, path: str = None, threads: int = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model_content, model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self._details()
        self.batch = int(self.input["shape"][0])

    def _details(self):
        self.input, self.label_input = _edge_module().inputs_of(self.interpreter)
        self.output = self.interpreter.get_output_details()[0]

    @property
    def conditional(self) -> bool:
        return self.label_input is not None

    def _resize(self, batch: int):
        if batch != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, int(self.input["shape"][1])])
            if self.label_input is not None:
                self.interpreter.resize_tensor_input(self.label_input["index"], [batch])
            self.interpreter.allocate_tensors()
            self._details()
            self.batch = batch

    def __call__(self, z: np.ndarray, labels=None) -> np.ndarray:
        z = np.asarray(z, np.float32)
        self._resize(len(z))
        if self.label_input is not None:
            if labels is None:
                raise TfvaeError("this decoder is conditioned on the label: give one label per code")
            self.interpreter.set_tensor(self.label_input["index"], np.asarray(labels, np.int32))
        if self.input["dtype"] == np.int8:
            scale, zero = self.input["quantization"]
            z = np.clip(np.round(z / scale + zero), -128, 127).astype(np.int8)
        self.interpreter.set_tensor(self.input["index"], z)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] == np.int8:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


def latency_per_sample(run, z: np.ndarray, batch: int, repeats: int = 20, labels=None) -> float:
    """Seconds per sample of `run` at batch size `batch` (median of `repeats` timed calls)."""
    zb = z[:batch] if len(z) >= batch else np.resize(z, (batch, z.shape[1]))
    args = (zb,) if labels is None else (zb, np.resize(labels, batch))
    run(*args)  # warm-up: allocation, first call
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / batch


def measure(content: bytes, reference, z: np.ndarray, labels=None) -> dict:
    """Size, error against the Keras decoder's pixel means `reference` on z (and labels, a
    conditional decoder), and latency."""
    lite = LiteDecoder(model_content=content)
    got = np.concatenate([lite(z[i:i + 64], None if labels is None else labels[i:i + 64])
                          for i in range(0, len(z), 64)])
    err = np.abs(got - reference)
    return {
        "bytes": len(content),
        "max_abs_error": float(err.max()),
        "mean_abs_error": float(err.mean()),
        "p999_abs_error": float(np.quantile(err, 0.999)),
        "us_per_sample_batch1": latency_per_sample(lite, z, 1, repeats=50, labels=labels) * 1e6,
        "us_per_sample_batch64": latency_per_sample(lite, z, 64, labels=labels) * 1e6,
    }


def tensor_details(content: bytes) -> dict:
    """Input and output tensors of a .tflite file (name, shape, dtype, quantization): for apps."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)

    def describe(d):
        scale, zero = d["quantization"]
        return {"name": d["name"], "shape": [int(s) for s in d["shape_signature"]], "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None}

    return {"inputs": [describe(d) for d in it.get_input_details()],
            "outputs": [describe(d) for d in it.get_output_details()]}

