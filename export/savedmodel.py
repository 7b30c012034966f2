"""A SavedModel that TF Serving loads as it is: named signatures over the trained networks.

Signatures (inputs -> outputs):
  serving_default  images (N, H, W, C) float32 in [0, 1] -> reconstructions (pixel means)
  encode           images -> loc, scale (variational) | code (autoencoders)
  decode           z (N, latent_dim) -> images (pixel means)
  sample           n (int32 scalar) -> images, z          z ~ N(0, I) drawn inside the graph
  score            images -> score: the negative ELBO per image (variational models only)

Built with `keras.export.ExportArchive`, so the file holds core TensorFlow ops only: a process that
imports nothing but TensorFlow loads it and runs every signature.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvae import objectives

SCORE_SEED = (20240, 1)  # the score signature's fixed noise: the same request gives the same answer


def signature_names(model) -> list:
    names = ["serving_default", "encode", "decode"]
    if model.variational:
        names += ["sample", "score"]
    return names


def build_archive(model) -> "keras.export.ExportArchive":
    """An ExportArchive with the signatures above, for a `tfvae.models.Autoencoder`."""
    archive = keras.export.ExportArchive()
    archive.track(model.encoder)
    archive.track(model.decoder)
    images_spec = tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")
    z_spec = tf.TensorSpec([None, model.config.latent_dim], tf.float32, name="z")

    def reconstruct(images):
        return {"reconstructions": model.reconstruct(images)}

    def encode(images):
        out = model.encoder(images, training=False)
        return {k: tf.identity(v, name=k) for k, v in out.items()}

    def decode(z):
        return {"images": model.decode_mean(z)}

    archive.add_endpoint("serving_default", reconstruct, input_signature=[images_spec])
    archive.add_endpoint("encode", encode, input_signature=[images_spec])
    archive.add_endpoint("decode", decode, input_signature=[z_spec])
    if model.variational:
        def sample(n):
            z = tf.random.normal(tf.stack([n, model.config.latent_dim]))
            return {"images": model.decode_mean(z), "z": z}

        def score(images):
            eps = tf.random.stateless_normal([tf.shape(images)[0], 1, model.config.latent_dim], SCORE_SEED)
            terms = objectives.elbo(model.encoder, model.decoder, model.likelihood, images, eps)
            return {"score": -terms["elbo"]}

        archive.add_endpoint("sample", sample, input_signature=[tf.TensorSpec([], tf.int32, name="n")])
        archive.add_endpoint("score", score, input_signature=[images_spec])
    return archive


def write_savedmodel(model, path: str) -> None:
    """Writes the SavedModel into `path` (a directory that must not exist yet)."""
    build_archive(model).write_out(path, verbose=False)
