"""The likelihood p(x|z) of an image given the decoder's outputs (`Likelihood`): Bernoulli from
logits; Gaussian with a learned per-pixel scale, a learned per-image scale, or a fixed one; or the
discretized logistic (Salimans et al., 2017; Kingma et al., 2016) with the same three scales, a
probability of each pixel's 8-bit level rather than a density.

One whole image is one event (`tfd.Independent` over height, width and channels).
"""

from __future__ import annotations

import math

from tfvae.lazy import tf, tfd

LEVELS = 256  # 8-bit pixels: x = k / 255, k = 0..255
HALF_BIN = 0.5 / (LEVELS - 1)  # half the width of one level's bin, in [0, 1] units


def log_sigmoid(t):
    """log sigmoid(t) = -softplus(-t), exact for every t."""
    return -tf.nn.softplus(-t)


def log1mexp(d):
    """log(1 - exp(-d)) for d > 0, accurate for d near 0 and for large d (Maechler, 2012)."""
    return tf.where(d < math.log(2.0), tf.math.log(-tf.math.expm1(-d)), tf.math.log1p(-tf.exp(-d)))


def discretized_logistic_log_prob(x, loc, scale):
    """log P(x) of 8-bit pixels x = k / 255 under the logistic(loc, scale) discretized to 256 bins:

        P(k) = sigmoid((x + h - loc) / s) - sigmoid((x - h - loc) / s),  h = 1 / 510,

    the first bin reaching down to -inf and the last up to +inf, so that the 256 probabilities sum
    to 1. The difference of sigmoids is computed in logs, exactly even where both are 0 or 1 in
    floating point: with a = (x + h - loc) / s and b = (x - h - loc) / s,

        log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log sigmoid(-b) + log(1 - exp(-(a - b))).
    """
    inv = 1.0 / scale
    a = (x + HALF_BIN - loc) * inv
    b = (x - HALF_BIN - loc) * inv
    bottom, top = x < HALF_BIN, x > 1.0 - HALF_BIN
    middle = log_sigmoid(a) + log_sigmoid(-b) + log1mexp(2.0 * HALF_BIN * inv)
    return tf.where(bottom, log_sigmoid(a), tf.where(top, log_sigmoid(-b), middle))


_DISCRETIZED_LOGISTIC = None


def DiscretizedLogistic(loc, scale):  # noqa: N802 (a distribution's constructor)
    """The logistic(loc, scale) discretized to the 256 levels k / 255 of 8-bit pixels, one pixel per
    batch member (`discretized_logistic_log_prob`), as a tfd distribution; samples are levels in
    [0, 1]. (The class is made on first use: importing tfvae imports no TensorFlow.)"""
    global _DISCRETIZED_LOGISTIC
    if _DISCRETIZED_LOGISTIC is None:
        _DISCRETIZED_LOGISTIC = _make_discretized_logistic()
    return _DISCRETIZED_LOGISTIC(loc, scale)


def _make_discretized_logistic():
    class _DiscretizedLogistic(tfd.Distribution):
        def __init__(self, loc, scale, name="DiscretizedLogistic"):
            parameters = dict(locals())
            with tf.name_scope(name) as name:
                self._loc = tf.convert_to_tensor(loc, tf.float32)
                self._scale = tf.convert_to_tensor(scale, tf.float32)
                super().__init__(dtype=tf.float32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                                 validate_args=False, allow_nan_stats=True, parameters=parameters, name=name)

        @classmethod
        def _parameter_properties(cls, dtype, num_classes=None):
            import tensorflow_probability as tfp

            return {"loc": tfp.util.ParameterProperties(), "scale": tfp.util.ParameterProperties()}

        @property
        def loc(self):
            return self._loc

        @property
        def scale(self):
            return self._scale

        def _event_shape(self):
            return tf.TensorShape([])

        def _batch_shape(self):
            return tf.broadcast_static_shape(self._loc.shape, self._scale.shape)

        def _batch_shape_tensor(self):
            return tf.broadcast_dynamic_shape(tf.shape(self._loc), tf.shape(self._scale))

        def _log_prob(self, x):
            return discretized_logistic_log_prob(x, self._loc, self._scale)

        def _sample_n(self, n, seed=None):
            from tensorflow_probability.python.internal import samplers

            shape = tf.concat([[n], self._batch_shape_tensor()], axis=0)
            u = samplers.uniform(shape, minval=1e-7, maxval=1.0 - 1e-7, seed=seed)
            y = self._loc + self._scale * (tf.math.log(u) - tf.math.log1p(-u))  # a logistic draw
            return tf.round(tf.clip_by_value(y, 0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)

        def _mean(self):
            """E[x] = (1/255) sum_{k=1..255} P(x >= k / 255): a mean over the 255 bins' lower edges."""
            edges = (tf.range(1, LEVELS, dtype=tf.float32) - 0.5) / (LEVELS - 1)
            t = (edges - self._loc[..., None]) / self._scale[..., None]
            return tf.reduce_mean(tf.sigmoid(-t), axis=-1)

    return _DiscretizedLogistic


class Likelihood:
    """p(x|z): maps the decoder's outputs to a distribution over whole images.

    Args:
      kind: "bernoulli" (decoder output `logits`), "gaussian" or "logistic" (the discretized
        logistic; both with decoder outputs `loc` and, unless the variance is fixed, `scale`).
      variance: for "gaussian" and "logistic": "pixel" (a learned scale per pixel), "image" (one
        learned scale per image) or "fixed" (`fixed_scale` everywhere).
      fixed_scale: the fixed scale (the Gaussian's standard deviation, the logistic's scale).
      min_scale: the floor of a learned scale.
    """

    def __init__(self, kind: str, variance: str = "pixel", fixed_scale: float = 0.1, min_scale: float = 1e-3):
        self.kind = kind
        self.variance = variance
        self.fixed_scale = float(fixed_scale)
        self.min_scale = float(min_scale)

    @property
    def output_keys(self) -> tuple:
        if self.kind == "bernoulli":
            return ("logits",)
        return ("loc",) if self.variance == "fixed" else ("loc", "scale")

    def distribution(self, outputs):
        """p(x|z) over whole images (event shape (height, width, channels))."""
        if self.kind == "bernoulli":
            base = tfd.Bernoulli(logits=outputs["logits"], dtype=tf.float32)
        else:
            loc = outputs["loc"]
            scale = outputs["scale"] if "scale" in outputs else tf.fill(tf.shape(loc), self.fixed_scale)
            base = DiscretizedLogistic(loc, scale) if self.kind == "logistic" else tfd.Normal(loc=loc, scale=scale)
        return tfd.Independent(base, reinterpreted_batch_ndims=3)

    def log_prob(self, outputs, x):
        """log p(x|z) per image: shape (batch,)."""
        return self.log_prob_samples(outputs, x, 1)[:, 0]

    def log_prob_samples(self, outputs, x, samples):
        """log p(x | z_s) for decoder outputs of batch * samples rows (image-major) and images x of
        `batch` rows: shape (batch, samples). x is broadcast, never copied per sample.

        Bernoulli: log p(x|z) = sum_j x_j l_j - softplus(l_j), the value of
        tfd.Bernoulli(logits=l).log_prob(x) with one softplus per pixel instead of two (the
        importance sampler evaluates hundreds of millions of pixels). Gaussian: tfd.Normal's.
        Logistic: `discretized_logistic_log_prob`, summed over the pixels.
        """
        batch = tf.shape(x)[0]
        pixels = tf.reshape(x, [batch, 1, -1])  # flat pixels: elementwise work on (batch, D) is fastest
        per_sample = lambda t: tf.reshape(t, [batch, samples, -1])  # noqa: E731
        if self.kind == "bernoulli":
            logits = per_sample(outputs["logits"])
            return tf.reduce_sum(pixels * logits - tf.nn.softplus(logits), axis=-1)
        loc = per_sample(outputs["loc"])
        scale = per_sample(outputs["scale"]) if "scale" in outputs else self.fixed_scale
        if self.kind == "logistic":
            return tf.reduce_sum(discretized_logistic_log_prob(pixels, loc, scale), axis=-1)
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1).log_prob(pixels)

    def mean(self, outputs):
        """Pixel means E[x|z]: sigmoid(logits) for Bernoulli, loc for Gaussian; for the discretized
        logistic, loc too (its continuous mean, which the discretized mean differs from only within
        a few scales of 0 and 1), as the exported decoders give it."""
        if self.kind == "bernoulli":
            return tf.sigmoid(outputs["logits"])
        return outputs["loc"]

    def reconstruction_loss(self, outputs, x):
        """The autoencoders' loss per image: summed cross-entropy, or summed squared error (the
        autoencoders take no logistic likelihood)."""
        if self.kind == "bernoulli":
            return -self.log_prob(outputs, x)  # -sum_j x_j log x^_j + (1 - x_j) log(1 - x^_j)
        return tf.reduce_sum(tf.math.squared_difference(flatten(x), flatten(outputs["loc"])), axis=1)


def flatten(t):
    """(batch, ...) -> (batch, everything else)."""
    return tf.reshape(t, [tf.shape(t)[0], -1])
