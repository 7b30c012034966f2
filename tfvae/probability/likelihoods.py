"""The likelihood p(x|z) of an image given the decoder's outputs (`Likelihood`): Bernoulli from
logits, or Gaussian with a learned per-pixel scale, a learned per-image scale, or a fixed one.

One whole image is one event (`tfd.Independent` over height, width and channels).
"""

from __future__ import annotations

from tfvae.lazy import tf, tfd


class Likelihood:
    """p(x|z): maps the decoder's outputs to a distribution over whole images.

    Args:
      kind: "bernoulli" (decoder output `logits`) or "gaussian" (decoder outputs `loc` and,
        unless the variance is fixed, `scale`).
      variance: for "gaussian": "pixel" (a learned scale per pixel), "image" (one learned scale
        per image) or "fixed" (`fixed_scale` everywhere).
      fixed_scale: the standard deviation of the fixed-variance Gaussian.
      min_scale: the floor of a learned standard deviation.
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
            base = tfd.Normal(loc=loc, scale=scale)
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
        """
        batch = tf.shape(x)[0]
        pixels = tf.reshape(x, [batch, 1, -1])  # flat pixels: elementwise work on (batch, D) is fastest
        per_sample = lambda t: tf.reshape(t, [batch, samples, -1])  # noqa: E731
        if self.kind == "bernoulli":
            logits = per_sample(outputs["logits"])
            return tf.reduce_sum(pixels * logits - tf.nn.softplus(logits), axis=-1)
        loc = per_sample(outputs["loc"])
        scale = per_sample(outputs["scale"]) if "scale" in outputs else self.fixed_scale
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1).log_prob(pixels)

    def mean(self, outputs):
        """Pixel means E[x|z]: sigmoid(logits) for Bernoulli, loc for Gaussian."""
        if self.kind == "bernoulli":
            return tf.sigmoid(outputs["logits"])
        return outputs["loc"]

    def reconstruction_loss(self, outputs, x):
        """The autoencoders' loss per image: summed cross-entropy, or summed squared error."""
        if self.kind == "bernoulli":
            return -self.log_prob(outputs, x)  # -sum_j x_j log x^_j + (1 - x_j) log(1 - x^_j)
        return tf.reduce_sum(tf.math.squared_difference(flatten(x), flatten(outputs["loc"])), axis=1)


def flatten(t):
    """(batch, ...) -> (batch, everything else)."""
    return tf.reshape(t, [tf.shape(t)[0], -1])
