"""A SavedModel that TF Serving loads as it is: named signatures over the trained networks.

The signatures are the model family's (`export_endpoints`); today's families give:
  serving_default  images (N, H, W, C) float32 in [0, 1] -> reconstructions (pixel means)
  encode           images -> loc, scale (variational) | code (autoencoders)
  decode           z (N, latent_dim) -> images (pixel means)
  sample           n (int32 scalar) -> images, z          z ~ p(z) drawn inside the graph
  score            images -> score: the negative ELBO per image (variational families)

Built with `keras.export.ExportArchive` tracking every Keras part of the model (a learned prior's
variables included), so the file holds core TensorFlow ops only: a process that imports nothing
but TensorFlow loads it and runs every signature.
"""

from __future__ import annotations

import keras

SCORE_SEED = (20240, 1)  # the score signature's fixed noise: the same request gives the same answer


def signature_names(model) -> list:
    return list(model.export_endpoints())


def build_archive(model) -> "keras.export.ExportArchive":
    """An ExportArchive with the family's signatures, for a model of tfvae.models."""
    archive = keras.export.ExportArchive()
    for part in model.parts.values():
        archive.track(part)
    for name, (fn, signature) in model.export_endpoints().items():
        archive.add_endpoint(name, fn, input_signature=signature)
    return archive


def write_savedmodel(model, path: str) -> None:
    """Writes the SavedModel into `path` (a directory that must not exist yet)."""
    build_archive(model).write_out(path, verbose=False)
