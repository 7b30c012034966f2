"""Encoder and decoder networks as Keras 3 functional models.

Encoders take images (height, width, channels) and return what the family's head makes of the
features: `{"loc", "scale"}` for the variational families (their posterior's head), `{"code"}`
for the autoencoders.
Decoders take a code or latent vector and return the likelihood's parameters: `{"logits"}` for
Bernoulli, `{"loc"[, "scale"]}` for Gaussian.

- `mlp`: dense layers of the `hidden` sizes (e.g. 784-400-20 as in Kingma & Welling, or
  784-200-200-50 tanh as in the IWAE paper); the decoder mirrors them.
- `--condition label` (a conditional model, Sohn et al., 2015): both networks take the label as
  a second input, one-hot (`label`, width `label_classes`), joined to the flattened image (MLP),
  to the convolutions' flattened features (conv), and to z before the decoder's first layer.
- `conv`: two stride-2 convolutions (32, 64 filters), a dense layer of `hidden[0]` units, the
  code; the decoder mirrors them with transposed convolutions. Any channel count; height and
  width must be multiples of 4 (28x28, 32x32, ...).
"""

from __future__ import annotations

import math

import keras

from tfvae.errors import ConfigError
from tfvae.layers import GatedDense, PositiveScale

CONV_FILTERS = (32, 64)
# The layers that produce distribution parameters compute in float32 even under a mixed-precision
# policy (--mixed-precision): probabilities, KL and losses stay in float32.
HEAD = "float32"


def dense(config, units: int, name: str):
    """A hidden dense layer: Dense with the config's activation, or GatedDense for 'gated'."""
    if config.activation == "gated":
        return GatedDense(units, name=name)
    return keras.layers.Dense(units, activation=config.activation, name=name)


def conv_activation(config):
    """Convolutions use the config's activation; with 'gated' (a dense-layer kind), ReLU."""
    return "relu" if config.activation == "gated" else config.activation


def _check_image_shape(config, image_shape):
    if len(image_shape) != 3:
        raise ConfigError(f"images must be (height, width, channels), got {image_shape}")
    h, w, _ = image_shape
    if config.network == "conv" and (h % 4 or w % 4):
        raise ConfigError(
            f"--network conv needs image sides that are multiples of 4 (28x28, 32x32, ...), got {h}x{w}; "
            "use --network mlp"
        )


def label_input(config):
    """The one-hot label input of a conditional network, or None (--condition none)."""
    if config.condition != "label":
        return None
    if config.label_classes < 2:
        raise ConfigError("--condition label needs at least 2 classes; the run's label_classes is "
                          f"{config.label_classes}")
    return keras.Input((config.label_classes,), name="label")


def _joined(h, label):
    """h with the one-hot label beside it (a conditional network), else h."""
    if label is None:
        return h
    return keras.layers.Concatenate(name="with_label")([h, label])


def build_encoder(config, image_shape, head) -> keras.Model:
    """images (and the one-hot label, --condition label) -> head(features): the family's head
    (`{"loc", "scale"}` from a posterior, `{"code"}`) on the features of the dense layers (mlp) or
    of the convolutions and a dense layer (conv)."""
    _check_image_shape(config, image_shape)
    x = keras.Input(tuple(image_shape), name="images")
    label = label_input(config)
    h = x
    if config.network == "conv":
        for i, filters in enumerate(CONV_FILTERS):
            h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation=conv_activation(config),
                                    name=f"conv_{i}")(h)
    h = _joined(keras.layers.Flatten(name="flatten")(h), label)
    for i, units in enumerate(config.hidden):
        h = dense(config, units, f"dense_{i}")(h)
    return keras.Model(x if label is None else [x, label], head(h), name="encoder")


def _pixel_head(h, image_shape, likelihood):
    """Dense heads for the MLP decoder: logits, or loc (sigmoid) and scale."""
    size = math.prod(image_shape)

    def dense_image(name, activation=None):
        y = keras.layers.Dense(size, activation=activation, name=f"{name}_dense", dtype=HEAD)(h)
        return keras.layers.Reshape(tuple(image_shape), name=name, dtype=HEAD)(y)

    return likelihood_heads(likelihood, h, dense_image)


def likelihood_heads(likelihood, top, image_layer) -> dict:
    """The likelihood's parameters (`likelihood.output_keys`) from a decoder's last features:
    `image_layer(name, activation)` makes an image-shaped output (a dense layer and a reshape, a
    convolution); logits, or loc (sigmoid) and a scale (per image from `top`, or per pixel)."""
    out, keys = {}, likelihood.output_keys
    if "logits" in keys:
        out["logits"] = image_layer("logits")
    if "loc" in keys:
        out["loc"] = image_layer("loc", "sigmoid")
    if "scale" in keys:
        out["scale"] = _scale_head(likelihood, top, image_layer)
    return out


def _scale_head(likelihood, h, per_pixel):
    """A learned scale: one per image (a dense unit on `h`), or one per pixel (`per_pixel`)."""
    if likelihood.variance == "image":
        s = keras.layers.Dense(1, name="scale_dense", dtype=HEAD)(h)
        s = PositiveScale(likelihood.min_scale, name="scale_positive", dtype=HEAD)(s)
        return keras.layers.Reshape((1, 1, 1), name="scale", dtype=HEAD)(s)
    raw = per_pixel("raw_scale")
    return PositiveScale(likelihood.min_scale, name="scale", dtype=HEAD)(raw)


def build_decoder(config, image_shape, likelihood) -> keras.Model:
    """z (and the one-hot label, --condition label) -> the likelihood's parameters
    (`likelihood.output_keys`): the encoder mirrored."""
    _check_image_shape(config, image_shape)
    z = keras.Input((config.latent_dim,), name="z")
    label = label_input(config)
    inputs = z if label is None else [z, label]
    h = _joined(z, label)
    if config.network == "mlp":
        for i, units in enumerate(reversed(config.hidden)):
            h = dense(config, units, f"dense_{i}")(h)
        return keras.Model(inputs, _pixel_head(h, image_shape, likelihood), name="decoder")

    height, width, channels = image_shape
    for i, units in enumerate(config.hidden):
        h = dense(config, units, f"dense_{i}")(h)
    top = h
    small = (height // 4, width // 4, CONV_FILTERS[-1])
    h = keras.layers.Dense(math.prod(small), activation=conv_activation(config), name="dense_grid")(h)
    h = keras.layers.Reshape(small, name="grid")(h)
    for i, filters in enumerate(reversed(CONV_FILTERS)):
        h = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation=conv_activation(config),
                                         name=f"deconv_{i}")(h)

    def conv_image(name, activation=None):
        return keras.layers.Conv2DTranspose(channels, 3, strides=1, padding="same", activation=activation,
                                            name=name, dtype=HEAD)(h)

    return keras.Model(inputs, likelihood_heads(likelihood, top, conv_image), name="decoder")
