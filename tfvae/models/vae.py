"""vae: the variational autoencoder (Kingma & Welling, 2014).

    ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)),   z = loc + scale * eps,  L = `--mc-samples`

The loss is -(E_q[log p(x|z)] - w * KL), w = beta (`--beta`) ramped up over `--kl-warmup` epochs,
each dimension's KL counted at least `--free-bits` nats; the reported ELBO is the true bound.
`--gradient-estimator score` trains the encoder with the score-function (REINFORCE) estimator
instead of the reparameterization trick (tfvae.objectives.score_function_surrogate), to see the
difference the trick makes.
"""

from tfvae.config import Option
from tfvae.errors import ConfigError
from tfvae.lazy import tf
from tfvae.models.base import Variational, register


@register
class VAE(Variational):
    name = "vae"
    summary = "variational autoencoder: ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))"
    options = Variational.options + (
        Option("beta", 1.0, "weight of the KL term (beta-VAE).", minimum="non_negative"),
        Option("kl_warmup", 0, "epochs over which the KL weight ramps from 0 to beta.", minimum="non_negative"),
        Option("free_bits", 0.0, "nats per latent dimension below which KL is not penalised.",
               minimum="non_negative"),
        Option("mc_samples", 1, "Monte Carlo samples of z per example.", flag="-L"),
        Option("gradient_estimator", "reparameterization",
               "the encoder's gradient: reparameterization (z = loc + scale * eps) or score (REINFORCE, "
               "a leave-one-out baseline; far noisier).", choices=("reparameterization", "score")),
    )
    metric_names = ("loss", "log_px_z", "kl", "elbo")
    samples_option = "mc_samples"

    @classmethod
    def implied_options(cls, config) -> set:
        """The reparameterization trick, the default estimator, is not written (earlier versions
        read the run)."""
        implied = super().implied_options(config)
        if config.options.get("gradient_estimator") == "reparameterization":
            implied.add("gradient_estimator")
        return implied

    @classmethod
    def warmup_epochs(cls, config) -> int:
        return config.kl_warmup

    def build_extra(self, parts):
        super().build_extra(parts)
        if self.config.options.get("free_bits", 0) > 0 and not self.prior.closed_form_kl:
            raise ConfigError(f"--free-bits needs a KL per latent dimension in closed form, which the prior "
                              f"{self.prior.description} has not; drop --free-bits")

    def schedule(self, step, steps_per_epoch: int) -> dict:
        """The KL weight: beta, ramped up linearly over --kl-warmup epochs."""
        cfg = self.config
        if cfg.kl_warmup == 0:
            return {"kl_weight": tf.constant(cfg.beta, tf.float32)}
        ramp_steps = float(cfg.kl_warmup * steps_per_epoch)
        progress = tf.cast(step + 1, tf.float32) / ramp_steps
        return {"kl_weight": cfg.beta * tf.minimum(1.0, progress)}

    def eval_schedule(self) -> dict:
        return {"kl_weight": self.config.beta}

    def objective(self, x, noise, schedule):
        surrogate = 0.0
        if self.config.options.get("gradient_estimator") == "score":
            from tfvae.objectives import score_function_surrogate

            terms, surrogate = score_function_surrogate(self.encoder, self.decoder, self.likelihood, self.prior, x,
                                                        noise["eps"], schedule["kl_weight"],
                                                        posterior=self.posterior_dist)
        else:
            terms = self.elbo(x, noise["eps"])
        kl = terms["kl"]
        if self.config.free_bits > 0:  # each example's KL in each dimension counts at least free_bits nats
            kl = tf.reduce_sum(tf.maximum(terms["kl_per_dim"], self.config.free_bits), axis=-1)
        loss = -(terms["log_px_z"] - schedule["kl_weight"] * kl)
        return loss + surrogate, {"loss": loss, "log_px_z": terms["log_px_z"], self.kl_metric: terms["kl"],
                      "elbo": terms["elbo"]}
