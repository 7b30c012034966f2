"""Keras 3 layers tfvae's networks are built from (registered, so `.keras` files load).

`DiagonalGaussian` is the distribution layer of the VAE: it turns features into the parameters
of q(z|x) = N(loc, diag(scale^2)) and hands out the `tfd` distribution they define.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvae.probability.posteriors import diagonal_gaussian

PACKAGE = "tfvae"


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositiveScale(keras.layers.Layer):
    """softplus(x) + min_scale: a standard deviation that is positive and never collapses to 0.

    Args:
      min_scale: the floor added after the softplus.
    """

    def __init__(self, min_scale: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.min_scale = float(min_scale)

    def call(self, x):
        return tf.nn.softplus(x) + self.min_scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "min_scale": self.min_scale}


class _Gated(keras.layers.Layer):
    """h = linear(x) * gate(x): subclasses make `self.linear` and `self.gate` (sigmoid)."""

    def build(self, input_shape):
        self.linear.build(input_shape)
        self.gate.build(input_shape)

    def call(self, x):
        return self.linear(x) * self.gate(x)

    def compute_output_shape(self, input_shape):
        return self.linear.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GatedDense(_Gated):
    """A gated dense layer: h = (W x + b) * sigmoid(V x + c) (Dauphin et al., 2017).

    The hidden layer of the VampPrior / Exemplar VAE papers' MLP VAEs (`--activation gated`).

    Args:
      units: output size.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.linear = keras.layers.Dense(self.units, name="linear", dtype=self.dtype_policy)
        self.gate = keras.layers.Dense(self.units, activation="sigmoid", name="gate", dtype=self.dtype_policy)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DiagonalGaussian(keras.layers.Layer):
    """Features -> (loc, scale) of a diagonal Gaussian over `units` dimensions.

    `loc` is a linear map of the features, `scale` = softplus(linear map) + `min_scale`.
    `DiagonalGaussian.distribution(loc, scale)` gives the `tfd.Independent(tfd.Normal)` they
    define; its samples are reparameterized (z = loc + scale * eps).

    Args:
      units: the dimension of z.
      min_scale: the floor of every standard deviation.

    Example:
      >>> h = keras.Input((400,))
      >>> loc, scale = DiagonalGaussian(20)(h)
    """

    def __init__(self, units: int, min_scale: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.min_scale = float(min_scale)
        # the sublayers compute in this layer's dtype (float32 under a mixed-precision policy)
        self.loc_layer = keras.layers.Dense(self.units, name="loc", dtype=self.dtype_policy)
        self.raw_scale_layer = keras.layers.Dense(self.units, name="raw_scale", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.loc_layer.build(input_shape)
        self.raw_scale_layer.build(input_shape)

    def call(self, features):
        loc = self.loc_layer(features)
        scale = tf.nn.softplus(self.raw_scale_layer(features)) + self.min_scale
        return loc, scale

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[:-1]) + (self.units,)
        return shape, shape

    @staticmethod
    def distribution(loc, scale):
        return diagonal_gaussian(loc, scale)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "min_scale": self.min_scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Parameters(keras.layers.Layer):
    """Free variables that belong to no network (a learned prior's means and scales, pseudo-inputs),
    held by a Keras layer so that model files, checkpoints and exports carry them with the rest.

    `layer["loc"]` is the variable named loc. Called on a tensor, the layer returns it unchanged:
    a family puts it in its Keras model's graph only so that the model saves it.

    Args:
      shapes: {name: shape} of the variables.
      initializers: {name: a Keras initializer or its name/config}; zeros where not given.

    Example:
      >>> p = Parameters({"loc": (10, 2)}, {"loc": "random_normal"}, name="prior")
      >>> p["loc"].shape
      (10, 2)
    """

    def __init__(self, shapes: dict, initializers: dict = None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        self.initializers = {name: keras.initializers.serialize(keras.initializers.get(init))
                             for name, init in (initializers or {}).items()}
        for name, shape in self.shapes.items():
            init = keras.initializers.get(self.initializers.get(name, "zeros"))
            # an attribute each, so that checkpoints track the variable (as Dense's kernel)
            setattr(self, f"parameter_{name}", self.add_weight(name=name, shape=shape, initializer=init))
        self.built = True

    def __getitem__(self, name):
        if name not in self.shapes:
            raise KeyError(f"{self.name} has no parameter {name!r}; it has {', '.join(self.shapes)}")
        return getattr(self, f"parameter_{name}")

    def call(self, x):
        return tf.identity(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "shapes": {k: list(v) for k, v in self.shapes.items()},
                "initializers": self.initializers}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GatedConv2D(_Gated):
    """A gated convolution: h = conv_h(x) * sigmoid(conv_g(x)), 'same' padding (the reference
    ConvHVAE's GatedConv2d).

    Args:
      filters, kernel_size, strides: as keras.layers.Conv2D's.
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        conv = dict(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides, padding="same",
                    dtype=self.dtype_policy)
        self.linear = keras.layers.Conv2D(name="linear", **conv)
        self.gate = keras.layers.Conv2D(activation="sigmoid", name="gate", **conv)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BroadcastConcat(keras.layers.Layer):
    """[a (batch, m), b (batch, samples, n)] -> (batch, samples, m + n): a repeated along b's
    samples axis, then concatenated (features of x shared by every sample of z2)."""

    def call(self, inputs):
        a, b = inputs
        a = tf.broadcast_to(a[:, None, :], tf.concat([tf.shape(b)[:2], tf.shape(a)[-1:]], axis=0))
        return tf.concat([a, tf.cast(b, a.dtype)], axis=-1)

    def compute_output_shape(self, input_shapes):
        a, b = input_shapes
        return (b[0], b[1], a[-1] + b[-1])
