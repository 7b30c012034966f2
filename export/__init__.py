"""Deployment (installed as tfvae.export): a SavedModel for TF Serving, TFLite decoders, the edge runner."""

# the TFLite decoder variants, here so that the command line can list them without importing TensorFlow
TFLITE_VARIANTS = ("int8", "int16", "dynamic", "float16", "none")
