"""Keras 3 layers tfvae's networks are built from (registered, so `.keras` files load).

`DiagonalGaussian` is the distribution layer of the VAE: it turns features into the parameters
of q(z|x) = N(loc, diag(scale^2)) and hands out the `tfd` distribution they define.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvae.probability import diagonal_gaussian

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
        self.loc_layer = keras.layers.Dense(self.units, name="loc")
        self.raw_scale_layer = keras.layers.Dense(self.units, name="raw_scale")

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
