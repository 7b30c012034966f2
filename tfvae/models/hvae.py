"""hvae: the two-level hierarchical VAE of Tomczak & Welling (2018), MLP (HVAE) or conv (ConvHVAE).

    generative:  p(z2) p(z1 | z2) p(x | z1, z2)        p(z2) = `--prior` (N(0, I), mog, vamp)
    inference:   q(z2 | x) q(z1 | x, z2)               each a diagonal Gaussian, z1, z2 of --latent-dim
    ELBO = E_q[log p(x|z1,z2)] - E_q(z2|x)[KL(q(z1|x,z2) || p(z1|z2))] - KL(q(z2|x) || p(z2))

The z1 term is in closed form for each sample of z2; the z2 term follows the prior (closed form
for N(0, I), Monte Carlo otherwise), so the total KL is reported as `kl_mc`, with `kl_z1` and
`kl_z2` beside it. The importance-sampled log p(x) weighs the whole hierarchy:
log p(x|z1,z2) + log p(z1|z2) + log p(z2) - log q(z1|x,z2) - log q(z2|x).

Networks, as the reference code (jmtomczak/vae_vampprior) builds them, with `--hidden` and
`--activation` (gated in the recipes):
  mlp   q(z2|x): dense layers of --hidden; q(z1|x,z2): x -> hidden[0], z2 -> hidden[0], joint ->
        hidden[-1]; p(z1|z2): --hidden; p(x|z1,z2): z1 -> hidden[0], z2 -> hidden[0], joint ->
        hidden[-1] -> pixels.
  conv  q(z2|x): gated convolutions 32x7, 32x3/2, 64x5, 64x3/2, 6x3 (ConvHVAE); q(z1|x,z2): gated
        convolutions 32x3, 32x3/2, 64x3, 64x3/2, 6x3 beside z2 -> the same size, joint ->
        hidden[-1]; p(z1|z2): --hidden; p(x|z1,z2): z1, z2 -> hidden[-1] each, joint -> an image,
        four gated convolutions 64x3 at full resolution, a 1x1 convolution to the pixels.

A code z of the other commands (decode, the manifold, interpolation, the exported decoders) is
the top latent z2: it is decoded through z1 = E[z1 | z2]. Sampling draws z2 from the prior and,
for sampled pixels, z1 from p(z1 | z2).
"""

from tfvae.errors import ConfigError
from tfvae.lazy import keras, tf, tfd
from tfvae.models.base import HEAD, register
from tfvae.models.vae import VAE

Z2 = "z2"
CONV_Z2 = ((32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2), (6, 3, 1))  # (filters, kernel, stride)
CONV_Z1 = ((32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 2), (6, 3, 1))
CONV_DECODER = (64, 64, 64, 64)


def _gaussian(outputs):
    from tfvae.probability import diagonal_gaussian

    return diagonal_gaussian(outputs["loc"], outputs["scale"])


@register
class HVAE(VAE):
    takes_condition = False  # its own networks (q(z1|x, z2), p(z1|z2), p(x|z1, z2)) take no label
    name = "hvae"
    summary = "two-level hierarchical VAE: q(z2|x) q(z1|x,z2), p(z2) p(z1|z2) p(x|z1,z2)"
    metric_names = ("loss", "log_px_z", "kl_z1", "kl_z2", "kl_mc", "elbo")
    conv_takes_hidden_layers = True  # p(z1|z2) is dense layers of --hidden with either network

    # free bits need a KL per latent dimension in closed form, which E_q(z2)[KL(q(z1|x,z2) || p(z1|z2))] has not
    options = tuple(o for o in VAE.options if o.name not in ("free_bits", "gradient_estimator"))

    @classmethod
    def check_config(cls, config) -> None:
        if len(config.hidden) < 1:
            raise ConfigError("--model hvae needs at least one --hidden size")

    @property
    def kl_metric(self) -> str:
        return "kl_mc"  # the z1 term is an expectation over samples of z2

    @property
    def eps_dim(self) -> int:
        return 2 * self.config.latent_dim  # eps of z2, then eps of z1

    # ------------------------------------------------------------------ networks
    def _dense(self, units, name):
        from tfvae.networks import dense

        return dense(self.config, units, name)

    def _conv_features(self, x, layers, prefix):
        from tfvae.layers import GatedConv2D
        from tfvae.networks import conv_activation

        for i, (filters, kernel, stride) in enumerate(layers):
            if self.config.activation == "gated":
                x = GatedConv2D(filters, kernel, stride, name=f"{prefix}_{i}")(x)
            else:
                x = keras.layers.Conv2D(filters, kernel, stride, padding="same", activation=conv_activation(self.config),
                                        name=f"{prefix}_{i}")(x)
        return keras.layers.Flatten(name=f"{prefix}_flatten")(x)

    def _gaussian_head(self, features, name):
        from tfvae.layers import DiagonalGaussian

        loc, scale = DiagonalGaussian(self.config.latent_dim, self.config.min_scale, name=name, dtype=HEAD)(features)
        return {"loc": loc, "scale": scale}

    def _check_shape(self):
        from tfvae.networks import _check_image_shape

        _check_image_shape(self.config, self.image_shape)

    def build_encoder(self):
        """q(z2 | x): images -> {loc, scale}."""
        if self.config.network == "mlp":
            return super().build_encoder()
        self._check_shape()
        x = keras.Input(self.image_shape, name="images")
        return keras.Model(x, self.encoder_head(self._conv_features(x, CONV_Z2, "conv")), name="encoder")

    def _build_encoder_z1(self):
        """q(z1 | x, z2): {images (B, H, W, C), z2 (B, samples, d)} -> {loc, scale} (B, samples, d)."""
        from tfvae.layers import BroadcastConcat

        c = self.config
        x = keras.Input(self.image_shape, name="images")
        z2 = keras.Input((None, c.latent_dim), name=Z2)
        if c.network == "mlp":
            hx = self._dense(c.hidden[0], "x_dense")(keras.layers.Flatten(name="flatten")(x))
            hz = self._dense(c.hidden[0], "z2_dense")(z2)
        else:
            hx = self._conv_features(x, CONV_Z1, "conv")
            hz = self._dense(int(hx.shape[-1]), "z2_dense")(z2)
        h = self._dense(c.hidden[-1], "joint_dense")(BroadcastConcat(name="joint")([hx, hz]))
        return keras.Model({"images": x, Z2: z2}, self._gaussian_head(h, "posterior_z1"), name="encoder_z1")

    def _build_prior_z1(self):
        """p(z1 | z2): z2 (B, samples, d) -> {loc, scale}, dense layers of --hidden."""
        z2 = keras.Input((None, self.config.latent_dim), name=Z2)
        h = z2
        for i, units in enumerate(self.config.hidden):
            h = self._dense(units, f"dense_{i}")(h)
        return keras.Model(z2, self._gaussian_head(h, "conditional_z1"), name="prior_z1")

    def build_decoder(self):
        """p(x | z1, z2): {z1, z2} (N, d) each -> the likelihood's parameters."""
        import math

        from tfvae.networks import _pixel_head, likelihood_heads

        c = self.config
        self._check_shape()
        z1, z2 = keras.Input((c.latent_dim,), name="z1"), keras.Input((c.latent_dim,), name=Z2)
        width = c.hidden[0] if c.network == "mlp" else c.hidden[-1]
        joint = keras.layers.Concatenate(name="joint")([self._dense(width, "z1_dense")(z1),
                                                        self._dense(width, "z2_dense")(z2)])
        if c.network == "mlp":
            h = self._dense(c.hidden[-1], "joint_dense")(joint)
            return keras.Model({"z1": z1, Z2: z2}, _pixel_head(h, self.image_shape, self.likelihood), name="decoder")
        top = self._dense(math.prod(self.image_shape), "joint_dense")(joint)
        h = keras.layers.Reshape(self.image_shape, name="image")(top)
        from tfvae.layers import GatedConv2D
        from tfvae.networks import conv_activation

        for i, filters in enumerate(CONV_DECODER):
            if c.activation == "gated":
                h = GatedConv2D(filters, 3, name=f"conv_{i}")(h)
            else:
                h = keras.layers.Conv2D(filters, 3, padding="same", activation=conv_activation(c), name=f"conv_{i}")(h)
        channels = self.image_shape[-1]

        def conv_image(name, activation=None):
            return keras.layers.Conv2D(channels, 1, activation=activation, name=name, dtype=HEAD)(h)

        return keras.Model({"z1": z1, Z2: z2}, likelihood_heads(self.likelihood, top, conv_image), name="decoder")

    def build_extra(self, parts: dict) -> None:
        self.encoder_z1 = parts.pop("encoder_z1", None) or self._build_encoder_z1()
        self.prior_z1 = parts.pop("prior_z1", None) or self._build_prior_z1()
        super().build_extra(parts)

    @property
    def extra_parts(self) -> dict:
        return {**super().extra_parts, "encoder_z1": self.encoder_z1, "prior_z1": self.prior_z1}

    @classmethod
    def extra_part_names(cls, config) -> tuple:
        return ("prior", "encoder_z1", "prior_z1")

    # ------------------------------------------------------------------ the bound
    def _hierarchy(self, x, eps, training):
        """Draws z2 ~ q(z2|x), z1 ~ q(z1|x,z2) from eps (B, L, 2d); returns the samples, the
        distributions' parameters and log p(x|z1,z2) of shape (B, L)."""
        d = self.config.latent_dim
        x = tf.convert_to_tensor(x, tf.float32)
        enc2 = self.encoder(x, training=training)
        z2 = self.posterior_dist.reparameterize(enc2, eps[..., :d])  # (B, L, d)
        enc1 = self.encoder_z1({"images": x, Z2: z2}, training=training)
        z1 = enc1["loc"] + enc1["scale"] * eps[..., d:]
        cond1 = self.prior_z1(z2, training=training)
        flat = lambda t: tf.reshape(t, [-1, d])  # noqa: E731
        out = self.decoder({"z1": flat(z1), Z2: flat(z2)}, training=training)
        log_px = self.likelihood.log_prob_samples(out, x, tf.shape(z2)[1])
        return {"z1": z1, "z2": z2, "q2": enc2, "q1": enc1, "p1": cond1, "log_px": log_px}

    def elbo(self, x, eps, training=True) -> dict:
        s = self._hierarchy(x, eps, training)
        kl_z1 = tf.reduce_mean(tfd.kl_divergence(_gaussian(s["q1"]), _gaussian(s["p1"])), axis=1)
        kl_z2 = self.prior.kl(self.posterior_dist.distribution(s["q2"]), s["z2"])
        log_px_z = tf.reduce_mean(s["log_px"], axis=1)
        kl = kl_z1 + kl_z2
        return {"log_px_z": log_px_z, "kl_z1": kl_z1, "kl_z2": kl_z2, "kl": kl, "elbo": log_px_z - kl}

    def objective(self, x, noise, schedule):
        terms = self.elbo(x, noise["eps"])
        loss = -(terms["log_px_z"] - schedule["kl_weight"] * terms["kl"])
        return loss, {"loss": loss, "log_px_z": terms["log_px_z"], "kl_z1": terms["kl_z1"], "kl_z2": terms["kl_z2"],
                      self.kl_metric: terms["kl"], "elbo": terms["elbo"]}

    def log_importance_weights(self, x, eps, training=True):
        """log p(x|z1,z2) + log p(z1|z2) + log p(z2) - log q(z1|x,z2) - log q(z2|x), shape (B, k)."""
        s = self._hierarchy(x, eps, training)
        q2 = _gaussian({k: v[:, None, :] for k, v in s["q2"].items()})
        log_w = (s["log_px"] + _gaussian(s["p1"]).log_prob(s["z1"]) + self.prior.log_prob(s["z2"])
                 - _gaussian(s["q1"]).log_prob(s["z1"]) - q2.log_prob(s["z2"]))
        return log_w, s["log_px"], self.posterior_dist.distribution(s["q2"])

    # ------------------------------------------------------------------ using a model
    def _decode_outputs(self, z2, z1=None):
        z2 = tf.convert_to_tensor(z2, tf.float32)
        if z1 is None:  # z1 = E[z1 | z2]
            z1 = self.prior_z1(z2[:, None, :], training=False)["loc"][:, 0]
        return self.decoder({"z1": tf.convert_to_tensor(z1, tf.float32), Z2: z2}, training=False)

    def decode(self, z):
        """p(x | z1 = E[z1|z2], z2) for top codes z = z2."""
        return self.likelihood.distribution(self._decode_outputs(z))

    def decode_mean(self, z):
        return self.likelihood.mean(self._decode_outputs(z))

    def decode_levels(self, z1, z2):
        """Pixel means of p(x | z1, z2)."""
        return self.likelihood.mean(self._decode_outputs(z2, z1))

    def encode_levels(self, x) -> dict:
        """Posterior means per layer: z2 = E_q[z2|x], z1 = E_q[z1 | x, z2 = that mean]."""
        x = tf.convert_to_tensor(x, tf.float32)
        z2 = self.encoder(x, training=False)["loc"]
        z1 = self.encoder_z1({"images": x, Z2: z2[:, None, :]}, training=False)["loc"][:, 0]
        return {"z1": z1, Z2: z2}

    def reconstruct(self, x):
        """Through the posterior means of both layers."""
        levels = self.encode_levels(x)
        return self.decode_levels(levels["z1"], levels[Z2])

    def sample(self, n: int, seed, mean: bool = True):
        """z2 ~ p(z2); pixel means with z1 = E[z1|z2], or z1 ~ p(z1|z2) and x ~ p(x|z1,z2)."""
        seeds = tf.random.experimental.stateless_split(tf.cast(tf.convert_to_tensor(seed), tf.int32), 3)
        z2 = self.prior.sample(n, seeds[0])
        if mean:
            return self.decode_mean(z2)
        cond = self.prior_z1(z2[:, None, :], training=False)
        z1 = (cond["loc"] + cond["scale"] * tf.random.stateless_normal(tf.shape(cond["loc"]), seeds[1]))[:, 0]
        return self.likelihood.distribution(self._decode_outputs(z2, z1)).sample(seed=seeds[2])

    # ------------------------------------------------------------------ saving and export
    @property
    def keras_model(self):
        """images -> q(z2|x), q(z1|x,z2) parameters and the reconstruction; the prior's layer."""
        if self._keras_model is None:
            x = keras.Input(self.image_shape, name="images")
            enc2 = self.encoder(x)
            z2 = keras.layers.Reshape((1, self.config.latent_dim), name="z2_samples")(enc2["loc"])
            enc1 = self.encoder_z1({"images": x, Z2: z2})
            cond = self.prior_z1(z2)
            z1 = keras.layers.Reshape((self.config.latent_dim,), name="z1_mean")(enc1["loc"])
            dec = self.decoder({"z1": z1, Z2: enc2["loc"]})
            if self.likelihood.kind == "bernoulli":
                mean = keras.layers.Activation("sigmoid", name="reconstruction")(dec["logits"])
            else:
                mean = keras.layers.Identity(name="reconstruction")(dec["loc"])
            outputs = {**enc2, "loc_z1": enc1["loc"], "scale_z1": enc1["scale"], "loc_p1": cond["loc"],
                       "reconstruction": mean}
            if self.prior.layer is not None:
                outputs["prior"] = self.prior.layer(enc2["loc"])
            self._keras_model = keras.Model(x, outputs, name="autoencoder")
        return self._keras_model

    def export_endpoints(self) -> dict:
        endpoints = super().export_endpoints()
        d = self.config.latent_dim

        def decode_levels(z1, z2):
            return {"images": self.decode_levels(z1, z2)}

        endpoints["decode_levels"] = (decode_levels, [tf.TensorSpec([None, d], tf.float32, name="z1"),
                                                      tf.TensorSpec([None, d], tf.float32, name=Z2)])
        return endpoints

    def signature_descriptions(self) -> dict:
        (h, w, c), d = self.image_shape, self.config.latent_dim
        return {**super().signature_descriptions(),
                "encode": f"`images` | `loc`, `scale` (N, {d}): q(z2|x), the top layer",
                "decode": f"`z` float32 (N, {d}): the top latent z2, decoded through z1 = E[z1|z2] | `images` "
                          f"(N, {h}, {w}, {c}) pixel means",
                "decode_levels": f"`z1`, `z2` float32 (N, {d}) each | `images` (N, {h}, {w}, {c}): pixel means of "
                                 "p(x|z1,z2)",
                "sample": f"`n` int32 scalar | `images` (n, {h}, {w}, {c}), `z` (n, {d}): z2 drawn from the prior "
                          f"({self.prior.description}) in the graph, z1 = E[z1|z2]"}
